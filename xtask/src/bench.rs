//! `cargo xtask bench [--json] [ARGS]`: builds the eBPF object, then runs the
//! `lb-bench` binary of `lb-daemon` (release) with `LB_XDP_OBJECT` set, then
//! `lbd-scale` of `lb-lab`: the real `lbd` (with the object embedded) with
//! 100 services and 1000 reals, for its memory and config apply time; the
//! health checker's CPU with 10,000 reals (an ignored test, release); and
//! `lb-share-bench`, the CPU and bandwidth of flow sharing.

use std::ffi::OsString;

use anyhow::Result;

use crate::{LB_XDP_OBJECT, build, cargo, cargo_target_dir, run_command};

/// `ARGS` go to `lb-bench` only; with `--ab OBJECT_A OBJECT_B` only
/// `lb-bench` runs (see `lb-bench/ab.rs`).
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
    run_command(&mut cmd)?;
    // An A/B comparison of two builds (`--ab A B`) is all that was asked.
    if args.iter().any(|a| a == "--ab") {
        return Ok(());
    }

    // lbd-scale runs lbd and lbctl from its own directory. Two builds: with
    // both packages selected, `--bins` would build every lb-lab binary too.
    run_command(
        cargo()
            .args(["build", "--release", "-p", "lb-daemon", "--bins"])
            .env(LB_XDP_OBJECT, &object),
    )?;
    run_command(
        cargo()
            .args(["build", "--release", "-p", "lb-lab", "--bin", "lbd-scale"])
            .env(LB_XDP_OBJECT, &object),
    )?;
    let mut scale = std::process::Command::new(cargo_target_dir().join("release/lbd-scale"));
    if json {
        // stdout of `bench --json` carries only per-packet cases (each with
        // `ns_per_pkt`, the fixed interface); the daemon's figures, JSON too,
        // go to stderr.
        scale
            .arg("--json")
            .stdout(std::process::Stdio::from(std::io::stderr()));
    }
    // The per-packet results are printed already: a failed daemon run is
    // reported, not fatal to them.
    if let Err(e) = run_command(&mut scale) {
        eprintln!("xtask: lbd-scale failed: {e:#}");
    }
    // The health checker's CPU cost with 10,000 reals at a 1 s interval
    // (goal: under a quarter of one core), against loopback servers.
    let mut checker = cargo();
    checker
        .args([
            "test",
            "--release",
            "-p",
            "lb-daemon",
            "--test",
            "health_probes",
            "--",
            "--ignored",
            "--nocapture",
            "checker_cpu",
        ])
        .env(LB_XDP_OBJECT, &object);
    if json {
        checker.stdout(std::process::Stdio::from(std::io::stderr()));
    }
    if let Err(e) = run_command(&mut checker) {
        eprintln!("xtask: the checker CPU measurement failed: {e:#}");
    }
    // Flow sharing ([ecmp.sync]): three directors' sharing threads at
    // 50,000 new flows/s, and a million-flow refresh and whole-table
    // dump (built above with the other lb-daemon binaries).
    let mut share = std::process::Command::new(cargo_target_dir().join("release/lb-share-bench"));
    if json {
        share.stdout(std::process::Stdio::from(std::io::stderr()));
    }
    if let Err(e) = run_command(&mut share) {
        eprintln!("xtask: the flow-sharing measurement failed: {e:#}");
    }
    Ok(())
}
