//! The admin API between `lbctl` and `lbd`: one JSON request per line on a
//! Unix socket, one JSON response line back, then the connection closes.
//! Types here are the wire format; `lbctl --json` prints the `data` part.

mod client;
mod parse;
mod real_state;

use serde::{Deserialize, Serialize};

pub use client::{AdminClientError, call};
pub use parse::{parse_real, parse_service};
pub use real_state::{RealState, UnknownRealState};

/// What `lbctl` asks for. Services are written `VIP:PORT[/tcp|udp]`
/// (`[v6]:PORT/…` for IPv6) and reals `IP[:PORT]` (port defaults to the
/// service's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// Services and reals with weights, states, connections and counters.
    Status,
    AddService {
        service: String,
        scheduler: Option<String>,
        table_size: Option<u32>,
    },
    RemoveService {
        service: String,
    },
    AddReal {
        service: String,
        real: String,
        weight: Option<u32>,
        backup: bool,
        mac: Option<String>,
    },
    RemoveReal {
        service: String,
        real: String,
    },
    SetWeight {
        service: String,
        real: String,
        weight: u32,
    },
    /// Weight 0: no new connections, established ones continue.
    Drain {
        service: String,
        real: String,
    },
    Flows {
        service: Option<String>,
        real: Option<String>,
        limit: Option<usize>,
    },
    /// Where a 5-tuple goes now, and why.
    Trace {
        protocol: String,
        client: String,
        service: String,
    },
    /// Re-read the config file (like SIGHUP), reporting errors to the caller.
    Reload,
    /// Health-check state of every real, with its recent transitions.
    Health,
    /// Director failover: VRRP state, peer, recent transitions and the
    /// connection-table sync.
    Vrrp,
    /// `[ecmp]`: which VIPs this director announces, and why not.
    Director,
    /// `[ecmp]`: withdraw every VIP and keep forwarding the flows that
    /// still arrive (`drain: true`), or announce again (`false`).
    DirectorDrain {
        drain: bool,
    },
}

impl Request {
    /// Whether it changes the running state (the daemon logs these); the
    /// others only read.
    #[must_use]
    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Self::Status
                | Self::Flows { .. }
                | Self::Trace { .. }
                | Self::Health
                | Self::Vrrp
                | Self::Director
        )
    }
}

/// The reply: `{"ok": true, "data": …}` or `{"ok": false, "error": "…"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn success(data: impl Serialize) -> Self {
        Self {
            ok: true,
            data: Some(serde_json::to_value(data).unwrap_or(serde_json::Value::Null)),
            error: None,
        }
    }

    /// A refusal; a multi-line reason (e.g. several config errors) becomes
    /// one line, so `lbctl` prints one line.
    pub fn failure(error: impl std::fmt::Display) -> Self {
        let text = error.to_string();
        Self {
            ok: false,
            data: None,
            error: Some(text.lines().collect::<Vec<_>>().join("; ")),
        }
    }
}

