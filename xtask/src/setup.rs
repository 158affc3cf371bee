//! `cargo xtask setup`: installs what a fresh machine lacks, idempotently.
//! When everything is present it only looks (a few cheap process spawns).
//!
//! - the nightly's `rust-src` (for `-Z build-std=core`);
//! - bpf-linker, built against the nightly's own LLVM 22, in `target/tools`;
//! - cargo-deb (for `cargo xtask package`), in `target/tools`;
//! - the Debian packages the tests and the demo use;
//! - bpffs at /sys/fs/bpf.

use std::{
    ffi::OsStr,
    fs, io,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, run_command, workspace_root};

/// The bpf-linker release that builds against LLVM 22 (see shared/toolchain.md).
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The LLVM major version of the nightly toolchain and the bpf-linker feature
/// that goes with it.
const LLVM_MAJOR: &str = "22";
/// cargo-deb builds the `.deb` (`cargo xtask package`): the tool most Rust
/// projects use for it, maintained, and it knows conffiles, systemd units and
/// maintainer-script fragments. 3.8.0 declares rust-version 1.85, so it
/// builds with the stable 1.95 here; pinned so a new release can't break a
/// fresh clone.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Debian packages the integration tests and the demo need.
const PACKAGES: &[&str] = &[
    "nginx-light",
    "wrk",
    "apache2-utils",
    "prometheus",
    "keepalived",
    // [ecmp]: the router's and the directors' BGP + BFD daemon.
    "bird2",
    "bpftool",
    "tcpdump",
    "iproute2",
    "ethtool",
    "curl",
    // The DNS check's test: a real resolver in each real's namespace, and
    // its own small UDP client.
    "dnsmasq-base",
    // The status page's test renders it in a real headless browser.
    "chromium",
    // The package test: render the manual pages (`man -l`), load the bash
    // completion, verify the systemd unit (`systemd-analyze verify`).
    "man-db",
    "groff-base",
    "bash-completion",
    "systemd",
];

const BPFFS: &str = "/sys/fs/bpf";

pub(crate) fn run() -> Result<()> {
    let sysroot = nightly_sysroot()?;
    ensure_rust_src(&sysroot)?;
    ensure_bpf_linker(&sysroot)?;
    ensure_cargo_deb()?;
    ensure_packages()?;
    ensure_bpffs()?;
    Ok(())
}

/// `<workspace>/target/tools`: bpf-linker's prefix (bin/, lib/libLLVM.so).
pub(crate) fn tools_dir() -> PathBuf {
    workspace_root().join("target").join("tools")
}

/// The bpf-linker binary `setup` installs.
pub(crate) fn bpf_linker() -> PathBuf {
    tools_dir().join("bin").join("bpf-linker")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn nightly_sysroot() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .output()
        .context("failed to run `rustc +nightly --print sysroot` (is rustup installed?)")?;
    if !out.status.success() {
        bail!(
            "`rustc +nightly --print sysroot` failed ({}); the nightly toolchain must be \
             installed:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sysroot = String::from_utf8(out.stdout).context("nightly sysroot is not UTF-8")?;
    Ok(PathBuf::from(sysroot.trim()))
}

fn ensure_rust_src(sysroot: &Path) -> Result<()> {
    if sysroot.join("lib/rustlib/src").is_dir() {
        return Ok(());
    }
    eprintln!("xtask: adding rust-src to the nightly toolchain");
    run_command(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

/// The nightly's `lib/libLLVM.so.22*`.
fn nightly_libllvm(sysroot: &Path) -> Result<PathBuf> {
    let lib = sysroot.join("lib");
    let prefix = format!("libLLVM.so.{LLVM_MAJOR}");
    let mut found = Vec::new();
    for entry in fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            found.push(entry.path());
        }
    }
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no {prefix}* in {}: bpf-linker {BPF_LINKER_VERSION} is built against the \
             nightly's LLVM {LLVM_MAJOR}; a nightly with another LLVM needs another \
             bpf-linker version/feature in xtask/src/setup.rs",
            lib.display()
        )
    })
}

/// Makes `target/tools/lib` hold the nightly's libLLVM under two names:
/// `libLLVM.so`, which bpf-linker's build script links against (through
/// `LLVM_PREFIX`), and the library's own file name, which is its SONAME
/// (`libLLVM.so.22.1-rust-<version>`): the name the built binary asks the
/// loader for, found through its runpath `target/tools/lib`. Both links must
/// stay in place (toolchain.md mentions only the first; without the second
/// the binary fails with "error while loading shared libraries").
fn ensure_libllvm_links(sysroot: &Path) -> Result<()> {
    let libllvm = nightly_libllvm(sysroot)?;
    let lib_dir = tools_dir().join("lib");
    fs::create_dir_all(&lib_dir).with_context(|| format!("creating {}", lib_dir.display()))?;
    let soname = libllvm.file_name().expect("a file in the sysroot");
    for name in [OsStr::new("libLLVM.so"), soname] {
        ensure_symlink(&lib_dir.join(name), &libllvm)?;
    }
    Ok(())
}

