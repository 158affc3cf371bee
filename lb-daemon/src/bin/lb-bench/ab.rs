//! `lb-bench --ab OBJECT_A OBJECT_B`: two builds of the program, loaded side
//! by side in one process, timed case by case in alternating slices of
//! single runs. The machines here are shared: their speed drifts by tens of
//! ns between two runs of the same object a minute apart, more than most
//! changes to the data path are worth. Slices of 100 single runs per copy,
//! alternating A, B then B, A, expose both builds to the same drift, so the
//! difference of their medians is the change's own.
//!
//! Where a build is loaded matters too: of two copies of the same object,
//! the one loaded second ran its `floor` ~4 ns faster in every A/A run,
//! and some cases up to 6% faster; with each loaded twice (A, B, B, A) one
//! build was still 2-5% faster than the other in A/A runs. So each build is
//! loaded four times (A, B, B, A, A, B, B, A) and its samples are those of
//! all its copies.
//!
//! The first new-flow case (`new_rr`) runs higher here than in the main
//! bench, and noisier (A/A up to 5%): eight copies' tables warm up side by
//! side. More untimed flows per copy made every case slower and noisier
//! (a new flow's cost grows with the memory the tables span), so judge a
//! change by the other cases too.
//!
//! Every case is timed with single runs (`repeat = 1`) as the new-flow
//! cases of the main bench are; "own" is a case's median minus the same
//! build's `floor` median.

use std::path::Path;

use anyhow::{Context, Result};
use lb_common::program_names;
use lb_daemon::dataplane::Dataplane;

use super::{Bench, Services, TCP_ACK, TCP_SYN, limits, median, new_client_syn, percentile};

/// Slices per case, and samples per slice of each copy of a build.
const SLICES: usize = 30;
const SLICE_SAMPLES: usize = 100;

/// What one case sends: the same established flow's ACK, or a new flow's
/// SYN to the VIP of service `index`.
#[derive(Clone, Copy)]
enum Frames {
    Floor,
    Established,
    NewFlow(usize),
}

const CASES: [(&str, Frames); 8] = [
    ("floor", Frames::Floor),
    ("hit_tcp4", Frames::Established),
    ("new_rr", Frames::NewFlow(0)),
    ("new_wrr", Frames::NewFlow(1)),
    ("new_lc_4", Frames::NewFlow(2)),
    ("new_lc_256", Frames::NewFlow(3)),
    ("new_maglev", Frames::NewFlow(4)),
    ("new_maglev_4096", Frames::NewFlow(5)),
];

struct Side {
    bench: Bench,
    services: Services,
    /// The established flow's ACK.
    ack: Vec<u8>,
}

impl Side {
    fn load(object: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(object).with_context(|| format!("reading {}", object.display()))?;
        let dp = Dataplane::load_object(&bytes, limits())
            .with_context(|| format!("loading {}", object.display()))?;
        let (mut bench, services) = Bench::new(dp)?;
        let flow = |flags| services.established_v4(flags);
        bench.run_once(program_names::LB, &flow(TCP_SYN))?;
        bench.run_once(program_names::LB, &flow(TCP_ACK))?;
        bench.warm_up(services.v4(0))?;
        let ack = flow(TCP_ACK);
        Ok(Self {
            bench,
            services,
            ack,
        })
    }

    fn slice(&mut self, frames: Frames) -> Result<Vec<f64>> {
        match frames {
            Frames::Floor => {
                let ack = self.ack.clone();
                self.bench
                    .single_n(program_names::FLOOR, SLICE_SAMPLES, |_| ack.clone())
            }
            Frames::Established => {
                let ack = self.ack.clone();
                self.bench
                    .single_n(program_names::LB, SLICE_SAMPLES, |_| ack.clone())
            }
            Frames::NewFlow(index) => {
                let vip = self.services.v4(index);
                self.bench
                    .single_n(program_names::LB, SLICE_SAMPLES, |c| new_client_syn(c, vip))
            }
        }
    }
}

pub fn run(a: &Path, b: &Path) -> Result<()> {
    // (copy, build), loaded A, B, B, A, A, B, B, A.
    let mut sides = Vec::new();
    for build in [0, 1, 1, 0, 0, 1, 1, 0] {
        sides.push((Side::load([a, b][build])?, build));
    }
    println!("A = {}\nB = {}", a.display(), b.display());
    println!(
        "{SLICES} slices x {SLICE_SAMPLES} single runs per copy and case; each build loaded four times, copies taken in turn, the order reversed every slice\n"
    );
    println!(
        "{:<16} {:>9} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8}",
        "case", "A median", "B median", "A own", "B own", "B/A own", "A p99", "B p99"
    );
    let mut floors = [0.0; 2];
    for (case, frames) in CASES {
        let mut samples = [Vec::new(), Vec::new()];
        for slice in 0..SLICES {
            for i in 0..sides.len() {
                let copy = if slice % 2 == 0 {
                    i
                } else {
                    sides.len() - 1 - i
                };
                let (side, build) = &mut sides[copy];
                samples[*build].extend(side.slice(frames)?);
            }
        }
        let medians = samples.each_ref().map(|s| median(s));
        let p99 = samples.each_ref().map(|s| percentile(s, 0.99));
        if matches!(frames, Frames::Floor) {
            floors = medians;
        }
        let own = [medians[0] - floors[0], medians[1] - floors[1]];
        let ratio = if own[0] > 0.0 {
            format!("{:.3}", own[1] / own[0])
        } else {
            "-".to_owned()
        };
        println!(
            "{case:<16} {:>9.0} {:>9.0} {:>8.0} {:>8.0} {ratio:>9} {:>8.0} {:>8.0}",
            medians[0], medians[1], own[0], own[1], p99[0], p99[1]
        );
    }
    Ok(())
}