/// `Status` data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub services: Vec<ServiceStatus>,
    /// Flows in the connection table (as of the last ageing pass) and its
    /// capacity.
    pub conntrack_entries: u64,
    pub conntrack_capacity: u64,
    /// Half-open flows among the connection table's entries (as of the
    /// last ageing pass; SYNs go there while the SYN allowance lasts).
    #[serde(default)]
    pub conntrack_half_open: u64,
    /// The same for the half-open table (TCP handshakes not finished, of a
    /// SYN flood beyond the allowance, or learned from other directors).
    #[serde(default)]
    pub half_open_entries: u64,
    #[serde(default)]
    pub half_open_capacity: u64,
    /// Ageing passes finished since lbd started (each also rebuilt the
    /// connection counts and the SYN allowance).
    #[serde(default)]
    pub ageing_passes: u64,
    /// Packets the data path handled, by verdict and reason (non-zero only).
    pub xdp: Vec<XdpCounter>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct XdpCounter {
    /// `pass`, `tx` or `drop`.
    pub action: String,
    pub reason: String,
    pub packets: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// `VIP:PORT/PROTO`.
    pub service: String,
    pub scheduler: String,
    pub packets: u64,
    pub bytes: u64,
    pub connections: u64,
    pub reals: Vec<RealStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RealStatus {
    /// `IP:PORT`.
    pub real: String,
    /// Configured weight.
    pub weight: u32,
    /// Weight for new connections now (health, spares, slow start).
    #[serde(default)]
    pub effective_weight: u32,
    /// A [`RealState`]'s name: `up`, `down` (health check), `draining`
    /// (`lbctl real drain`), `drained` (weight 0), `unresolved` (no MAC
    /// yet), `backup_idle`, `backup_active`, or `removed` (no longer
    /// configured; kept while flows remain).
    pub state: String,
    /// Why the health check last changed its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// Up and still in the service's `slow_start` ramp: its effective
    /// weight is growing toward the configured one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slow_start: bool,
    pub mac: Option<String>,
    /// Established connections (flows in the connection table, not closing).
    pub active_connections: u64,
    /// Half-open connections: SYN forwarded, handshake not finished (IPVS's
    /// `InActConn` counts these, and closing ones).
    #[serde(default)]
    pub inactive_connections: u64,
    /// SYNs of its half-open flows that clients sent again (it did not
    /// answer the first): the data path's evidence that it stopped
    /// completing handshakes.
    #[serde(default)]
    pub syn_retransmits: u64,
    pub connections: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// One live flow (`Flows` data is a list of these).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowEntry {
    pub protocol: String,
    pub client: String,
    pub service: String,
    pub real: String,
    /// `established`, `half-open` (SYN seen, handshake not finished) or
    /// `closing`.
    pub state: String,
    /// Seconds since the last packet (1 s granularity).
    pub idle_seconds: u64,
    /// Seconds until ageing removes it if it stays idle.
    pub expires_in_seconds: u64,
    /// Learned from another director (flow sharing): this director counts
    /// it nowhere until it forwards a packet of it.
    #[serde(default)]
    pub learned: bool,
}

/// `Trace` data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceResult {
    pub service: String,
    /// The real the tuple goes to now (`None`: dropped or passed).
    pub real: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// Data of a change (add/remove/weight/drain/reload).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeResult {
    /// What was done, in words.
    pub summary: String,
    /// For drains and removals: flows still on the real.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_connections: Option<u64>,
}

/// `Health` data: one per checked real.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RealHealthStatus {
    pub service: String,
    pub real: String,
    /// The check, e.g. `tcp`, `http GET /healthz`, `dns A www.example.com`
    /// (empty from a daemon that does not say).
    #[serde(default)]
    pub check: String,
    /// `up` or `down`, as the data path uses it (damping applied).
    pub health: String,
    /// What the checks alone say.
    pub checks: String,
    /// Probes in the streak under way toward a transition.
    pub streak: u32,
    /// Seconds flap damping still holds it down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_for_seconds: Option<f64>,
    pub damping_penalty: f64,
    /// The last probe: `ok (1.2 ms)` or its failure.
    pub last_probe: Option<String>,
    /// Recent transitions, oldest first.
    pub history: Vec<Transition>,
    /// The data path's evidence: half-open connections of the real now
    /// (as in `lbctl status`)...
    #[serde(default)]
    pub inactive_connections: u64,
    /// ...and retransmitted SYNs of its half-open flows so far.
    #[serde(default)]
    pub syn_retransmits: u64,
    /// Probes started at once because its retransmitted SYNs rose.
    #[serde(default)]
    pub early_probes: u64,
}

