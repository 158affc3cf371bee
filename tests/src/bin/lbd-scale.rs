//! `lbd-scale`: the real `lbd` with 100 services and 1000 reals, in a lab
//! namespace. Reports its memory (RSS, peak RSS, and the kernel memory of
//! its BPF maps, which RSS does not include), how long it takes to apply
//! that config and to start, and how long `lbctl` takes at that size.
//! Run it with `cargo xtask bench [--json]` (after `lb-bench`).
//!
//! Three fresh starts (`lbd teardown` in between), medians reported as
//! `lbd_1000_reals`; then one restart after `kill -9` that adopts the
//! pinned maps, reported as `lbd_1000_reals_adopt`.
//!
//! Per start: `apply_ms` and `startup_ms` come from lbd's own "lbd ready"
//! log line (programming every service; process start to ready);
//! `ready_ms` is the wall time from spawning it to the first `lbctl status`
//! that answers; `status_ms` is the median wall time of `lbctl --json
//! status`; `real_add_ms` and `real_remove_ms` time one `lbctl real add`
//! and `lbctl real remove` on a Maglev service (the costliest change: the
//! lookup table is rebuilt), both including the write-back to the config
//! file; the memory is read from `/proc/<lbd>/status` after those calls.
//!
//! The status page next to the scrape (see `lbd-scale/page.rs`): wall and
//! CPU time per request of `GET /metrics`, `GET /` (the page), `GET
//! /api/status` (its first load) and `GET /api/status?since=…` (each 2 s
//! refresh); and in-process, the JSON of a full 15-minute history of 1000
//! reals against the exposition of the same reals.

use std::{
    ffi::OsStr,
    fmt::Write as _,
    fs,
    net::Ipv4Addr,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use lb_lab::{Lab, daemon::LabDaemon, format_mac};

#[path = "lbd-scale/page.rs"]
mod page;

use page::PageCosts;

const SERVICES: usize = 100;
const REALS_PER_SERVICE: usize = 10;
const REALS: usize = SERVICES * REALS_PER_SERVICE;
const PORT: u16 = 80;
const CONNTRACK_SIZE: u32 = 1_000_000;
const FRESH_STARTS: usize = 3;
const STATUS_SAMPLES: usize = 5;
const RSS_TARGET_MB: f64 = 50.0;
const APPLY_TARGET_MS: f64 = 200.0;
/// The service `lbctl real add` changes (a Maglev one, see `scheduler`) and
/// the real it adds (outside the configured ones).
const CHANGED_SERVICE: usize = 5;
const ADDED_REAL: Ipv4Addr = Ipv4Addr::new(10, 97, 200, 1);
/// Flows written into the table for the ageing measurement, all idle past
/// their timeout: the next pass reads and deletes every one.
const AGED_FLOWS: u32 = 900_000;
/// lbd's ageing interval here (seconds).
const AGEING_INTERVAL_S: u64 = 3;
/// How long `lbctl status` is sampled while a pass runs.
const AGEING_WATCH: Duration = Duration::from_secs(8);

/// What one start of lbd measured.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rss_mb: f64,
    hwm_mb: f64,
    bpf_maps_mb: f64,
    apply_ms: f64,
    startup_ms: f64,
    ready_ms: f64,
    status_ms: f64,
    real_add_ms: f64,
    real_remove_ms: f64,
    /// Median wall time of a `GET /metrics` (all 1000 reals).
    scrape_ms: f64,
}

impl Sample {
    const FIELDS: usize = 10;

    fn to_array(self) -> [f64; Self::FIELDS] {
        [
            self.rss_mb,
            self.hwm_mb,
            self.bpf_maps_mb,
            self.apply_ms,
            self.startup_ms,
            self.ready_ms,
            self.status_ms,
            self.real_add_ms,
            self.real_remove_ms,
            self.scrape_ms,
        ]
    }

