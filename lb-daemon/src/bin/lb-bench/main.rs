//! `lb-bench`: per-packet cost of the data path through `BPF_PROG_TEST_RUN`,
//! every case in one run, reported as medians and as ratios to `floor`.
//! Run it with `cargo xtask bench [--json]`.
//!
//! Two ways of timing, because a test run with `repeat > 1` feeds the program
//! its own output again:
//! - established flows and `floor`: one test run with `repeat = REPEAT`; the
//!   kernel reports the mean per packet. Median over several such runs.
//! - new flows, which need a fresh 5-tuple each time: many test runs with
//!   `repeat = 1`, each a new flow. A single run also times the kernel's
//!   timer overhead, so the figure reported is
//!   `floor (batched) + median(single new flow) - median(single floor)`,
//!   i.e. the extra cost over `floor` measured with the same method.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use anyhow::{Context, Result, bail};

// The test fixtures' frame builders: the bench times the same layouts.
#[path = "../../../tests/common/packets.rs"]
mod packets;
use aya::programs::{TestRun, TestRunOptions};
use lb_common::{FLOW_ACTIVE, FlowKey, FlowValue, program_names};
use lb_daemon::{
    balancer::{
        Balancer,
        model::{Protocol, RealSpec, Scheduler, ServiceAddr, ServiceSpec},
        monotonic_now_ns,
    },
    dataplane::{Dataplane, DataplaneLimits},
    sched::maglev,
};
use packets::{DIRECTOR_MAC, TCP_ACK, TCP_SYN, tcp4, tcp6};

const REPEAT: u32 = 200_000;
const BATCHED_RUNS: usize = 15;
const SINGLE_SAMPLES: usize = 4000;
const MILLION: u32 = 1_000_000;
/// Untimed new flows before the first timed one. A freshly created
/// connection table is slower for its first ~12,000 inserts on these
/// machines (the first new-flow case ran ~90 ns slower than the same case
/// run again later), and a running director's table is never fresh.
const WARM_UP_FLOWS: usize = 20_000;

mod ab;

/// Room for the 1M-flow case and the bench's reals.
fn limits() -> DataplaneLimits {
    DataplaneLimits {
        conntrack_size: MILLION + 100_000,
        max_reals: 8192,
        ..DataplaneLimits::default()
    }
}

struct Bench {
    lb: Balancer,
    next_client: u32,
}

struct Measurement {
    case: &'static str,
    ns_per_pkt: f64,
    method: &'static str,
    /// Median of single runs (new-flow cases), before the floor correction.
    single_ns: Option<f64>,
    /// 99th percentile of the same single runs, raw: the tail a new
    /// connection may see (timer overhead included, like `single_ns`).
    single_p99_ns: Option<f64>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    pin_to_cpu0()?;
    if let Some(at) = args.iter().position(|a| a == "--ab") {
        let [a, b] = [at + 1, at + 2].map(|i| args.get(i).map(std::path::PathBuf::from));
        let (Some(a), Some(b)) = (a, b) else {
            bail!("--ab needs two eBPF objects: lb-bench --ab OBJECT_A OBJECT_B");
        };
        return ab::run(&a, &b);
    }
    let json = args.iter().any(|a| a == "--json");
    let started = Instant::now();
    let (mut b, services) = Bench::new(load(limits())?)?;
    let mut results = Vec::new();

    let floor_frame = tcp4(
        Ipv4Addr::new(192, 0, 2, 1),
        1000,
        services.v4(0),
        80,
        TCP_ACK,
    );
    let floor = median(&b.batched(program_names::FLOOR, &floor_frame)?);
    let floor_singles = b.single(program_names::FLOOR, |_| floor_frame.clone())?;
    let floor_single = median(&floor_singles);
    results.push(Measurement {
        case: "floor",
        ns_per_pkt: floor,
        method: "batched",
        single_ns: Some(floor_single),
        single_p99_ns: Some(percentile(&floor_singles, 0.99)),
    });

