//! `cargo xtask test [ARGS]`: builds the eBPF object, then runs `cargo test
//! ARGS` (stable, default members) with `LB_XDP_OBJECT` pointing at it, and
//! prints the total elapsed time.

use std::{ffi::OsString, time::Instant};

use anyhow::Result;

use crate::{LB_XDP_OBJECT, build, cargo, run_command};

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
        run_command(cargo().arg("test").args(args).env(LB_XDP_OBJECT, &object))
    });
    let outcome = if result.is_ok() { "passed" } else { "FAILED" };
    eprintln!(
        "xtask: test {outcome} after {:.1}s in total",
        start.elapsed().as_secs_f64()
    );
    result
}
