//! `cargo xtask build-ebpf` (also the first step of every other subcommand but
//! `setup`) and `cargo xtask build`.
//!
//! The eBPF crate builds only with nightly (`-Z build-std=core` for
//! `bpfel-unknown-none`) and links with bpf-linker from `target/tools/bin`.
//! It gets its own target directory, `target/ebpf`, so that the nightly build
//! never invalidates stable's cache in `target/`.

use std::{env, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{LB_XDP_OBJECT, cargo, run_command, setup, workspace_root};

const EBPF_PACKAGE: &str = "xdp-ebpf";
const EBPF_TARGET: &str = "bpfel-unknown-none";

/// RUSTFLAGS for the eBPF build, in `CARGO_ENCODED_RUSTFLAGS` form (0x1f
/// separates flags); the same flags aya-build uses. Full debug info plus
/// `--btf` make bpf-linker emit BTF, which aya needs to load BTF-defined maps
/// and to relocate, and which gives the verifier's messages source lines.
/// Verified with a scratch aya-ebpf 0.2.1 XDP program (maps + aya-log): it
/// links with bpf-linker 0.13.0 and aya 0.14.0 loads it with its BTF (the
/// kernel reports a `btf_id` for the program), so `--btf` stays.
const EBPF_RUSTFLAGS: &str = "-Cdebuginfo=2\x1f-Clink-arg=--btf";

/// `<workspace>/target/ebpf`: the nightly eBPF build's target directory.
pub(crate) fn ebpf_target_dir() -> PathBuf {
    workspace_root().join("target").join("ebpf")
}

/// The eBPF object `build-ebpf` produces:
/// `<workspace>/target/ebpf/bpfel-unknown-none/release/xdp-ebpf` (absolute).
pub(crate) fn ebpf_object() -> PathBuf {
    ebpf_target_dir()
        .join(EBPF_TARGET)
        .join("release")
        .join(EBPF_PACKAGE)
}

/// Runs `setup`, builds the eBPF object and returns its absolute path.
pub(crate) fn build_ebpf() -> Result<PathBuf> {
    setup::run()?;

    // bpf-linker first on PATH: rustc invokes it by name for the bpf targets.
    let tools_bin = setup::bpf_linker()
        .parent()
        .expect("bpf-linker lives in a bin directory")
        .to_path_buf();
    let path = env::join_paths(
        std::iter::once(tools_bin)
            .chain(env::split_paths(&env::var_os("PATH").unwrap_or_default())),
    )
    .context("building PATH")?;

    // The rustup proxy `cargo` (not $CARGO, which is stable's own binary and
    // does not understand `+nightly`). RUSTUP_AUTO_INSTALL=0 is fine here:
    // setup made sure the nightly and its rust-src are there.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root())
        .args(["+nightly", "build", "--package", EBPF_PACKAGE, "--release"])
        .args(["--target", EBPF_TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(ebpf_target_dir())
        .env("PATH", path)
        .env("CARGO_ENCODED_RUSTFLAGS", EBPF_RUSTFLAGS)
        .env_remove("RUSTFLAGS")
        // `cargo run` (which runs xtask) may have set these for stable.
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    run_command(&mut cmd)?;

    let object = ebpf_object();
    if !object.is_file() {
        bail!(
            "the eBPF build succeeded but {} does not exist",
            object.display()
        );
    }
    Ok(object)
}

/// `cargo xtask build`: the eBPF object, then `cargo build --release` of the
/// default members with `LB_XDP_OBJECT` set.
pub(crate) fn build() -> Result<()> {
    let object = build_ebpf()?;
    run_command(
        cargo()
            .args(["build", "--release"])
            .env(LB_XDP_OBJECT, &object),
    )
}