    // The same established flow is timed with a small and a full table.
    let hit4 = |flags| services.established_v4(flags);
    results.push(b.hit_case("hit_tcp4", hit4)?);
    results.push(b.hit_case("hit_tcp6", |flags| {
        tcp6(client6(1), 5000, services.v6, 80, flags)
    })?);
    b.warm_up(services.v4(0))?;
    for (case, index) in [
        ("new_rr", 0),
        ("new_wrr", 1),
        ("new_lc_4", 2),
        ("new_lc_256", 3),
        ("new_maglev", 4),
        ("new_maglev_4096", 5),
    ] {
        results.push(b.new_case(case, services.v4(index), floor, floor_single)?);
    }
    // Flow sharing on (`[ecmp.sync]`): each new flow also writes a record
    // into the ring buffer, which is emptied after each case as lbd would.
    b.lb.dataplane_mut().set_share_flows(true)?;
    // An object from before flow sharing has no ring: the same cases then
    // time the program without it, for A/B runs.
    let mut ring = b.lb.dataplane_mut().share_events().ok();
    for (case, index) in [("new_rr_share", 0), ("new_lc_4_share", 2)] {
        results.push(b.new_case(case, services.v4(index), floor, floor_single)?);
        while let Some(r) = ring.as_mut() {
            if r.next().is_none() {
                break;
            }
        }
    }
    b.lb.dataplane_mut().set_share_flows(false)?;
    // A SYN flood past the SYN allowance: SYNs are looked up in CONNTRACK
    // and go to HALF_OPEN (an object from before the allowance always
    // works that way).
    if let Ok(allowance) = b.lb.dataplane().syn_allowance() {
        b.lb.dataplane_mut().set_syn_allowance(0)?;
        results.push(b.new_case("new_rr_flood", services.v4(0), floor, floor_single)?);
        b.lb.dataplane_mut().set_syn_allowance(allowance)?;
    }
    b.fill_conntrack(MILLION, &services)?;
    results.push(b.hit_case("hit_tcp4_1m", hit4)?);
    // New flows into the table of a busy director: a million flows span
    // ~110 MB of elements, and the table (1.1M) is 2M buckets at half load.
    // Warmed first like the small cases (the flows written from userspace
    // leave it as slow as a fresh one for its next ~12,000 inserts).
    b.warm_up(services.v4(0))?;
    results.push(b.new_case("new_rr_1m", services.v4(0), floor, floor_single)?);

    for m in &results {
        let ratio = m.ns_per_pkt / floor;
        if json {
            let number = |v: Option<f64>| v.map_or("null".to_owned(), |s| format!("{s:.1}"));
            println!(
                "{{\"case\": \"{}\", \"ns_per_pkt\": {:.1}, \"ratio_to_floor\": {ratio:.2}, \"method\": \"{}\", \"single_run_median_ns\": {}, \"single_run_p99_ns\": {}, \"own_ns\": {}}}",
                m.case,
                m.ns_per_pkt,
                m.method,
                number(m.single_ns),
                number(m.single_p99_ns),
                number(own_ns(m, floor_single))
            );
        }
    }
    if !json {
        print_table(&results, floor, floor_single);
        println!(
            "\n({} s in all; medians of {BATCHED_RUNS} runs x {REPEAT} packets, or of {SINGLE_SAMPLES} single new flows)",
            started.elapsed().as_secs()
        );
    }
    Ok(())
}

/// The VIPs of the benchmark's services.
struct Services {
    v4_vips: Vec<Ipv4Addr>,
    v6: Ipv6Addr,
    hit_service: ServiceAddr,
}

impl Services {
    fn v4(&self, index: usize) -> Ipv4Addr {
        self.v4_vips[index]
    }

    /// A frame with TCP `flags` of the established IPv4 flow the hit cases
    /// time (to the first service).
    fn established_v4(&self, flags: u8) -> Vec<u8> {
        tcp4(Ipv4Addr::new(198, 51, 100, 1), 5000, self.v4(0), 80, flags)
    }
}

impl Bench {
    /// A balancer on `dp` with the bench's services.
    fn new(mut dp: Dataplane) -> Result<(Self, Services)> {
        // Test runs without a context arrive on loopback (ifindex 1).
        dp.set_interfaces(&[(1, DIRECTOR_MAC)])?;
        let mut b = Bench {
            lb: Balancer::new(dp),
            next_client: 1,
        };
        let services = b.configure()?;
        // The bench's SYNs never complete their handshakes, which in a
        // director gives their SYN allowance back; past ~68,000 of them on
        // one CPU every SYN would take the flood path (`new_rr_flood`). An
        // object from before the allowance has no such map.
        if b.lb.dataplane().syn_allowance().is_ok() {
            b.lb.dataplane_mut().set_syn_allowance(1 << 40)?;
        }
        Ok((b, services))
    }

