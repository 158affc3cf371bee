//! What the status page costs `lbd` next to a Prometheus scrape, at this
//! size (1000 reals): per request, the wall time and the CPU time of
//! lbd's controller and HTTP threads (which do all the work of both), and
//! the size of the answer; and, in-process, the JSON of a full 15-minute
//! history next to the exposition.

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use lb_daemon::{
    admin::{RealStatus, ServiceStatus, Status, VrrpStatus},
    daemon::status_page::{api, history},
    metrics::{Metrics, RealSample, ServiceSample, Snapshot, XdpSample},
};
use lb_lab::daemon::LabDaemon;

/// Requests of each kind per measurement, the kinds taking turns so that
/// lbd's own background work (a history sample every 5 s, ageing passes)
/// falls on each kind alike.
pub const REQUESTS: usize = 40;

/// One kind of request, measured [`REQUESTS`] times.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// Median wall time, client side.
    pub wall_ms: f64,
    /// CPU time of lbd's `lbd` (controller) and `admin` (HTTP) threads per
    /// request: the mean of 10 ms clock ticks counted around each request.
    pub cpu_ms: f64,
    pub kb: f64,
}

/// The scrape, the page itself, the page's first `/api/status` (whole
/// history, as far as this lbd has one) and a refresh (`?since=` the last
/// sample), plus the history's own memory as lbd reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageCosts {
    pub scrape: Cost,
    pub page: Cost,
    pub api: Cost,
    pub refresh: Cost,
    pub history_kb: f64,
    pub history_samples: f64,
}

impl PageCosts {
    pub const FIELDS: usize = 14;

    pub fn to_array(self) -> [f64; Self::FIELDS] {
        let mut out = [0.0; Self::FIELDS];
        for (i, cost) in [self.scrape, self.page, self.api, self.refresh]
            .into_iter()
            .enumerate()
        {
            out[3 * i..3 * i + 3].copy_from_slice(&[cost.wall_ms, cost.cpu_ms, cost.kb]);
        }
        out[12] = self.history_kb;
        out[13] = self.history_samples;
        out
    }

    pub fn from_array(a: [f64; Self::FIELDS]) -> Self {
        let c = |i: usize| Cost {
            wall_ms: a[i],
            cpu_ms: a[i + 1],
            kb: a[i + 2],
        };
        Self {
            scrape: c(0),
            page: c(3),
            api: c(6),
            refresh: c(9),
            history_kb: a[12],
            history_samples: a[13],
        }
    }
}

pub fn measure(daemon: &LabDaemon) -> Result<PageCosts> {
    let pid = daemon.pid().context("lbd is not running")?;
    let (first, _) = get(daemon, "/api/status")?;
    let json: serde_json::Value = serde_json::from_slice(&first).context("/api/status")?;
    let times = json["history"]["times"]
        .as_array()
        .context("no history.times")?;
    let last = times
        .last()
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0);
    let paths = [
        "/metrics".to_owned(),
        "/".to_owned(),
        "/api/status".to_owned(),
        format!("/api/status?since={last}"),
    ];
    // SAFETY: sysconf has no preconditions.
    let tick_ms = 1e3 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut walls = [(); 4].map(|()| Vec::with_capacity(REQUESTS));
    let mut ticks = [0; 4];
    let mut bytes = [0; 4];
    for _ in 0..REQUESTS {
        for (k, path) in paths.iter().enumerate() {
            let before = busy_ticks(pid)?;
            let (body, took) = get(daemon, path)?;
            ticks[k] += busy_ticks(pid)? - before;
            bytes[k] = body.len();
            walls[k].push(took.as_secs_f64() * 1e3);
        }
    }
    let cost = |k: usize| {
        let mut w = walls[k].clone();
        w.sort_by(f64::total_cmp);
        Cost {
            wall_ms: w[w.len() / 2],
            cpu_ms: ticks[k] as f64 * tick_ms / REQUESTS as f64,
            kb: bytes[k] as f64 / 1024.0,
        }
    };
    Ok(PageCosts {
        scrape: cost(0),
        page: cost(1),
        api: cost(2),
        refresh: cost(3),
        history_kb: json["history"]["memory_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
        history_samples: times.len() as f64,
    })
}

