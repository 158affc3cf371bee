//! `lb-share-bench`: what flow sharing (`[ecmp.sync]`) costs. Three
//! directors in one process, each the real data path (pinned under
//! `/sys/fs/bpf`, driven through `BPF_PROG_TEST_RUN`) with its real sharing
//! thread, talking over loopback (127.0.0.1-3):
//!
//! 1. new flows at `--rate` (default 50,000 a second over the three, each
//!    a SYN, the handshake's ACK and a FIN: three reports) for
//!    `--seconds`: the CPU of each sharing thread (utime + stime from
//!    `/proc/self/task/*/stat`) and the datagrams and bytes it sent;
//! 2. `--table` own flows (default 1,000,000) in director 0: its start-up
//!    refresh (every flow to both peers; then every 30 s) and the
//!    whole-table dumps the two peers ask of it, each timed and costed at
//!    both ends.
//!
//! Run as root: `cargo run --release -p lb-daemon --bin lb-share-bench`
//! (with `LB_XDP_OBJECT` set, as `cargo xtask build` does).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

#[path = "../../tests/common/packets.rs"]
mod packets;
use aya::programs::{TestRun, TestRunOptions};
use lb_common::{FLOW_ACTIVE, FlowKey, FlowValue, program_names};
use lb_daemon::{
    admin::ShareStatus,
    balancer::{
        Balancer,
        model::{Protocol, RealSpec, Scheduler, ServiceAddr, ServiceSpec},
        monotonic_now_ns,
    },
    config::ShareConfig,
    daemon::flow_share::{self, ShareHandle},
    dataplane::{Dataplane, DataplaneLimits, FlowTable, PinDir, xdp_object},
    metrics::Metrics,
    sched::maglev,
};
use packets::{DIRECTOR_MAC, TCP_ACK, TCP_FIN, TCP_SYN, tcp4};

const DIRECTORS: usize = 3;
const PORT: u16 = 19_142;
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
/// UDP, IPv4 and Ethernet headers of each datagram on the wire.
const WIRE_OVERHEAD: u64 = 8 + 20 + 14;

struct Director {
    lb: Balancer,
    pins: PinDir,
    share: Option<ShareHandle>,
    tid: Option<u32>,
}

fn main() -> Result<()> {
    let arg = |name: &str, default: u64| -> Result<u64> {
        let args: Vec<String> = std::env::args().collect();
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args.get(i + 1).context("a value")?.parse()?),
            None => Ok(default),
        }
    };
    let rate = arg("--rate", 50_000)?;
    let seconds = arg("--seconds", 5)?;
    let table = u32::try_from(arg("--table", 1_000_000)?)?;
    let root = PinDir::new(format!("/sys/fs/bpf/lb-share-bench-{}", std::process::id()));
    let result = run(&root, rate, seconds, table);
    for i in 0..DIRECTORS {
        let _ = PinDir::new(root.root().join(i.to_string())).remove_all();
    }
    let _ = std::fs::remove_dir(root.root());
    result
}

fn run(root: &PinDir, rate: u64, seconds: u64, table: u32) -> Result<()> {
    let limits = DataplaneLimits {
        conntrack_size: table + 200_000,
        max_reals: 1024,
        max_services: 16,
        ..DataplaneLimits::default()
    };
    let started = Instant::now();
    let mut directors = Vec::new();
    for i in 0..DIRECTORS {
        let pins = PinDir::new(root.root().join(i.to_string()));
        let mut dp = Dataplane::open_object(xdp_object()?, limits, Some(&pins))
            .context("loading the data path (root?)")?;
        dp.set_interfaces(&[(1, DIRECTOR_MAC)])?;
        dp.set_share_flows(true)?;
        let mut lb = Balancer::new(dp);
        lb.apply(&service())?;
        directors.push(Director {
            lb,
            pins,
            share: None,
            tid: None,
        });
    }
    println!(
        "3 directors loaded and programmed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for i in 0..DIRECTORS {
        start_share(&mut directors, i)?;
    }
    wait(Duration::from_secs(10), "every director learned", || {
        directors
            .iter()
            .all(|d| d.share.as_ref().is_some_and(ShareHandle::learned))
    })?;

    new_flows(&mut directors, rate, seconds)?;
    full_table(&mut directors, table)?;
    for d in &mut directors {
        if let Some(share) = d.share.take() {
            share.stop();
        }
    }
    Ok(())
}

fn service() -> ServiceSpec {
    ServiceSpec {
        fallback: None,
        addr: ServiceAddr {
            vip: VIP.into(),
            port: 80,
            protocol: Protocol::Tcp,
        },
        scheduler: Scheduler::WeightedLeastConnection,
        table_size: maglev::DEFAULT_SIZE,
        reals: (1..=4)
            .map(|r| RealSpec {
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 1, r)),
                port: 80,
                weight: 1,
                mac: Some(DIRECTOR_MAC),
                reroute: false,
            })
            .collect(),
    }
}

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8))
}