    /// One service per case: rr/4, wrr/4, lc/4, lc/256, maglev/4,
    /// maglev/4096 (IPv4), and rr/4 on IPv6.
    fn configure(&mut self) -> Result<Services> {
        let cases: [(Scheduler, usize); 6] = [
            (Scheduler::RoundRobin, 4),
            (Scheduler::WeightedRoundRobin, 4),
            (Scheduler::LeastConnection, 4),
            (Scheduler::LeastConnection, 256),
            (Scheduler::Maglev, 4),
            (Scheduler::Maglev, 4096),
        ];
        let mut v4_vips = Vec::new();
        for (i, (scheduler, n)) in cases.into_iter().enumerate() {
            let vip = Ipv4Addr::new(10, 0, 0, 100 + i as u8);
            let reals = (0..n)
                .map(|r| {
                    real(
                        IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + r as u32)),
                        if scheduler == Scheduler::WeightedRoundRobin {
                            r as u32 + 1
                        } else {
                            1
                        },
                    )
                })
                .collect();
            self.apply(vip.into(), scheduler, reals)?;
            v4_vips.push(vip);
        }
        let v6: Ipv6Addr = "fd00::100".parse()?;
        let reals6 = (0..4)
            .map(|r| {
                real(
                    IpAddr::V6(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, r as u16 + 1)),
                    1,
                )
            })
            .collect();
        self.apply(v6.into(), Scheduler::RoundRobin, reals6)?;
        let hit_service = ServiceAddr {
            vip: v4_vips[0].into(),
            port: 80,
            protocol: Protocol::Tcp,
        };
        Ok(Services {
            v4_vips,
            v6,
            hit_service,
        })
    }

    fn apply(&mut self, vip: IpAddr, scheduler: Scheduler, reals: Vec<RealSpec>) -> Result<()> {
        let spec = ServiceSpec {
            fallback: None,
            addr: ServiceAddr {
                vip,
                port: 80,
                protocol: Protocol::Tcp,
            },
            scheduler,
            table_size: maglev::DEFAULT_SIZE,
            reals,
        };
        self.lb
            .apply(&spec)
            .with_context(|| format!("configuring {}", spec.addr))?;
        Ok(())
    }

    /// An established flow: open it with a SYN and its ACK, then time its
    /// ACKs, batched and one by one (as the new flows are timed).
    /// `frame(flags)` builds the flow's frame with those TCP flags.
    fn hit_case(
        &mut self,
        case: &'static str,
        frame: impl Fn(u8) -> Vec<u8>,
    ) -> Result<Measurement> {
        self.run_once(program_names::LB, &frame(TCP_SYN))?;
        self.run_once(program_names::LB, &frame(TCP_ACK))?;
        let ack = frame(TCP_ACK);
        let singles = self.single(program_names::LB, |_| ack.clone())?;
        Ok(Measurement {
            case,
            ns_per_pkt: median(&self.batched(program_names::LB, &ack)?),
            method: "batched",
            single_ns: Some(median(&singles)),
            single_p99_ns: Some(percentile(&singles, 0.99)),
        })
    }

    fn batched(&mut self, program: &'static str, frame: &[u8]) -> Result<Vec<f64>> {
        let mut out = vec![0u8; frame.len() + 256];
        let prog = self.lb.dataplane_mut().program(program)?;
        let mut samples = Vec::with_capacity(BATCHED_RUNS);
        for _ in 0..BATCHED_RUNS {
            let result = prog.test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat: REPEAT,
                ..TestRunOptions::default()
            })?;
            check_verdict(program, result.return_value)?;
            samples.push(result.duration.as_nanos() as f64);
        }
        Ok(samples)
    }

    /// A new-flow case: SYNs of new clients to `vip`, timed one by one.
    fn new_case(
        &mut self,
        case: &'static str,
        vip: Ipv4Addr,
        floor: f64,
        floor_single: f64,
    ) -> Result<Measurement> {
        let singles = self.single(program_names::LB, |c| new_client_syn(c, vip))?;
        let single = median(&singles);
        Ok(Measurement {
            case,
            ns_per_pkt: floor + (single - floor_single),
            method: "single_delta",
            single_ns: Some(single),
            single_p99_ns: Some(percentile(&singles, 0.99)),
        })
    }

    /// Opens `WARM_UP_FLOWS` new flows to `vip`, untimed.
    fn warm_up(&mut self, vip: Ipv4Addr) -> Result<()> {
        for _ in 0..WARM_UP_FLOWS {
            let c = self.next_client;
            self.next_client += 1;
            self.run_once(program_names::LB, &new_client_syn(c, vip))?;
        }
        Ok(())
    }

    /// `SINGLE_SAMPLES` runs with `repeat = 1`, each on `frame(n)` for a new
    /// `n` (a new client, so a new flow).
    fn single(
        &mut self,
        program: &'static str,
        frame: impl Fn(u32) -> Vec<u8>,
    ) -> Result<Vec<f64>> {
        self.single_n(program, SINGLE_SAMPLES, frame)
    }

    /// `count` runs with `repeat = 1`, each on `frame(n)` for a new `n`.
    fn single_n(
        &mut self,
        program: &'static str,
        count: usize,
        frame: impl Fn(u32) -> Vec<u8>,
    ) -> Result<Vec<f64>> {
        let mut samples = Vec::with_capacity(count);
        let mut out = vec![0u8; 512];
        let prog = self.lb.dataplane_mut().program(program)?;
        for _ in 0..count {
            let data = frame(self.next_client);
            self.next_client += 1;
            let result = prog.test_run(TestRunOptions {
                data_in: Some(&data),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })?;
            check_verdict(program, result.return_value)?;
            samples.push(result.duration.as_nanos() as f64);
        }
        Ok(samples)
    }

    fn run_once(&mut self, program: &'static str, frame: &[u8]) -> Result<()> {
        let mut out = vec![0u8; frame.len() + 256];
        let prog = self.lb.dataplane_mut().program(program)?;
        let result = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })?;
        check_verdict(program, result.return_value)
    }

    /// Fills the connection table with `count` established flows of the
    /// first service.
    fn fill_conntrack(&mut self, count: u32, services: &Services) -> Result<()> {
        let value = self
            .lb
            .service_value(&services.hit_service)
            .context("hit service")?;
        let real = self.lb.dataplane().read_table(value.table_offset, 1)?[0];
        let now = monotonic_now_ns();
        let dst = lb_common::addr_words_v4(services.v4(0).octets());
        let dp = self.lb.dataplane_mut();
        for i in 0..count {
            let key = FlowKey {
                src: [(0x2000_0000 + i / 50_000).to_be(), 0, 0, 0],
                dst,
                src_port: (1024 + (i % 50_000) as u16).to_be(),
                dst_port: 80u16.to_be(),
                proto: 6,
                family: 4,
                _pad: [0; 2],
            };
            dp.insert_flow(
                &key,
                &FlowValue {
                    real,
                    state: FLOW_ACTIVE,
                    service: value.id,
                    flags: 0,
                    last_seen_ns: now,
                },
            )?;
        }
        Ok(())
    }
}