/// `Vrrp` data. `enabled` is false (and the rest empty) without `[vrrp]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VrrpStatus {
    pub enabled: bool,
    pub vrid: u8,
    pub interface: String,
    pub family: String,
    /// `initialize`, `backup`, `master`, or `fault` (link down).
    pub state: String,
    pub priority: u8,
    pub advert_interval_ms: u64,
    /// Our source address for advertisements.
    pub local_address: Option<String>,
    /// The current master as far as we know.
    pub master: Option<String>,
    /// Multicast group or unicast peers.
    pub peers: Vec<String>,
    /// Whether preemption is held back until the peer's connection table
    /// has arrived.
    pub preempt_held: bool,
    pub advertisements_sent: u64,
    pub advertisements_received: u64,
    /// Dropped advertisements (TTL, checksum, version...), not counting
    /// other virtual routers' ones.
    pub advertisements_rejected: u64,
    /// Seconds in the current state.
    pub in_state_seconds: f64,
    /// Recent transitions, oldest first.
    pub history: Vec<Transition>,
    pub sync: Option<SyncStatus>,
}

/// `Director` data. `enabled` is false (and the rest empty) without
/// `[ecmp]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EcmpStatus {
    pub enabled: bool,
    /// The kernel routing table the VIP routes go in.
    pub table: u32,
    pub drained: bool,
    /// The peers' flows have arrived (or `learn_delay` passed).
    pub learned: bool,
    pub vips: Vec<VipAnnouncement>,
    /// Recent announcement changes, oldest first.
    pub history: Vec<VipTransition>,
    /// Flow sharing with the other directors (`[ecmp.sync]`).
    #[serde(default)]
    pub share: Option<ShareStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VipAnnouncement {
    pub vip: String,
    pub announced: bool,
    /// `announced`, or `withdrawn: <why>`.
    pub state: String,
    /// Seconds since it last changed.
    pub for_seconds: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VipTransition {
    /// Unix seconds.
    pub at: f64,
    pub vip: String,
    pub state: String,
}

/// The connection-table sync with the peer director.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub peer: String,
    pub flows_sent: u64,
    pub flows_received: u64,
    pub flows_applied: u64,
    /// Flows whose service or real this director does not have.
    pub flows_unknown: u64,
    pub datagrams_rejected: u64,
    pub last_rejection: Option<String>,
    /// Whether a full table from the peer has arrived since we started.
    pub table_received: bool,
}

/// Flow sharing among ECMP directors (`[ecmp.sync]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShareStatus {
    /// The local address:port it listens on.
    pub listen: String,
    pub peers: Vec<SharePeerStatus>,
    /// Every peer has sent its whole table since this lbd started.
    pub learned: bool,
    /// Reports read from the data path's ring buffer.
    pub ringbuf_read: u64,
    /// Reports the data path dropped (ring buffer full).
    pub ringbuf_dropped: u64,
    /// Received flows whose service or real this director does not have.
    pub flows_unknown: u64,
    /// Datagrams refused from addresses that are not peers.
    pub datagrams_rejected_other: u64,
    pub last_rejection: Option<String>,
    /// Full sends of this director's own flows (at start, then every
    /// refresh interval), and the flows in the last one.
    pub refreshes: u64,
    pub last_refresh_flows: u64,
}

/// One peer director of [`ShareStatus`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SharePeerStatus {
    /// Address:port.
    pub peer: String,
    pub records_sent: u64,
    pub records_received: u64,
    /// Received records written into this director's tables (the others
    /// were of flows this director forwards itself, or already known).
    pub records_applied: u64,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    pub datagrams_rejected: u64,
    /// When its last complete whole table arrived (Unix seconds), and how
    /// many flows it held.
    pub last_full_table: Option<f64>,
    pub last_full_table_flows: u64,
}

/// A state change of a real (`lbctl health`) or of the VRRP router
/// (`lbctl vrrp`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub to: String,
    pub reason: String,
}

/// Seconds since the Unix epoch, as the admin protocol carries times.
#[must_use]
pub fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
