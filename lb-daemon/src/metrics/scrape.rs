//! Metrics read from the maps at scrape time.
//!
//! The maps hold absolute counters and current states, so these families
//! are built afresh for each scrape, straight as the encoder's model (no
//! registry: with 1000 reals a registry's per-series bookkeeping cost three
//! times the encoding itself), and dropped after.

use std::collections::HashSet;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use super::snapshot::{REAL_STATES, Snapshot, state_label};

/// The families of one scrape, each with at least one series. A (service)
/// or (service, real) that the snapshot holds twice is exported once, from
/// its first entry.
pub(super) fn families(snapshot: &Snapshot) -> Vec<MetricFamily> {
    let mut out = Vec::with_capacity(16);
    services(snapshot, &mut out);
    reals(snapshot, &mut out);
    data_path(snapshot, &mut out);
    out.into_iter()
        .filter_map(|f| (!f.metrics.is_empty()).then(|| f.finish()))
        .collect()
}

/// `lb_service_*` and `lb_services`.
fn services(snapshot: &Snapshot, out: &mut Vec<Family>) {
    let services: Vec<_> = {
        let mut seen = HashSet::new();
        snapshot
            .services
            .iter()
            .filter(|s| seen.insert(s.service.as_str()))
            .collect()
    };
    let mut packets = Family::counter(
        "lb_service_packets_total",
        "Packets the data path forwarded for the service.",
    );
    let mut bytes = Family::counter(
        "lb_service_bytes_total",
        "Bytes the data path forwarded for the service.",
    );
    let mut connections = Family::counter(
        "lb_service_connections_total",
        "New connections (flows) the data path scheduled for the service.",
    );
    for s in &services {
        let labels = [("service", s.service.as_str())];
        packets.push(&labels, s.packets as f64);
        bytes.push(&labels, s.bytes as f64);
        connections.push(&labels, s.connections as f64);
    }
    out.extend([packets, bytes, connections]);
    let mut count = Family::gauge("lb_services", "Number of services configured.");
    count.push(&[], services.len() as f64);
    out.push(count);
}

/// `lb_real_*`.
fn reals(snapshot: &Snapshot, out: &mut Vec<Family>) {
    let reals: Vec<_> = {
        let mut seen = HashSet::new();
        snapshot
            .reals
            .iter()
            .filter(|r| seen.insert((r.service.as_str(), r.real.as_str())))
            .collect()
    };
    let mut packets = Family::counter(
        "lb_real_packets_total",
        "Packets the data path forwarded to the real.",
    );
    let mut bytes = Family::counter(
        "lb_real_bytes_total",
        "Bytes the data path forwarded to the real.",
    );
    let mut connections = Family::counter(
        "lb_real_connections_total",
        "New connections (flows) the data path scheduled to the real.",
    );
    let mut active = Family::gauge(
        "lb_real_active_connections",
        "Connections in the connection table that now point at the real.",
    );
    let mut inactive = Family::gauge(
        "lb_real_inactive_connections",
        "Half-open connections of the real: SYN forwarded, handshake not finished.",
    );
    let mut syn_retransmits = Family::counter(
        "lb_real_syn_retransmits_total",
        "SYNs of the real's half-open connections sent again by their clients (the real did \
         not answer the first).",
    );
    let mut weight = Family::gauge(
        "lb_real_weight",
        "Weight the data path schedules the real with now (0 while it takes no new flows).",
    );
    let mut up = Family::gauge(
        "lb_real_up",
        "Whether the real can take traffic (1) or not (0: down, unresolved or removed).",
    );
    let mut state = Family::gauge(
        "lb_real_state",
        "1 for the real's current state, 0 for the others (all 0 for a real removed from the config).",
    );
    for r in &reals {
        let labels = [("service", r.service.as_str()), ("real", r.real.as_str())];
        packets.push(&labels, r.packets as f64);
        bytes.push(&labels, r.bytes as f64);
        connections.push(&labels, r.connections as f64);
        active.push(&labels, r.active as f64);
        inactive.push(&labels, r.inactive as f64);
        syn_retransmits.push(&labels, r.syn_retransmits as f64);
        weight.push(&labels, f64::from(r.weight));
        up.push(&labels, f64::from(u8::from(r.up)));
        let current = state_label(r.state);
        for s in REAL_STATES {
            state.push(
                &[labels[0], labels[1], ("state", s)],
                f64::from(u8::from(current == Some(s))),
            );
        }
    }
    out.extend([
        packets,
        bytes,
        connections,
        active,
        inactive,
        syn_retransmits,
        weight,
        up,
        state,
    ]);
}

/// `lb_xdp_packets_total` and `lb_conntrack_*`.
fn data_path(snapshot: &Snapshot, out: &mut Vec<Family>) {
    let mut xdp = Family::counter(
        "lb_xdp_packets_total",
        "Packets the XDP program handled, by action (pass, tx, drop) and reason.",
    );
    let mut seen = HashSet::new();
    for x in &snapshot.xdp {
        if seen.insert((x.action.as_str(), x.reason.as_str())) {
            xdp.push(
                &[("action", x.action.as_str()), ("reason", x.reason.as_str())],
                x.packets as f64,
            );
        }
    }
    out.push(xdp);

    let mut entries = Family::gauge(
        "lb_conntrack_entries",
        "Entries now in the connection table.",
    );
    entries.push(&[], snapshot.conntrack_entries as f64);
    let mut capacity = Family::gauge(
        "lb_conntrack_capacity",
        "Maximum number of entries of the connection table.",
    );
    capacity.push(&[], snapshot.conntrack_capacity as f64);
    out.extend([entries, capacity]);
}

/// A counter or gauge family being filled.
struct Family {
    family: MetricFamily,
    metrics: Vec<Metric>,
}

impl Family {
    fn counter(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::COUNTER)
    }

    fn gauge(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::GAUGE)
    }

    fn new(name: &str, help: &str, kind: MetricType) -> Self {
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_field_type(kind);
        Self {
            family,
            metrics: Vec::new(),
        }
    }

    /// One series: `labels` (name, value) in the order they are printed.
    fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut metric = Metric::from_label(
            labels
                .iter()
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name((*name).to_owned());
                    pair.set_value((*value).to_owned());
                    pair
                })
                .collect(),
        );
        if self.family.get_field_type() == MetricType::COUNTER {
            let mut counter = Counter::default();
            counter.set_value(value);
            metric.set_counter(counter);
        } else {
            let mut gauge = Gauge::default();
            gauge.set_value(value);
            metric.set_gauge(gauge);
        }
        self.metrics.push(metric);
    }

    fn finish(mut self) -> MetricFamily {
        self.family.set_metric(self.metrics);
        self.family
    }
}