/// The SYN of new client number `c` to `vip`: a new flow.
fn new_client_syn(c: u32, vip: Ipv4Addr) -> Vec<u8> {
    tcp4(
        Ipv4Addr::from(0xc000_0000 + c),
        1024 + (c % 60_000) as u16,
        vip,
        80,
        TCP_SYN,
    )
}

/// A real of the bench. Its MAC is the director's own: a batched run feeds
/// the program its own output again, and the data path acts only on frames
/// addressed to the director (`OtherHost` otherwise), so the rewritten frame
/// must still be addressed to it for every run to take the same path.
fn real(addr: IpAddr, weight: u32) -> RealSpec {
    RealSpec {
        addr,
        port: 80,
        weight,
        mac: Some(DIRECTOR_MAC),
        reroute: false,
    }
}

fn check_verdict(program: &str, verdict: u32) -> Result<()> {
    const XDP_TX: u32 = 3;
    if verdict != XDP_TX {
        bail!("{program} returned {verdict}, expected XDP_TX: the benchmark setup is wrong");
    }
    Ok(())
}

/// The embedded program, or with `LB_BENCH_OBJECT` another build of it
/// (A/B comparisons of data-path variants with one bench binary).
fn load(limits: DataplaneLimits) -> Result<Dataplane> {
    match std::env::var_os("LB_BENCH_OBJECT") {
        Some(path) => {
            let object = std::fs::read(&path).context("reading LB_BENCH_OBJECT")?;
            Dataplane::load_object(&object, limits)
        }
        None => Dataplane::load(limits),
    }
    .context("loading the XDP program")
}

