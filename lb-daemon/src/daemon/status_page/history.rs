//! The status page's short memory: one sample every [`INTERVAL`], the last
//! [`SAMPLES`] kept (15 minutes), of new connections/s per real and per
//! service and packets/s per data-path verdict, so the page can chart the
//! recent past without Prometheus.
//!
//! Every series is a fixed ring of `f32` allocated when its real (or
//! verdict) first shows up, and all rings advance together with one shared
//! ring of timestamps: memory is bounded by the number of series, whatever
//! the uptime (about 0.9 KB per real; [`History::memory_bytes`]). A series
//! whose real is no longer in the snapshot is dropped at the next sample.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::metrics::Snapshot;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Samples kept: 15 minutes at [`INTERVAL`].
pub const SAMPLES: usize = 180;

/// The counters of one sample, as rates against the previous one.
#[derive(Debug)]
pub struct History {
    /// Unix time of sample `n` at `times[n % SAMPLES]`.
    times: Box<[f64]>,
    /// Samples taken since start.
    taken: u64,
    /// When the last sample was taken (monotonic, for the rates).
    last_at: Option<Instant>,
    /// Key: (service, real).
    pub(super) reals: Table,
    /// Key: (service, "").
    pub(super) services: Table,
    /// Key: (action, reason). Only non-zero counters are in a snapshot, so
    /// one that shows up had 0 at the sample before.
    pub(super) verdicts: Table,
}

/// The series of one kind, in the order of the last snapshot.
#[derive(Debug, Default)]
pub(super) struct Table {
    /// Whether a series missing from a sample had counters of 0 then
    /// (verdicts), rather than being unknown (reals: a new real may reuse
    /// the slot of a removed one).
    absent_is_zero: bool,
    pub(super) series: Vec<Series>,
    /// `key_text(key)` -> position in `series`.
    index: HashMap<String, usize>,
}

/// One thing's counters and its charted rate.
#[derive(Debug)]
pub(super) struct Series {
    pub(super) key: (String, String),
    /// The counters at the last sample (connections and bytes; packets and
    /// 0 for a verdict).
    counters: [u64; 2],
    /// Per second over the last interval; NaN when unknown (first sample,
    /// counter reset).
    pub(super) rates: [f32; 2],
    /// The first counter's rate, one slot per sample (NaN: no value).
    ring: Box<[f32]>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            times: vec![f64::NAN; SAMPLES].into_boxed_slice(),
            taken: 0,
            last_at: None,
            reals: Table::default(),
            services: Table::default(),
            verdicts: Table {
                absent_is_zero: true,
                ..Table::default()
            },
        }
    }
}

impl History {
    /// Records `snapshot`, read at Unix time `unix` and monotonic `at`.
    pub fn record(&mut self, unix: f64, at: Instant, snapshot: &Snapshot) {
        let elapsed = self.last_at.map(|last| at.saturating_duration_since(last));
        let slot = (self.taken % SAMPLES as u64) as usize;
        self.times[slot] = unix;
        self.reals.update(
            slot,
            elapsed,
            snapshot
                .reals
                .iter()
                .map(|r| ((&*r.service, &*r.real), [r.connections, r.bytes])),
        );
        self.services.update(
            slot,
            elapsed,
            snapshot
                .services
                .iter()
                .map(|s| ((&*s.service, ""), [s.connections, s.bytes])),
        );
        self.verdicts.update(
            slot,
            elapsed,
            snapshot
                .xdp
                .iter()
                .map(|x| ((&*x.action, &*x.reason), [x.packets, 0])),
        );
        self.taken += 1;
        self.last_at = Some(at);
    }

    /// The ring slots of the samples (oldest first) whose time is after `since` (all
    /// kept ones without it), with their times.
    #[must_use]
    pub fn samples_after(&self, since: Option<f64>) -> Vec<(usize, f64)> {
        let first = self.taken.saturating_sub(SAMPLES as u64);
        (first..self.taken)
            .map(|n| {
                let slot = (n % SAMPLES as u64) as usize;
                (slot, self.times[slot])
            })
            .filter(|(_, t)| since.is_none_or(|s| *t > s))
            .collect()
    }

    /// Heap and inline bytes held, an upper bound of what the allocator
    /// gives it (hash map control bytes and padding estimated).
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.times.len() * size_of::<f64>()
            + self.reals.memory_bytes()
            + self.services.memory_bytes()
            + self.verdicts.memory_bytes()
    }
}

