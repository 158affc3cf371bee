//! Load from a client namespace that records every request: when it started,
//! when it ended and how (answered, failed, or hung until its timeout).
//!
//! wrk reports a count of errors; it does not show one connection that
//! stalls for seconds, nor when anything happened. These clients do: a test
//! reads [`Summary`] for any window (across a failover, say) and reports
//! failed AND hung requests, the longest gap between two answers and the
//! slowest request.
//!
//! Two shapes of load:
//! - [`Clients::closed_loop`]: `workers` threads, each sending its next
//!   request (a new connection each) when the last one ended: like wrk
//!   with `Connection: close`.
//! - [`Clients::open_loop`]: a new connection every `1/rate` seconds,
//!   whatever the earlier ones do, each on its own thread: the load does not
//!   fall when a server stalls (real clients keep arriving), so how many
//!   requests a window holds does not depend on the servers' luck.

use std::{
    fmt,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{http, netns::spawn_in_namespace};

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `200 OK` with a body.
    Answered,
    /// Refused, reset, or another status: the error or status.
    Failed(String),
    /// No answer within the timeout (connect, send or receive).
    Hung,
}

/// One request as the client saw it.
#[derive(Debug, Clone)]
pub struct Record {
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
    /// The client's port, once connected: finds the connection in a capture.
    pub local_port: Option<u16>,
}

/// What the requests of a window saw.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub requests: usize,
    pub answered: usize,
    pub failed: usize,
    pub hung: usize,
    /// The longest time between two consecutive answers (by their end).
    pub longest_gap: Duration,
    /// The slowest request, answered or not.
    pub max_latency: Duration,
    /// The first few failures and hangs: `at N ms: what`, from the window's start.
    pub problems: Vec<String>,
}

impl Summary {
    /// No request failed or hung, and there was at least one.
    #[must_use]
    pub fn clean(&self) -> bool {
        self.requests > 0 && self.failed == 0 && self.hung == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} failed, {} hung; longest gap between answers {} ms, slowest request {} ms",
            self.requests,
            self.failed,
            self.hung,
            self.longest_gap.as_millis(),
            self.max_latency.as_millis()
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// How many problems a [`Summary`] lists.
const PROBLEMS_LISTED: usize = 10;

/// Summarizes the requests that started in `[from, to)`.
#[must_use]
pub fn summarize(records: &[Record], from: Instant, to: Instant) -> Summary {
    let mut window: Vec<&Record> = records
        .iter()
        .filter(|r| r.start >= from && r.start < to)
        .collect();
    window.sort_by_key(|r| r.end);
    let mut summary = Summary {
        requests: window.len(),
        ..Summary::default()
    };
    let mut last_answer: Option<Instant> = None;
    for r in window {
        summary.max_latency = summary.max_latency.max(r.end - r.start);
        let problem = match &r.outcome {
            Outcome::Answered => {
                summary.answered += 1;
                if let Some(last) = last_answer {
                    summary.longest_gap = summary.longest_gap.max(r.end - last);
                }
                last_answer = Some(r.end);
                None
            }
            Outcome::Failed(why) => {
                summary.failed += 1;
                Some(why.clone())
            }
            Outcome::Hung => {
                summary.hung += 1;
                Some(format!("hung for {} ms", (r.end - r.start).as_millis()))
            }
        };
        if let Some(what) = problem
            && summary.problems.len() < PROBLEMS_LISTED
        {
            let at = r.start.saturating_duration_since(from).as_millis();
            let port = r
                .local_port
                .map(|p| format!(" (client port {p})"))
                .unwrap_or_default();
            summary.problems.push(format!("at {at} ms{port}: {what}"));
        }
    }
    summary
}

/// One `GET /` (a new connection, `Connection: close`) with `timeout` on
/// connecting and on each read and write.
fn request(addr: SocketAddr, timeout: Duration) -> Record {
    let start = Instant::now();
    let mut local_port = None;
    let result = http::connect(addr, timeout).and_then(|stream| {
        local_port = stream.local_addr().ok().map(|a| a.port());
        http::exchange(stream, addr, "/")
    });
    let outcome = match result {
        Ok(response) if response.status == 200 => Outcome::Answered,
        Ok(response) => Outcome::Failed(format!("status {}", response.status)),
        Err(e) if is_timeout(&e) => Outcome::Hung,
        Err(e) => Outcome::Failed(format!("{e:#}")),
    };
    Record {
        start,
        end: Instant::now(),
        outcome,
        local_port,
    }
}

/// Whether `e` is a socket timeout (std reports a timed-out read as
/// `WouldBlock`, a timed-out connect as `TimedOut`).
fn is_timeout(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        })
    })
}

/// Clients running in a namespace; stop them with [`Clients::stop`] (or by
/// dropping them).
pub struct Clients {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    threads: Vec<JoinHandle<Result<()>>>,
    started: Instant,
}