fn median(samples: &[f64]) -> f64 {
    percentile(samples, 0.5)
}

/// The sample at quantile `q` (nearest rank).
fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((s.len() as f64 * q).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn pin_to_cpu0() -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; this only affects this thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set)
    };
    if rc != 0 {
        bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn client6(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)
}

/// A case's own work in single runs: its median less `floor`'s, both
/// timed one run at a time (how issue 18 compared the data path with
/// Katran's: 131 ns own work for an established flow there, 361-441 ns for
/// a new one).
fn own_ns(m: &Measurement, floor_single: f64) -> Option<f64> {
    m.single_ns.map(|s| s - floor_single)
}

/// Goals (issue 18), checked against the figures.
fn goal(m: &Measurement, floor_single: f64, results: &[Measurement]) -> String {
    let of = |name: &str| {
        results
            .iter()
            .find(|m| m.case == name)
            .map_or(f64::NAN, |m| m.ns_per_pkt)
    };
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    let ns = m.ns_per_pkt;
    let own = own_ns(m, floor_single).unwrap_or(f64::NAN);
    let tail = match (m.single_ns, m.single_p99_ns) {
        (Some(p50), Some(p99)) => p99 / p50,
        _ => f64::NAN,
    };
    match m.case {
        "hit_tcp4" | "hit_tcp6" => format!("own <= 52 ns: {}", verdict(own <= 52.0)),
        "new_rr" | "new_wrr" | "new_maglev" => format!(
            "own <= 200 ns: {}, p99 <= 2.5x: {}",
            verdict(own <= 200.0),
            verdict(tail <= 2.5)
        ),
        "new_lc_4" => {
            let r = ns / of("new_rr");
            format!("{r:.2}x new_rr, <= 1.1x: {}", verdict(r <= 1.1))
        }
        "new_lc_256" => format!("< 600 ns: {}", verdict(ns < 600.0)),
        "new_rr_1m" => {
            let r = ns / of("new_rr");
            format!("{r:.2}x new_rr, <= 1.2x: {}", verdict(r <= 1.2))
        }
        "hit_tcp4_1m" => {
            let r = ns / of("hit_tcp4");
            format!("{r:.2}x hit_tcp4, <= 1.2x: {}", verdict(r <= 1.2))
        }
        "new_maglev_4096" => {
            let r = ns / of("new_maglev");
            format!("{r:.2}x new_maglev, <= 1.2x: {}", verdict(r <= 1.2))
        }
        // Flow sharing's record per new flow, and a SYN beyond the SYN
        // allowance (a flood), against the same case without.
        "new_rr_share" | "new_rr_flood" => format!("{:+.0} ns vs new_rr", ns - of("new_rr")),
        "new_lc_4_share" => format!("{:+.0} ns vs new_lc_4", ns - of("new_lc_4")),
        _ => String::new(),
    }
}

fn print_table(results: &[Measurement], floor: f64, floor_single: f64) {
    println!(
        "{:<17} {:>8} {:>8}  {:<13} {:>10} {:>10} {:>8} {:>8}  goal",
        "case", "ns/pkt", "x floor", "method", "single p50", "single p99", "p99/p50", "own"
    );
    let number = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.0}"));
    for m in results {
        let ratio = m.ns_per_pkt / floor;
        let tail = match (m.single_ns, m.single_p99_ns) {
            (Some(p50), Some(p99)) => format!("{:.2}", p99 / p50),
            _ => String::new(),
        };
        println!(
            "{:<17} {:>8.1} {:>8.2}  {:<13} {:>10} {:>10} {:>8} {:>8}  {}",
            m.case,
            m.ns_per_pkt,
            ratio,
            m.method,
            number(m.single_ns),
            number(m.single_p99_ns),
            tail,
            number(own_ns(m, floor_single)),
            goal(m, floor_single, results)
        );
    }
}
