//! `cargo xtask test [ARGS]`: builds the eBPF object, then runs `cargo test
//! ARGS` (stable, default members) with `LB_XDP_OBJECT` pointing at it, and
//! prints the total elapsed time. For the whole suite (no ARGS) it first
//! builds the Debian package and passes its path in `LB_DEB`.

use std::{ffi::OsString, time::Instant};

use anyhow::Result;

use crate::{LB_XDP_OBJECT, build, cargo, package, run_command};

pub(crate) fn run(args: &[OsString]) -> Result<()> {
    let start = Instant::now();
    // The namespace tests run the real `lbd` and `lbctl` binaries, which a
    // plain `cargo test -p lb-lab` would not build.
    let result = build::build_ebpf().and_then(|object| {
        run_command(
            cargo()
                .args(["build", "-p", "lb-daemon", "--bins"])
                .env(LB_XDP_OBJECT, &object),
        )?;
        let mut test = cargo();
        test.arg("test").args(args).env(LB_XDP_OBJECT, &object);
        // The package test needs the package: built for the whole suite,
        // or when the arguments name it (a release build takes minutes,
        // so not for every subset).
        if args.is_empty() || args.iter().any(|a| a.to_string_lossy().contains("package")) {
            let deb = package::build_with(&object)?;
            test.env("LB_DEB", deb);
        }
        run_command(&mut test)
    });
    let outcome = if result.is_ok() { "passed" } else { "FAILED" };
    eprintln!(
        "xtask: test {outcome} after {:.1}s in total",
        start.elapsed().as_secs_f64()
    );
    result
}