/// Makes `link` a symlink to `target`, replacing whatever is there.
fn ensure_symlink(link: &Path, target: &Path) -> Result<()> {
    match fs::read_link(link) {
        Ok(current) if current == target => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        // A symlink to something else, or not a symlink at all: replace it.
        Ok(_) | Err(_) => fs::remove_file(link)?,
    }
    symlink(target, link)
        .with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}

/// Whether the installed bpf-linker runs and is the expected version.
fn bpf_linker_works() -> bool {
    Command::new(bpf_linker())
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION)
        })
}

fn ensure_bpf_linker(sysroot: &Path) -> Result<()> {
    ensure_libllvm_links(sysroot)?;
    if bpf_linker_works() {
        return Ok(());
    }
    let tools = tools_dir();
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM \
         {LLVM_MAJOR} into {} (takes about a minute)",
        tools.display()
    );
    let mut cmd = cargo();
    cmd.args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
        .args(["--no-default-features", "--features"])
        .arg(format!("llvm-{LLVM_MAJOR}"))
        .arg("--root")
        .arg(&tools)
        // Reinstall even if cargo's records say this version is there: we
        // only get here when the binary is missing or broken.
        .arg("--force")
        .env("LLVM_PREFIX", &tools)
        // A host build: don't let flags meant for something else leak in.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    run_command(&mut cmd)?;
    if !bpf_linker_works() {
        bail!(
            "{} was installed but `--version` does not run or report {BPF_LINKER_VERSION}",
            bpf_linker().display()
        );
    }
    Ok(())
}

/// The cargo-deb binary `setup` installs.
pub(crate) fn cargo_deb() -> PathBuf {
    tools_dir().join("bin").join("cargo-deb")
}

/// Whether the installed cargo-deb runs and is the pinned version.
fn cargo_deb_works() -> bool {
    Command::new(cargo_deb())
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(CARGO_DEB_VERSION)
        })
}

fn ensure_cargo_deb() -> Result<()> {
    if cargo_deb_works() {
        return Ok(());
    }
    let tools = tools_dir();
    eprintln!(
        "xtask: installing cargo-deb {CARGO_DEB_VERSION} into {} (takes a minute or two)",
        tools.display()
    );
    let mut cmd = cargo();
    cmd.args([
        "install",
        "cargo-deb",
        "--locked",
        "--version",
        CARGO_DEB_VERSION,
    ])
    .arg("--root")
    .arg(&tools)
    .arg("--force")
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env_remove("CARGO_TARGET_DIR");
    run_command(&mut cmd)?;
    if !cargo_deb_works() {
        bail!(
            "{} was installed but `--version` does not run or report {CARGO_DEB_VERSION}",
            cargo_deb().display()
        );
    }
    Ok(())
}

/// The packages of [`PACKAGES`] that dpkg does not report as installed.
fn missing_packages() -> Result<Vec<&'static str>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\\n"])
        .args(PACKAGES)
        .output()
        .context("failed to run dpkg-query: setup supports Debian-like systems only")?;
    // dpkg-query exits 1 when some package is unknown to it; its output still
    // lists the known ones, which is all we need.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = stdout
        .lines()
        .filter(|line| line.ends_with(" install ok installed"))
        .filter_map(|line| line.split_whitespace().next())
        .map(|name| name.split(':').next().unwrap_or(name))
        .collect();
    Ok(PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect())
}

fn ensure_packages() -> Result<()> {
    let missing = missing_packages()?;
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "these Debian packages are missing and installing them needs root: {}\n\
             run `cargo xtask setup` as root, or `sudo apt-get install {}`",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run_command(
        Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still = missing_packages()?;
    if !still.is_empty() {
        bail!(
            "apt-get install finished but these are still missing: {}",
            still.join(" ")
        );
    }
    Ok(())
}

fn bpffs_mounted() -> Result<bool> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    Ok(mounts.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some(BPFFS) && fields.next() == Some("bpf")
    }))
}

fn ensure_bpffs() -> Result<()> {
    if bpffs_mounted()? {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "bpffs is not mounted at {BPFFS} and mounting it needs root: run `cargo xtask setup` as root"
        );
    }
    eprintln!("xtask: mounting bpffs at {BPFFS}");
    fs::create_dir_all(BPFFS).with_context(|| format!("creating {BPFFS}"))?;
    run_command(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))
}