fn get(daemon: &LabDaemon, path: &str) -> Result<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let response = lb_lab::http_get(
        daemon.namespace(),
        "127.0.0.1:9140".parse()?,
        path,
        Duration::from_secs(10),
    )?;
    let took = started.elapsed();
    if response.status != 200 {
        bail!("GET {path} answered {}", response.status);
    }
    Ok((response.body, took))
}

/// utime + stime of lbd's main (controller) and `admin` threads, in ticks.
fn busy_ticks(pid: u32) -> Result<u64> {
    let mut total = 0;
    let mut found = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(stat) = fs::read_to_string(task?.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !matches!(&stat[open + 1..close], "lbd" | "admin") {
            continue;
        }
        // After the name: state is field 3, utime 14 and stime 15.
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        total += fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        found += 1;
    }
    ensure!(
        found == 2,
        "found {found} of lbd's controller and admin threads"
    );
    Ok(total)
}

/// In-process, no maps: the JSON of `/api/status` with a full history
/// (180 samples of `services` x `per_service` reals) against the
/// exposition of the same reals. Both also read the maps in lbd, the same
/// reading; this compares what each adds on top.
#[derive(Debug)]
pub struct FullRing {
    pub api_ms: f64,
    pub api_kb: f64,
    pub refresh_ms: f64,
    pub render_ms: f64,
    pub render_kb: f64,
    pub history_kb: f64,
}

pub fn full_ring(services: usize, per_service: usize) -> FullRing {
    let mut snapshot = Snapshot {
        conntrack_capacity: 1 << 20,
        ..Snapshot::default()
    };
    let mut status = Status {
        conntrack_capacity: 1 << 20,
        ..Status::default()
    };
    for s in 0..services {
        let service = format!("10.98.0.{s}:80/tcp");
        snapshot.services.push(ServiceSample {
            service: service.clone(),
            ..ServiceSample::default()
        });
        let mut view = ServiceStatus {
            service: service.clone(),
            scheduler: "wlc".into(),
            ..ServiceStatus::default()
        };
        for r in 0..per_service {
            let real = format!("10.97.{s}.{r}:80");
            snapshot.reals.push(RealSample {
                service: service.clone(),
                real: real.clone(),
                up: true,
                weight: 100,
                ..RealSample::default()
            });
            view.reals.push(RealStatus {
                real,
                weight: 100,
                effective_weight: 100,
                state: "up".into(),
                mac: Some("02:97:00:00:00:01".into()),
                ..RealStatus::default()
            });
        }
        status.services.push(view);
    }
    snapshot.xdp = ["new_flow", "established", "not_ip", "no_service"]
        .map(|reason| XdpSample {
            action: "tx".into(),
            reason: reason.into(),
            packets: 0,
        })
        .to_vec();
    let mut ring = history::History::default();
    let t0 = Instant::now();
    for n in 0..history::SAMPLES as u32 {
        // Every counter grows: every value in the JSON is a number.
        for (i, r) in snapshot.reals.iter_mut().enumerate() {
            r.connections += 37 * (i as u64 % 7 + 1);
            r.bytes += 91_234;
        }
        for x in &mut snapshot.xdp {
            x.packets += 12_345;
        }
        ring.record(f64::from(n) * 5.0, t0 + history::INTERVAL * n, &snapshot);
    }
    let vrrp = VrrpStatus::default();
    let ecmp = lb_daemon::admin::EcmpStatus::default();
    let transitions = std::collections::VecDeque::new();
    let inputs = |since| api::Inputs {
        now: 900.0,
        status: &status,
        vrrp: &vrrp,
        ecmp: &ecmp,
        history: &ring,
        health_transitions: &transitions,
        since,
    };
    let metrics = Metrics::new("bench");
    let (api_ms, api_bytes) = timed(|| api::build(&inputs(None)).len());
    let (refresh_ms, _) = timed(|| api::build(&inputs(Some(890.0))).len());
    let (render_ms, render_bytes) = timed(|| metrics.render(&snapshot).len());
    FullRing {
        api_ms,
        api_kb: api_bytes as f64 / 1024.0,
        refresh_ms,
        render_ms,
        render_kb: render_bytes as f64 / 1024.0,
        history_kb: ring.memory_bytes() as f64 / 1024.0,
    }
}

/// Median of 11 runs of `f`, in ms, and what it returned.
fn timed(mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut out = 0;
    let mut times: Vec<f64> = (0..11)
        .map(|_| {
            let started = Instant::now();
            out = f();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], out)
}