    fn from_array(a: [f64; Self::FIELDS]) -> Self {
        Self {
            rss_mb: a[0],
            hwm_mb: a[1],
            bpf_maps_mb: a[2],
            apply_ms: a[3],
            startup_ms: a[4],
            ready_ms: a[5],
            status_ms: a[6],
            real_add_ms: a[7],
            real_remove_ms: a[8],
            scrape_ms: a[9],
        }
    }

    /// The median of each field on its own.
    fn median(samples: &[Self]) -> Self {
        let mut out = [0.0; Self::FIELDS];
        for (i, slot) in out.iter_mut().enumerate() {
            let column: Vec<f64> = samples.iter().map(|s| s.to_array()[i]).collect();
            *slot = median(&column);
        }
        Self::from_array(out)
    }
}

struct Case {
    name: &'static str,
    runs: usize,
    sample: Sample,
    page: PageCosts,
}

/// The median of each field of the page costs on its own.
fn median_page(samples: &[PageCosts]) -> PageCosts {
    let mut out = [0.0; PageCosts::FIELDS];
    for (i, slot) in out.iter_mut().enumerate() {
        let column: Vec<f64> = samples.iter().map(|s| s.to_array()[i]).collect();
        *slot = median(&column);
    }
    PageCosts::from_array(out)
}

/// `lbctl ARGS`, which must succeed: its stdout and wall time.
fn lbctl_timed(daemon: &LabDaemon, args: &[&str]) -> Result<(String, Duration)> {
    let started = Instant::now();
    let out = daemon.lbctl_ok(args)?;
    Ok((out, started.elapsed()))
}

/// One start already done: reads everything a [`Sample`] holds, and what
/// the status page costs.
fn measure(daemon: &LabDaemon) -> Result<(Sample, PageCosts)> {
    let pid = daemon.pid().context("lbd is not running")?;
    let comm = fs::read_to_string(format!("/proc/{pid}/comm"))?;
    ensure!(
        comm.trim() == "lbd",
        "pid {pid} is {:?}, not lbd (did nsenter fork?)",
        comm.trim()
    );
    let log = daemon.current_log();
    let ready_line = log
        .lines()
        .find(|l| l.contains("lbd ready"))
        .context("no \"lbd ready\" line in lbd's log")?;
    let apply_ms = log_field(ready_line, "apply_ms")?;
    let startup_ms = log_field(ready_line, "startup_ms")?;
    ensure!(
        log_field::<usize>(ready_line, "services")? == SERVICES
            && log_field::<usize>(ready_line, "reals")? == REALS,
        "lbd did not load {SERVICES} services and {REALS} reals: {ready_line}"
    );
    ensure!(
        !log.contains("MAC not resolved"),
        "every real has a static MAC, yet lbd waits for some"
    );

    let mut status_times = Vec::new();
    for _ in 0..STATUS_SAMPLES {
        let (out, elapsed) = lbctl_timed(daemon, &["--json", "status"])?;
        check_status(&out)?;
        status_times.push(ms(elapsed));
    }

    let service = service_name(CHANGED_SERVICE);
    let real = ADDED_REAL.to_string();
    let mac = format_mac([0x02, 0x97, 0xff, 0, 0, 1]);
    let (_, add) = lbctl_timed(daemon, &["real", "add", &service, &real, "--mac", &mac])?;
    let (_, remove) = lbctl_timed(daemon, &["real", "remove", &service, &real])?;

    let mut scrape_times = Vec::new();
    for _ in 0..STATUS_SAMPLES {
        let started = Instant::now();
        let page = lb_lab::http_get(
            daemon.namespace(),
            "127.0.0.1:9140".parse()?,
            "/metrics",
            Duration::from_secs(10),
        )?;
        scrape_times.push(ms(started.elapsed()));
        if page.status != 200 || !page.text().contains("lb_real_packets_total") {
            bail!("GET /metrics answered {}", page.status);
        }
    }

    let page = page::measure(daemon)?;

    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let sample = Sample {
        scrape_ms: median(&scrape_times),
        rss_mb: status_kb(&status, "VmRSS")? / 1024.0,
        hwm_mb: status_kb(&status, "VmHWM")? / 1024.0,
        bpf_maps_mb: bpf_map_bytes(pid)? / f64::from(1 << 20),
        apply_ms,
        startup_ms,
        ready_ms: ms(daemon.ready_after()),
        status_ms: median(&status_times),
        real_add_ms: ms(add),
        real_remove_ms: ms(remove),
    };
    Ok((sample, page))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// The scheduler of service `s`: 50 wlc, 40 maglev, 10 wrr.
fn scheduler(s: usize) -> &'static str {
    match s % 10 {
        0..=4 => "wlc",
        5..=8 => "maglev",
        _ => "wrr",
    }
}