impl Clients {
    /// `workers` closed-loop clients in namespace `ns` sending `GET /` to
    /// `addr`, each request with `timeout`.
    pub fn closed_loop(
        ns: &str,
        addr: SocketAddr,
        workers: usize,
        timeout: Duration,
    ) -> Result<Self> {
        let (stop, records) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let threads = (0..workers)
            .map(|_| {
                let (stop, records): (Arc<AtomicBool>, Arc<Mutex<Vec<Record>>>) =
                    (Arc::clone(&stop), Arc::clone(&records));
                spawn_in_namespace(ns, move || {
                    while !stop.load(Ordering::Relaxed) {
                        let record = request(addr, timeout);
                        records.lock().unwrap().push(record);
                    }
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            stop,
            records,
            threads,
            started: Instant::now(),
        })
    }

    /// An open-loop client in namespace `ns`: a new `GET /` to `addr` every
    /// `1/per_second` seconds, each on its own thread with `timeout`.
    pub fn open_loop(
        ns: &str,
        addr: SocketAddr,
        per_second: u32,
        timeout: Duration,
    ) -> Result<Self> {
        Self::open_loop_with(ns, per_second, move || request(addr, timeout))
    }

    /// An open-loop client in namespace `ns` whose requests are
    /// `request()` (which must return within its own timeout), e.g. a DNS
    /// query ([`crate::dns::query`]).
    pub fn open_loop_with(
        ns: &str,
        per_second: u32,
        request: impl Fn() -> Record + Send + Sync + 'static,
    ) -> Result<Self> {
        let request = Arc::new(request);
        let (stop, records) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let period = Duration::from_secs(1) / per_second.max(1);
        let driver = {
            let (stop, records): (Arc<AtomicBool>, Arc<Mutex<Vec<Record>>>) =
                (Arc::clone(&stop), Arc::clone(&records));
            spawn_in_namespace(ns, move || {
                let mut in_flight: Vec<JoinHandle<()>> = Vec::new();
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let records = Arc::clone(&records);
                    let request = Arc::clone(&request);
                    // Spawned from this thread: in its namespace.
                    in_flight.push(std::thread::spawn(move || {
                        let record = request();
                        records.lock().unwrap().push(record);
                    }));
                    in_flight.retain(|t| !t.is_finished());
                    // On schedule, not "a period after the last one": a
                    // late tick is made up at once.
                    next += period;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                for t in in_flight {
                    let _ = t.join();
                }
            })?
        };
        Ok(Self {
            stop,
            records,
            threads: vec![driver],
            started: Instant::now(),
        })
    }

    /// When the clients started.
    #[must_use]
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The requests recorded so far (ended ones only).
    #[must_use]
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    /// The requests that started in `[from, to)` and have ended by now.
    #[must_use]
    pub fn summary(&self, from: Instant, to: Instant) -> Summary {
        summarize(&self.records.lock().unwrap(), from, to)
    }

    /// Waits until a request that started after `since` was answered.
    pub fn wait_answer_after(&self, since: Instant, limit: Duration) -> Result<()> {
        crate::wait_until(limit, "a request through the VIP is answered", || {
            let records = self.records.lock().unwrap();
            records
                .iter()
                .any(|r| r.start > since && r.outcome == Outcome::Answered)
        })
    }

    /// Stops sending, waits for the requests under way (each ends within its
    /// timeout) and summarizes every request.
    #[must_use]
    pub fn stop(self) -> Summary {
        let started = self.started;
        summarize(&self.finish(), started, Instant::now())
    }

    /// Stops sending, waits for the requests under way and returns every
    /// request (for [`summarize`] over windows of a test's events).
    #[must_use]
    pub fn finish(mut self) -> Vec<Record> {
        self.halt();
        std::mem::take(&mut *self.records.lock().unwrap())
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("a client could not enter its namespace: {e:#}"),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Do not wait for hung requests while a test is failing.
            self.stop.store(true, Ordering::Relaxed);
        } else {
            self.halt();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, start_ms: u64, end_ms: u64, outcome: Outcome) -> Record {
        Record {
            start: base + Duration::from_millis(start_ms),
            end: base + Duration::from_millis(end_ms),
            outcome,
            local_port: None,
        }
    }

    #[test]
    fn a_summary_counts_failed_and_hung_requests_and_the_longest_gap() {
        let t = Instant::now();
        let records = [
            at(t, 0, 5, Outcome::Answered),
            at(t, 5, 3005, Outcome::Hung),
            at(t, 6, 8, Outcome::Failed("connect: refused".into())),
            at(t, 10, 400, Outcome::Answered),
            at(t, 401, 402, Outcome::Answered),
            // Outside the window.
            at(t, 5000, 5001, Outcome::Failed("late".into())),
        ];
        let s = summarize(&records, t, t + Duration::from_secs(5));
        assert_eq!((s.requests, s.answered, s.failed, s.hung), (5, 3, 1, 1));
        assert_eq!(s.longest_gap, Duration::from_millis(395));
        assert_eq!(s.max_latency, Duration::from_secs(3));
        assert_eq!(
            s.problems,
            ["at 6 ms: connect: refused", "at 5 ms: hung for 3000 ms"]
        );
        assert!(!s.clean());
        let quiet = summarize(
            &records,
            t + Duration::from_millis(10),
            t + Duration::from_secs(1),
        );
        assert!(quiet.clean(), "{quiet}");
    }

    #[test]
    fn socket_timeouts_are_hangs() {
        let timed_out = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::WouldBlock))
            .context("reading the response");
        assert!(is_timeout(&timed_out));
        let refused =
            anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!is_timeout(&refused));
    }
}