impl Table {
    /// One sample of every series in `items` (in that order); series not in
    /// it are dropped, new ones start with no past.
    fn update<'a>(
        &mut self,
        slot: usize,
        elapsed: Option<Duration>,
        items: impl Iterator<Item = ((&'a str, &'a str), [u64; 2])>,
    ) {
        let mut old: Vec<Option<Series>> = self.series.drain(..).map(Some).collect();
        let mut index = HashMap::with_capacity(self.index.len());
        for (key, counters) in items {
            let text = key_text(key);
            if index.contains_key(&text) {
                // The same real twice: the first entry counts (as in /metrics).
                continue;
            }
            let series = match self.index.get(&text).and_then(|&i| old[i].take()) {
                Some(mut series) => {
                    series.rates = [0, 1].map(|i| rate(series.counters[i], counters[i], elapsed));
                    series.counters = counters;
                    series
                }
                None => Series {
                    key: (key.0.to_owned(), key.1.to_owned()),
                    counters,
                    rates: if self.absent_is_zero {
                        [0, 1].map(|i| rate(0, counters[i], elapsed))
                    } else {
                        [f32::NAN; 2]
                    },
                    ring: vec![f32::NAN; SAMPLES].into_boxed_slice(),
                },
            };
            let mut series = series;
            series.ring[slot] = series.rates[0];
            index.insert(text, self.series.len());
            self.series.push(series);
        }
        self.index = index;
    }

    /// The value of series `i` at each of `slots`.
    pub(super) fn values(&self, i: usize, slots: &[(usize, f64)]) -> Vec<Option<f32>> {
        slots
            .iter()
            .map(|(slot, _)| finite(self.series[i].ring[*slot]))
            .collect()
    }

    fn memory_bytes(&self) -> usize {
        let keys: usize = self
            .series
            .iter()
            .map(|s| s.key.0.capacity() + s.key.1.capacity())
            .sum();
        self.series.capacity() * size_of::<Series>()
            + self.series.len() * SAMPLES * size_of::<f32>()
            + keys
            // The index: its keys' text (about the same as the series'),
            // and per bucket a String, a usize and a control byte.
            + keys
            + self.index.capacity() * (size_of::<String>() + size_of::<usize>() + 1)
    }
}

/// `None` for NaN (no value), rounded to two decimals otherwise: the rates
/// are charted, and shorter numbers keep the JSON small.
pub(super) fn finite(value: f32) -> Option<f32> {
    value
        .is_finite()
        .then(|| ((f64::from(value) * 100.0).round() / 100.0) as f32)
}

fn key_text((a, b): (&str, &str)) -> String {
    format!("{a}\0{b}")
}

/// Per second from `before` to `now` over `elapsed`; NaN without a
/// previous sample or when the counter went back (slot reused, restart).
fn rate(before: u64, now: u64, elapsed: Option<Duration>) -> f32 {
    match elapsed {
        Some(elapsed) if now >= before && !elapsed.is_zero() => {
            ((now - before) as f64 / elapsed.as_secs_f64()) as f32
        }
        _ => f32::NAN,
    }
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "the values are exact: small integers and quotients that f32 holds exactly"
)]
mod tests {
    use super::*;
    use crate::metrics::{RealSample, ServiceSample, XdpSample};

    fn snapshot(reals: &[(&str, u64, u64)], forwarded: u64) -> Snapshot {
        Snapshot {
            services: vec![ServiceSample {
                service: "10.0.0.1:80/tcp".into(),
                connections: reals.iter().map(|r| r.1).sum(),
                bytes: reals.iter().map(|r| r.2).sum(),
                ..ServiceSample::default()
            }],
            reals: reals
                .iter()
                .map(|&(real, connections, bytes)| RealSample {
                    service: "10.0.0.1:80/tcp".into(),
                    real: real.into(),
                    connections,
                    bytes,
                    ..RealSample::default()
                })
                .collect(),
            // As the controller reads them: non-zero counters only.
            xdp: (forwarded > 0)
                .then(|| XdpSample {
                    action: "tx".into(),
                    reason: "forwarded".into(),
                    packets: forwarded,
                })
                .into_iter()
                .collect(),
            ..Snapshot::default()
        }
    }

    fn ring_of(history: &History, table: &Table, real: &str) -> Vec<Option<f32>> {
        let i = table
            .series
            .iter()
            .position(|s| s.key.1 == real)
            .unwrap_or_else(|| panic!("no series {real}"));
        table.values(i, &history.samples_after(None))
    }