/// `10.98.0.1` … for services, `10.97.0.1` … for reals (250 per /24).
fn addr(second: u8, index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, second, (index / 250) as u8, (index % 250 + 1) as u8)
}

fn service_name(s: usize) -> String {
    format!("{}:{PORT}/tcp", addr(98, s))
}

/// The config, with this lab's admin socket and pin directory.
fn config_text(lab: &Lab) -> String {
    let socket = lab.dir().join("lbd-scale.sock");
    // `lbl<pid>-…`: a lab's teardown (and a later run's stale cleanup)
    // removes it if lbd teardown cannot.
    let pin_path = PathBuf::from(format!("/sys/fs/bpf/{}scale", lab.prefix()));
    let mut text = format!(
        "# lbd-scale: {SERVICES} services x {REALS_PER_SERVICE} reals\n\
         [daemon]\n\
         admin_socket = \"{}\"\n\
         pin_path = \"{}\"\n\n\
         [dataplane]\n\
         interfaces = [\"eth0\"]\n\
         conntrack_size = {CONNTRACK_SIZE}\n\n\
         [timeouts]\n\
         ageing_interval = \"{AGEING_INTERVAL_S}s\"\n",
        socket.display(),
        pin_path.display(),
    );
    for s in 0..SERVICES {
        let _ = write!(
            text,
            "\n[[service]]\nvip = \"{}\"\nport = {PORT}\nscheduler = \"{}\"\n",
            addr(98, s),
            scheduler(s)
        );
        for r in 0..REALS_PER_SERVICE {
            let i = s * REALS_PER_SERVICE + r;
            let mac = format_mac([0x02, 0x97, 0, 0, (i >> 8) as u8, i as u8]);
            let _ = write!(
                text,
                "\n[[service.real]]\naddress = \"{}\"\nweight = {}\nmac = \"{mac}\"\n",
                addr(97, i),
                100 + 10 * r
            );
        }
    }
    text
}

/// `name=VALUE` or `name="VALUE"` in a tracing log line, as a number.
fn log_field<T: std::str::FromStr>(line: &str, name: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let value = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .with_context(|| format!("no {name}= in {line:?}"))?;
    value
        .trim_matches('"')
        .parse()
        .with_context(|| format!("{name}={value} is not a number"))
}

/// `Name:   1234 kB` from `/proc/<pid>/status`.
fn status_kb(status: &str, name: &str) -> Result<f64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .with_context(|| format!("no {name} in /proc/<pid>/status"))?;
    let kb = line
        .trim()
        .strip_suffix("kB")
        .with_context(|| format!("{name}: {line:?} is not in kB"))?;
    Ok(kb.trim().parse()?)
}

/// The kernel memory (`memlock`) of every BPF map that the process holds
/// open, each map counted once.
fn bpf_map_bytes(pid: u32) -> Result<f64> {
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0u64;
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let Ok(info) = fs::read_to_string(entry?.path()) else {
            continue;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(memlock)) = (field("map_id"), field("memlock"))
            && seen.insert(id)
        {
            total += memlock;
        }
    }
    ensure!(total > 0, "lbd holds no BPF maps open?");
    Ok(total as f64)
}

