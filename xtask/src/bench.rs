//! `cargo xtask bench [--json] [ARGS]`: builds the eBPF object, then runs the
//! `lb-bench` binary of `lb-daemon` (release) with `LB_XDP_OBJECT` set.

use std::ffi::OsString;

use anyhow::Result;

use crate::{LB_XDP_OBJECT, build, cargo, run_command};

pub(crate) fn run(json: bool, args: &[OsString]) -> Result<()> {
    let object = build::build_ebpf()?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "-p",
        "lb-daemon",
        "--bin",
        "lb-bench",
        "--",
    ])
    .env(LB_XDP_OBJECT, &object);
    if json {
        cmd.arg("--json");
    }
    cmd.args(args);
    run_command(&mut cmd)
}
