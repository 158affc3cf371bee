//! `cargo xtask demo [ARGS]`: builds everything in release mode, then runs
//! `target/release/lb-demo ARGS` in the foreground.
//!
//! Ctrl-C: the terminal sends SIGINT to the whole foreground process group,
//! so `lb-demo` (same group) gets it directly and cleans up its namespaces.
//! xtask ignores SIGINT while the child runs and waits for it, so it neither
//! dies first nor leaves the child orphaned. The child starts with SIGINT
//! back at its default action (an ignored signal would otherwise be inherited
//! across exec).

use std::{ffi::OsString, os::unix::process::CommandExt as _, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{LB_XDP_OBJECT, build, cargo, cargo_target_dir, run_command};

pub(crate) fn run(args: &[OsString]) -> Result<()> {
    let object = build::build_ebpf()?;
    run_command(
        cargo()
            .args(["build", "--release", "-p", "lb-daemon", "-p", "lb-lab"])
            .env(LB_XDP_OBJECT, &object),
    )?;

    let demo = cargo_target_dir().join("release").join("lb-demo");
    let mut cmd = Command::new(&demo);
    cmd.args(args).env(LB_XDP_OBJECT, &object);
    // SAFETY: the closure runs in the forked child before exec and only calls
    // signal(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }

    let _ignore = IgnoreSigint::new();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("failed to start {}", demo.display()))?;
    let status = child
        .wait()
        .with_context(|| format!("waiting for {}", demo.display()))?;
    if !status.success() {
        bail!("{} exited with {status}", demo.display());
    }
    Ok(())
}

/// Ignores SIGINT in this process while alive; restores the previous action
/// on drop.
struct IgnoreSigint(libc::sighandler_t);

impl IgnoreSigint {
    fn new() -> Self {
        // SAFETY: installing SIG_IGN has no preconditions.
        Self(unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) })
    }
}

impl Drop for IgnoreSigint {
    fn drop(&mut self) {
        // SAFETY: restores the action that `signal` returned in `new`.
        unsafe {
            libc::signal(libc::SIGINT, self.0);
        }
    }
}
