//! `lb_share_*`: flow sharing among ECMP directors (`[ecmp.sync]`).

use prometheus::{IntCounterVec, Opts, Registry};

use super::live::register;

/// Counters of the flow-sharing thread.
pub struct ShareMetrics {
    records: IntCounterVec,
    datagrams: IntCounterVec,
    rejected: IntCounterVec,
    // Vectors without labels, so that a director without flow sharing
    // exposes none of these.
    ringbuf_read: IntCounterVec,
    ringbuf_dropped: IntCounterVec,
}

impl ShareMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            records: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "lb_share_records_total",
                        "Flow records sent to, received from or applied from a peer director (direction = sent, received, applied).",
                    ),
                    &["peer", "direction"],
                ),
            ),
            datagrams: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "lb_share_datagrams_total",
                        "Flow-sharing datagrams sent to or received from a peer director (direction = sent, received).",
                    ),
                    &["peer", "direction"],
                ),
            ),
            rejected: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "lb_share_rejected_total",
                        "Flow-sharing datagrams refused (forged, replayed, stale, malformed), by reason.",
                    ),
                    &["reason"],
                ),
            ),
            ringbuf_read: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "lb_share_ringbuf_records_total",
                        "Flow reports read from the data path's ring buffer.",
                    ),
                    &[],
                ),
            ),
            ringbuf_dropped: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "lb_share_ringbuf_dropped_total",
                        "Flow reports the data path dropped because its ring buffer was full.",
                    ),
                    &[],
                ),
            ),
        }
    }

    /// `records` flow records for `peer` in `direction`.
    pub fn count_records(&self, peer: &str, direction: &str, records: u64) {
        self.records
            .with_label_values(&[peer, direction])
            .inc_by(records);
    }

    pub fn count_datagrams(&self, peer: &str, direction: &str, datagrams: u64) {
        self.datagrams
            .with_label_values(&[peer, direction])
            .inc_by(datagrams);
    }

    pub fn count_rejected(&self, reason: &str) {
        self.rejected.with_label_values(&[reason]).inc();
    }

    pub fn count_ringbuf_read(&self, records: u64) {
        self.ringbuf_read
            .with_label_values(&[] as &[&str])
            .inc_by(records);
    }

    /// The data path's drop count is absolute: the counter follows it.
    pub fn set_ringbuf_dropped(&self, total: u64) {
        let counter = self.ringbuf_dropped.with_label_values(&[] as &[&str]);
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_exposed_until_sharing_counts() {
        let registry = Registry::new();
        let share = ShareMetrics::new(&registry);
        assert!(registry.gather().is_empty());
        share.count_records("10.0.0.3:9142", "sent", 53);
        share.set_ringbuf_dropped(7);
        share.set_ringbuf_dropped(5);
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(
            names,
            ["lb_share_records_total", "lb_share_ringbuf_dropped_total"]
        );
        let dropped = share.ringbuf_dropped.with_label_values(&[] as &[&str]);
        assert_eq!(
            dropped.get(),
            7,
            "follows the data path's total, never back"
        );
    }
}