/// `lbctl --json status` lists every service and real (and maybe reals
/// that were removed, kept until the next ageing pass).
fn check_status(json: &str) -> Result<()> {
    let status: serde_json::Value = serde_json::from_str(json).context("lbctl --json status")?;
    let services = status["services"]
        .as_array()
        .context("no services in lbctl --json status")?;
    let reals: usize = services
        .iter()
        .flat_map(|s| s["reals"].as_array().into_iter().flatten())
        .filter(|r| r["state"] != "removed")
        .count();
    ensure!(
        services.len() == SERVICES && reals == REALS,
        "lbctl status shows {} services and {reals} reals, not {SERVICES} and {REALS}",
        services.len()
    );
    Ok(())
}

fn run(json: bool) -> Result<Vec<Case>> {
    let mut lab = Lab::builder()
        .clients(0)
        .directors(1)
        .reals(0)
        .big_file_size(0)
        .build()
        .context("building the lab (one director namespace)")?;
    let text = config_text(&lab);
    let mut daemon = LabDaemon::start_with_config(&mut lab, 0, &text)?;
    measure_all(&mut daemon, &text, json).map_err(|e| {
        anyhow!(
            "{e:#}\nlog of lbd (latest start):\n{}",
            daemon.current_log()
        )
    })
}

/// Three fresh starts (the first already made), then a restart after
/// `kill -9` that adopts the pinned maps.
fn measure_all(daemon: &mut LabDaemon, config: &str, json: bool) -> Result<Vec<Case>> {
    let mut fresh = Vec::new();
    let mut pages = Vec::new();
    for run in 1..=FRESH_STARTS {
        if run > 1 {
            daemon.stop()?;
            daemon.teardown()?;
            // lbctl changed the file: start from the same config each time.
            fs::write(daemon.config_path(), config)?;
            daemon.spawn()?;
        }
        let (sample, page) = measure(daemon)?;
        if !json {
            eprintln!("lbd-scale: fresh start {run}/{FRESH_STARTS}: {sample:.1?} {page:.1?}");
        }
        fresh.push(sample);
        pages.push(page);
    }

    // The last one dies: the next start adopts its pinned maps.
    daemon.kill()?;
    ensure!(
        daemon.pin_path().exists(),
        "no pins left at {} after kill -9",
        daemon.pin_path().display()
    );
    daemon.spawn()?;
    ensure!(
        daemon
            .current_log()
            .contains("adopted the pinned data path"),
        "the restarted lbd did not adopt the pinned maps"
    );
    let (adopt, adopt_page) = measure(daemon)?;
    if !json {
        eprintln!("lbd-scale: adopting restart: {adopt:.1?}");
    }
    let ageing = status_while_ageing(daemon)?;
    if json {
        println!(
            "{{\"case\": \"lbd_status_while_ageing\", \"flows\": {AGED_FLOWS}, \
             \"status_median_ms\": {:.2}, \"status_max_ms\": {:.2}, \"samples\": {}}}",
            ageing.median_ms, ageing.max_ms, ageing.samples
        );
    } else {
        eprintln!(
            "lbd-scale: lbctl status while an ageing pass reads and deletes {AGED_FLOWS} \
             flows: median {:.1} ms, max {:.1} ms ({} calls in {} s)",
            ageing.median_ms,
            ageing.max_ms,
            ageing.samples,
            AGEING_WATCH.as_secs()
        );
    }
    daemon.stop()?;
    daemon.teardown()?;

    Ok(vec![
        Case {
            name: "lbd_1000_reals",
            runs: FRESH_STARTS,
            sample: Sample::median(&fresh),
            page: median_page(&pages),
        },
        Case {
            name: "lbd_1000_reals_adopt",
            runs: 1,
            sample: adopt,
            page: adopt_page,
        },
    ])
}

/// `lbctl status` latency while ageing passes walk a table of
/// [`AGED_FLOWS`] expired flows (and delete them).
struct AgeingFigures {
    median_ms: f64,
    max_ms: f64,
    samples: usize,
}

