//! `cargo xtask package`: the `lbd` Debian package, built with cargo-deb
//! (installed by setup into target/tools). Steps: the eBPF object; the
//! release binaries with it embedded; the manual pages and completions
//! (`lb-docs` into target/package-docs, where the package metadata in
//! lb-daemon/Cargo.toml finds them); `cargo-deb --no-build` into
//! target/debian. Returns the `.deb`'s path.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{LB_XDP_OBJECT, build, cargo, describe, run_command, setup, workspace_root};

/// Builds everything from the eBPF object on; returns the `.deb`.
pub(crate) fn run() -> Result<PathBuf> {
    let object = build::build_ebpf()?;
    build_with(&object)
}

/// The package, with the eBPF object already built.
pub(crate) fn build_with(object: &Path) -> Result<PathBuf> {
    run_command(
        cargo()
            .args(["build", "--release", "-p", "lb-daemon", "--bins"])
            .env(LB_XDP_OBJECT, object),
    )?;
    let release = release_dir();
    let docs = workspace_root().join("target").join("package-docs");
    let _ = std::fs::remove_dir_all(&docs);
    run_command(Command::new(release.join("lb-docs")).arg(&docs))?;
    let out_dir = workspace_root().join("target").join("debian");
    let mut cmd = Command::new(setup::cargo_deb());
    cmd.current_dir(workspace_root())
        .args(["--package", "lb-daemon", "--no-build", "--output"])
        .arg(&out_dir)
        .env(LB_XDP_OBJECT, object);
    eprintln!("xtask: {}", describe(&cmd));
    let out = cmd
        .output()
        .with_context(|| format!("failed to start {}", describe(&cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            describe(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // cargo-deb prints the path of the package it wrote.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| Path::new(l).extension().is_some_and(|e| e == "deb"))
        .map(PathBuf::from)
        .with_context(|| format!("cargo-deb printed no .deb path: {stdout}"))?;
    if !deb.is_file() {
        bail!("cargo-deb reported {} but it does not exist", deb.display());
    }
    Ok(deb)
}

/// Where cargo puts release binaries.
fn release_dir() -> PathBuf {
    crate::cargo_target_dir().join("release")
}