    #[test]
    fn rates_are_per_second_over_the_measured_interval() {
        let mut h = History::default();
        let t0 = Instant::now();
        h.record(1000.0, t0, &snapshot(&[("a", 10, 1000)], 50));
        // 4 s later (not the nominal 5): rates divide by what elapsed.
        h.record(
            1004.0,
            t0 + Duration::from_secs(4),
            &snapshot(&[("a", 30, 5000)], 250),
        );
        assert_eq!(ring_of(&h, &h.reals, "a"), vec![None, Some(5.0)]);
        assert_eq!(h.reals.series[0].rates, [5.0, 1000.0]);
        assert_eq!(h.services.series[0].rates, [5.0, 1000.0]);
        assert_eq!(
            ring_of(&h, &h.verdicts, "forwarded"),
            vec![None, Some(50.0)]
        );
        // A counter that went back (slot reused) is a gap, not a negative
        // or huge rate.
        h.record(
            1009.0,
            t0 + Duration::from_secs(9),
            &snapshot(&[("a", 3, 0)], 300),
        );
        assert_eq!(ring_of(&h, &h.reals, "a"), vec![None, Some(5.0), None]);
    }

    #[test]
    fn keeps_the_last_180_samples_in_order() {
        let mut h = History::default();
        let t0 = Instant::now();
        for n in 0..(SAMPLES as u64 + 20) {
            // n new connections in each 5 s interval: rate n/5.
            let total = n * (n + 1) / 2;
            h.record(
                n as f64,
                t0 + INTERVAL * n as u32,
                &snapshot(&[("a", total, 0)], 0),
            );
        }
        let samples = h.samples_after(None);
        assert_eq!(samples.len(), SAMPLES);
        assert_eq!(samples[0].1, 20.0);
        assert_eq!(samples[SAMPLES - 1].1, (SAMPLES + 19) as f64);
        let values = ring_of(&h, &h.reals, "a");
        for (k, v) in values.iter().enumerate() {
            let n = (k + 20) as f32;
            assert_eq!(*v, finite(n / 5.0), "sample {k}");
        }
        // Only the samples after a time: what a refresh asks for.
        let recent = h.samples_after(Some((SAMPLES + 17) as f64));
        assert_eq!(
            recent.iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![(SAMPLES + 18) as f64, (SAMPLES + 19) as f64]
        );
    }

    #[test]
    fn new_reals_start_empty_and_removed_ones_are_dropped() {
        let mut h = History::default();
        let t0 = Instant::now();
        h.record(0.0, t0, &snapshot(&[("a", 0, 0)], 0));
        h.record(5.0, t0 + INTERVAL, &snapshot(&[("a", 5, 0)], 0));
        h.record(
            10.0,
            t0 + INTERVAL * 2,
            &snapshot(&[("b", 100, 0), ("a", 10, 0), ("a", 999, 0)], 0),
        );
        // New order is the snapshot's; the duplicate "a" is ignored.
        let keys: Vec<_> = h.reals.series.iter().map(|s| s.key.1.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(ring_of(&h, &h.reals, "a"), [None, Some(1.0), Some(1.0)]);
        assert_eq!(ring_of(&h, &h.reals, "b"), [None, None, None]);
        // A verdict counter first seen non-zero was 0 at the sample before.
        h.record(15.0, t0 + INTERVAL * 3, &snapshot(&[("b", 150, 0)], 50));
        assert_eq!(h.reals.series.len(), 1);
        assert_eq!(ring_of(&h, &h.reals, "b"), [None, None, None, Some(10.0)]);
        assert_eq!(
            ring_of(&h, &h.verdicts, "forwarded"),
            [None, None, None, Some(10.0)]
        );
    }

    #[test]
    fn memory_is_bounded_and_about_a_kilobyte_per_real() {
        let reals: Vec<(String, u64, u64)> = (0..1000)
            .map(|i| (format!("10.97.{}.{}:80", i / 250, i % 250 + 1), 0, 0))
            .collect();
        let refs: Vec<(&str, u64, u64)> =
            reals.iter().map(|(r, c, b)| (r.as_str(), *c, *b)).collect();
        let mut h = History::default();
        let t0 = Instant::now();
        h.record(0.0, t0, &snapshot(&refs, 0));
        let after_one = h.memory_bytes();
        for n in 1..(3 * SAMPLES as u32) {
            h.record(f64::from(n), t0 + INTERVAL * n, &snapshot(&refs, 0));
        }
        // Rings are allocated whole: no growth with uptime.
        assert_eq!(h.memory_bytes(), after_one);
        println!("history of 1000 reals: {after_one} bytes");
        assert!(
            (700_000..1_200_000).contains(&after_one),
            "{after_one} bytes"
        );
    }
}