/// Fills the pinned connection table with expired flows, then times
/// `lbctl --json status` back to back for [`AGEING_WATCH`] (more than two
/// ageing intervals): a daemon that ages on its controller thread makes
/// the calls wait for the walk.
fn status_while_ageing(daemon: &LabDaemon) -> Result<AgeingFigures> {
    use lb_common::{FAMILY_V4, FLOW_ACTIVE, FlowKey, FlowValue, PROTO_TCP};
    use lb_daemon::dataplane::{FlowTable, PinDir};

    let mut table = FlowTable::open(&PinDir::new(daemon.pin_path()))?;
    let vip = u32::from_ne_bytes(addr(98, 0).octets());
    for i in 0..AGED_FLOWS {
        let key = FlowKey {
            src: [0x0a60_0000_u32.wrapping_add(i / 50_000).to_be(), 0, 0, 0],
            dst: [vip, 0, 0, 0],
            src_port: ((i % 50_000) as u16 + 1024).to_be(),
            dst_port: PORT.to_be(),
            proto: PROTO_TCP,
            family: FAMILY_V4,
            _pad: [0; 2],
        };
        // Last seen at boot: idle far past the 900 s timeout.
        let value = FlowValue {
            real: 0,
            state: FLOW_ACTIVE,
            service: 0,
            flags: 0,
            last_seen_ns: 1,
        };
        table.insert(&key, &value)?;
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < AGEING_WATCH {
        let (_, took) = lbctl_timed(daemon, &["--json", "status"])?;
        samples.push(ms(took));
    }
    let max_ms = samples.iter().copied().fold(0.0, f64::max);
    Ok(AgeingFigures {
        median_ms: median(&samples),
        max_ms,
        samples: samples.len(),
    })
}

fn print_json(cases: &[Case]) {
    for c in cases {
        let p = &c.page;
        let mut line = format!("{{\"case\": \"{}_status_page\"", c.name);
        for (name, cost) in [
            ("scrape", p.scrape),
            ("page", p.page),
            ("api", p.api),
            ("refresh", p.refresh),
        ] {
            let _ = write!(
                line,
                ", \"{name}_ms\": {:.2}, \"{name}_cpu_ms\": {:.2}, \"{name}_kb\": {:.1}",
                cost.wall_ms, cost.cpu_ms, cost.kb
            );
        }
        println!(
            "{line}, \"history_kb\": {:.1}, \"history_samples\": {}, \"reals\": {REALS}}}",
            p.history_kb, p.history_samples
        );
    }
    let f = page::full_ring(SERVICES, REALS_PER_SERVICE);
    println!(
        "{{\"case\": \"status_page_full_history_in_process\", \"api_ms\": {:.2}, \
         \"api_kb\": {:.1}, \"refresh_ms\": {:.3}, \"render_ms\": {:.2}, \"render_kb\": {:.1}, \
         \"history_kb\": {:.1}, \"reals\": {REALS}}}",
        f.api_ms, f.api_kb, f.refresh_ms, f.render_ms, f.render_kb, f.history_kb
    );
    for c in cases {
        let s = &c.sample;
        println!(
            "{{\"case\": \"{}\", \"rss_mb\": {:.1}, \"hwm_mb\": {:.1}, \"bpf_maps_mb\": {:.1}, \
             \"apply_ms\": {:.1}, \"startup_ms\": {:.1}, \"ready_ms\": {:.1}, \
             \"status_ms\": {:.1}, \"real_add_ms\": {:.1}, \"real_remove_ms\": {:.1}, \
             \"scrape_ms\": {:.1}, \"services\": {SERVICES}, \"reals\": {REALS}, \"runs\": {}}}",
            c.name,
            s.rss_mb,
            s.hwm_mb,
            s.bpf_maps_mb,
            s.apply_ms,
            s.startup_ms,
            s.ready_ms,
            s.status_ms,
            s.real_add_ms,
            s.real_remove_ms,
            s.scrape_ms,
            c.runs,
        );
    }
}

fn print_table(cases: &[Case]) {
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "\n{:<21} {:>7} {:>8} {:>8} {:>9} {:>11} {:>9} {:>10} {:>8} {:>8} {:>10}  goal",
        "case",
        "RSS MB",
        "peak MB",
        "maps MB",
        "apply ms",
        "startup ms",
        "ready ms",
        "status ms",
        "add ms",
        "rm ms",
        "scrape ms"
    );
    for c in cases {
        let s = &c.sample;
        println!(
            "{:<21} {:>7.1} {:>8.1} {:>8.1} {:>9.1} {:>11.1} {:>9.1} {:>10.1} {:>8.1} {:>8.1} \
             {:>10.1}  RSS < {RSS_TARGET_MB} MB: {}, apply < {APPLY_TARGET_MS} ms: {}, \
             scrape < 50 ms: {}",
            c.name,
            s.rss_mb,
            s.hwm_mb,
            s.bpf_maps_mb,
            s.apply_ms,
            s.startup_ms,
            s.ready_ms,
            s.status_ms,
            s.real_add_ms,
            s.real_remove_ms,
            s.scrape_ms,
            verdict(s.rss_mb < RSS_TARGET_MB),
            verdict(s.apply_ms < APPLY_TARGET_MS),
            verdict(s.scrape_ms < 50.0),
        );
    }
    println!(
        "\n(lbd with {SERVICES} services x {REALS_PER_SERVICE} reals, conntrack_size \
         {CONNTRACK_SIZE}; medians of {FRESH_STARTS} fresh starts, and one restart after \
         kill -9 that adopts the pinned maps. RSS after the lbctl calls; peak = VmHWM; maps = \
         kernel memory of lbd's BPF maps, not in RSS. add/rm: `lbctl real add/remove` on a \
         maglev service, config write-back included; scrape: GET /metrics, 1000 reals)"
    );
}