/// Starts director `i`'s sharing thread and notes its thread id.
fn start_share(directors: &mut [Director], i: usize) -> Result<()> {
    let before = share_threads();
    let cfg = ShareConfig {
        peers: (0..DIRECTORS).filter(|&p| p != i).map(addr).collect(),
        port: PORT,
        listen: Some(addr(i)),
        key: "lb-share-bench-key-0123456789".into(),
    };
    let metrics = Arc::new(Metrics::new("bench"));
    let handle = flow_share::start(&cfg, &directors[i].pins, metrics)?;
    let mut tid = None;
    for _ in 0..100 {
        tid = share_threads().into_iter().find(|t| !before.contains(t));
        if tid.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    directors[i].tid = tid;
    directors[i].share = Some(handle);
    Ok(())
}

fn share_threads() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "share")
        })
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

/// utime + stime of a thread, seconds.
fn cpu(tid: Option<u32>) -> f64 {
    let Some(tid) = tid else { return 0.0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return 0.0;
    };
    // After the command name in parentheses: state is field 3; utime and
    // stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').map_or(0, |p| p + 2)..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

fn status(d: &Director) -> ShareStatus {
    d.share
        .as_ref()
        .map(ShareHandle::status)
        .unwrap_or_default()
}

/// (records, datagrams) sent, summed over peers.
fn sent(s: &ShareStatus) -> (u64, u64) {
    s.peers.iter().fold((0, 0), |(r, d), p| {
        (r + p.records_sent, d + p.datagrams_sent)
    })
}

fn received(s: &ShareStatus) -> (u64, u64) {
    s.peers.iter().fold((0, 0), |(r, a), p| {
        (r + p.records_received, a + p.records_applied)
    })
}

/// Bytes on the wire of `datagrams` carrying `records` IPv4 records.
fn wire_bytes(records: u64, datagrams: u64) -> u64 {
    // Header 30, record count 2, tag 32; 25 bytes per record.
    records * 25 + datagrams * (30 + 2 + 32 + WIRE_OVERHEAD)
}

fn wait(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<Duration> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(started.elapsed())
}

fn run_frame(d: &mut Director, frame: &[u8]) -> Result<()> {
    let mut out = [0u8; 256];
    let prog = d.lb.dataplane_mut().program(program_names::LB)?;
    let result = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..TestRunOptions::default()
    })?;
    if result.return_value != 3 {
        bail!(
            "the data path returned {} (expected XDP_TX)",
            result.return_value
        );
    }
    Ok(())
}

/// New flows at `rate` a second over the three directors.
fn new_flows(directors: &mut [Director], rate: u64, seconds: u64) -> Result<()> {
    let cpu0: Vec<f64> = directors.iter().map(|d| cpu(d.tid)).collect();
    let sent0: Vec<(u64, u64)> = directors.iter().map(|d| sent(&status(d))).collect();
    let got0: u64 = directors.iter().map(|d| received(&status(d)).0).sum();
    let started = Instant::now();
    let total = rate * seconds;
    for k in 0..total {
        let due = started + Duration::from_secs_f64(k as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let client = Ipv4Addr::from(0x6400_0000 + u32::try_from(k / 50_000)?);
        let port = 1024 + (k % 50_000) as u16;
        let d = &mut directors[(k % DIRECTORS as u64) as usize];
        for flags in [TCP_SYN, TCP_ACK, TCP_FIN | TCP_ACK] {
            run_frame(d, &tcp4(client, port, VIP, 80, flags))?;
        }
    }
    let driven = started.elapsed().as_secs_f64();
    // Every report sent and applied at both peers.
    let expected = 3 * total * (DIRECTORS as u64 - 1);
    let got = |directors: &[Director]| -> u64 {
        directors
            .iter()
            .map(|d| received(&status(d)).0)
            .sum::<u64>()
            - got0
    };
    let drained = wait(Duration::from_secs(10), "every report received", || {
        got(directors) >= expected
    });
    let lost = expected.saturating_sub(got(directors));
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "\n== {total} new flows (SYN, ACK, FIN: 3 reports each) over 3 directors in {driven:.2} s \
         ({:.0} flows/s, asked {rate}); every report at both peers {:.0} ms after the last flow \
         ({lost} of {expected} records lost)",
        total as f64 / driven,
        drained.as_ref().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
    );
    println!(
        "director  share-thread CPU  (% of a core)  records sent  datagrams sent  bytes/s sent (wire)  records received  applied  ring read  ring dropped"
    );
    for (i, d) in directors.iter().enumerate() {
        let s = status(d);
        let (records, datagrams) = sent(&s);
        let (records, datagrams) = (records - sent0[i].0, datagrams - sent0[i].1);
        let used = cpu(d.tid) - cpu0[i];
        let (got, applied) = received(&s);
        println!(
            "{i:>8}  {used:>14.2} s  {:>13.1}%  {records:>12}  {datagrams:>14}  {:>19.0}  {got:>16}  {applied:>7}  {:>9}  {:>12}",
            100.0 * used / elapsed,
            wire_bytes(records, datagrams) as f64 / driven,
            s.ringbuf_read,
            s.ringbuf_dropped
        );
    }
    Ok(())
}

