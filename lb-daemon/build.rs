//! Embeds the XDP object that `cargo xtask` built (path in `LB_XDP_OBJECT`).
//! Without it the crate still builds (for `cargo check`, clippy, editors), but
//! the binaries then refuse to load, saying how to build properly.
//!
//! Also sets `LB_GIT_REV` (`git rev-parse --short HEAD`, or `unknown` without
//! git, e.g. when built from a source tarball) for `--version`.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    git_revision();
    println!("cargo::rerun-if-env-changed=LB_XDP_OBJECT");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("xdp.o");
    match env::var_os("LB_XDP_OBJECT") {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", path.to_string_lossy());
            fs::copy(&path, &out)
                .unwrap_or_else(|e| panic!("LB_XDP_OBJECT={}: {e}", path.to_string_lossy()));
        }
        None => {
            println!(
                "cargo::warning=LB_XDP_OBJECT is not set: building without the XDP program \
                 (use `cargo xtask build`)"
            );
            fs::write(&out, b"").expect("write empty object");
        }
    }
}

/// `cargo::rustc-env=LB_GIT_REV=...`, rebuilt when HEAD moves. A set
/// `LB_GIT_REV` wins (a distribution building without a checkout).
fn git_revision() {
    println!("cargo::rerun-if-env-changed=LB_GIT_REV");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let rev = env::var("LB_GIT_REV")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| git(&manifest, &["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=LB_GIT_REV={rev}");
    // HEAD itself (a checkout of another branch), the branch it points to
    // (a commit) and packed-refs; in a worktree these live in different
    // directories, which `--git-path` knows.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&manifest, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&manifest, &["rev-parse", "--git-path", &name]) {
            let path = manifest.join(path);
            if path.exists() {
                println!("cargo::rerun-if-changed={}", path.display());
            }
        }
    }
}

/// `git ARGS` in `dir`: its trimmed stdout, or None if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