/// The status page's figures next to the scrape's.
fn print_page_table(cases: &[Case]) {
    println!(
        "\n{:<21} {:<26} {:>8} {:>8} {:>9}",
        "case", "request", "wall ms", "CPU ms", "size KB"
    );
    for c in cases {
        let p = &c.page;
        for (what, cost) in [
            ("GET /metrics (scrape)", p.scrape),
            ("GET / (page)", p.page),
            ("GET /api/status (load)", p.api),
            ("GET /api/status?since=", p.refresh),
        ] {
            println!(
                "{:<21} {what:<26} {:>8.1} {:>8.2} {:>9.1}",
                c.name, cost.wall_ms, cost.cpu_ms, cost.kb
            );
        }
        println!(
            "{:<21} history: {:.0} KB in lbd, {} samples so far",
            c.name, p.history_kb, p.history_samples
        );
    }
    let f = page::full_ring(SERVICES, REALS_PER_SERVICE);
    println!(
        "full 15-minute history, in-process (no map reads): /api/status JSON {:.1} ms \
         ({:.0} KB), a refresh's {:.2} ms; the exposition {:.1} ms ({:.0} KB); history \
         {:.0} KB",
        f.api_ms, f.api_kb, f.refresh_ms, f.render_ms, f.render_kb, f.history_kb
    );
    println!(
        "\n(status page vs scrape: median wall time of {n} requests each, the four kinds in \
         turn; CPU = lbd's controller and HTTP threads, the mean per request of the 10 ms \
         ticks counted around each; load = the page's first /api/status with the history lbd \
         has so far, refresh = ?since= its last sample, as the page polls every 2 s)",
        n = page::REQUESTS
    );
}

fn main() -> ExitCode {
    let json = std::env::args_os().any(|a| a == OsStr::new("--json"));
    match run(json) {
        Ok(cases) => {
            if json {
                print_json(&cases);
            } else {
                print_table(&cases);
                print_page_table(&cases);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lbd-scale: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