/// Writes `count` established flows of this director's own into its table.
fn fill_own(director: &Director, count: u32) -> Result<()> {
    let filled = Instant::now();
    let mut flows = FlowTable::open(&director.pins)?;
    let real = director
        .lb
        .real_id(&lb_daemon::balancer::model::RealKey::new(
            service().addr,
            SocketAddr::from(([10, 0, 1, 1], 80)),
        ))
        .context("real slot")?;
    let service_id = director
        .lb
        .service_value(&service().addr)
        .context("service")?
        .id;
    let now = monotonic_now_ns();
    for i in 0..count {
        let key = FlowKey {
            src: [(0x2000_0000 + i / 50_000).to_be(), 0, 0, 0],
            dst: lb_common::addr_words_v4(VIP.octets()),
            src_port: (1024 + (i % 50_000) as u16).to_be(),
            dst_port: 80u16.to_be(),
            proto: 6,
            family: 4,
            _pad: [0; 2],
        };
        flows.insert(
            &key,
            &FlowValue {
                real,
                state: FLOW_ACTIVE,
                service: service_id,
                flags: 0,
                last_seen_ns: now,
            },
        )?;
    }
    println!(
        "\n== {count} more own flows in director 0 (written in {:.1} s)",
        filled.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `count` own flows in director 0: its refresh, then the whole-table
/// dumps a restarted director 1 asks of it and of director 2.
fn full_table(directors: &mut [Director], count: u32) -> Result<()> {
    fill_own(&directors[0], count)?;
    let n = u64::from(count);
    let cpu0: Vec<f64> = directors.iter().map(|d| cpu(d.tid)).collect();
    let sent0 = sent(&status(&directors[0]));
    let got0: Vec<u64> = directors.iter().map(|d| received(&status(d)).0).collect();
    let started = Instant::now();
    directors[0].share.as_ref().context("running")?.refresh();
    let refresh = wait(Duration::from_mins(2), "the refresh sent", || {
        sent(&status(&directors[0])).0 - sent0.0 >= 2 * n
    })?;
    let cpu_refresh = cpu(directors[0].tid) - cpu0[0];
    let (r, dg) = sent(&status(&directors[0]));
    let (r, dg) = (r - sent0.0, dg - sent0.1);
    wait(Duration::from_mins(2), "the refresh applied", || {
        (1..DIRECTORS).all(|i| received(&status(&directors[i])).0 - got0[i] >= n)
    })?;
    let applied = started.elapsed();
    let peers: Vec<f64> = (1..DIRECTORS)
        .map(|i| cpu(directors[i].tid) - cpu0[i])
        .collect();
    println!(
        "refresh (every 30 s): director 0 sent {r} records in {dg} datagrams ({:.1} MB on the \
         wire) in {:.2} s, its thread {cpu_refresh:.2} s CPU (reading both tables, encoding, \
         sending to 2 peers); all applied at both peers {:.2} s after it began, their threads \
         {:.2} s and {:.2} s CPU",
        wire_bytes(r, dg) as f64 / 1e6,
        refresh.as_secs_f64(),
        applied.as_secs_f64(),
        peers[0],
        peers[1],
    );
    // A restarted director 1 asks 0 and 2 for their whole tables.
    if let Some(share) = directors[1].share.take() {
        share.stop();
    }
    let cpu1: Vec<f64> = directors.iter().map(|d| cpu(d.tid)).collect();
    let sent1: Vec<u64> = directors.iter().map(|d| sent(&status(d)).0).collect();
    let started = Instant::now();
    start_share(directors, 1)?;
    let dumps = wait(Duration::from_mins(3), "director 1 got both tables", || {
        directors[1]
            .share
            .as_ref()
            .is_some_and(ShareHandle::learned)
    })?;
    let s1 = status(&directors[1]);
    println!(
        "director 1 restarted: both whole tables ({} and {} flows) in {:.2} s; the senders' \
         threads {:.2} s and {:.2} s CPU ({} and {} records sent), director 1's {:.2} s \
         ({} records received, {} written: the others it had)",
        s1.peers[0].last_full_table_flows,
        s1.peers[1].last_full_table_flows,
        dumps.as_secs_f64(),
        cpu(directors[0].tid) - cpu1[0],
        cpu(directors[2].tid) - cpu1[2],
        sent(&status(&directors[0])).0 - sent1[0],
        sent(&status(&directors[2])).0 - sent1[2],
        cpu(directors[1].tid),
        received(&s1).0,
        received(&s1).1,
    );
    let _ = started;
    Ok(())
}
