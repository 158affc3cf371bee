//! What one scrape reads from the maps: absolute counters and current
//! states, filled in by the controller and turned into metrics by
//! [`super::Metrics::render`].

use crate::admin::RealState;

/// Counters and states of every service and real, read at scrape time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// One entry per configured service.
    pub services: Vec<ServiceSample>,
    /// One entry per real of every service (configured or still retiring).
    pub reals: Vec<RealSample>,
    /// The data path's per-reason verdict counters.
    pub xdp: Vec<XdpSample>,
    /// Entries now in the connection table.
    pub conntrack_entries: u64,
    /// Maximum number of entries of the connection table.
    pub conntrack_capacity: u64,
}

/// One service's counters, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSample {
    /// `VIP:PORT/proto`, e.g. `10.0.0.1:80/tcp`.
    pub service: String,
    pub packets: u64,
    pub bytes: u64,
    /// New flows scheduled to the service.
    pub connections: u64,
}

/// One real's counters, weight and state, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RealSample {
    /// The service it belongs to, as in [`ServiceSample::service`].
    pub service: String,
    /// `IP:PORT`, e.g. `10.0.0.2:80` (`[IPv6]:PORT` for IPv6).
    pub real: String,
    pub packets: u64,
    pub bytes: u64,
    /// New flows scheduled to this real.
    pub connections: u64,
    /// Connections now in the table that point at this real.
    pub active: u64,
    /// Half-open connections (handshake not finished) of this real.
    pub inactive: u64,
    /// Retransmitted SYNs of its half-open flows.
    pub syn_retransmits: u64,
    /// The weight the data path schedules with now (0 while down or draining).
    pub weight: u32,
    /// Whether the real can take traffic (exported as `lb_real_up`).
    pub up: bool,
    /// The controller's state; see [`state_label`] for how it maps onto
    /// the five values of `lb_real_state`.
    pub state: RealState,
}

/// One data-path verdict counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpSample {
    /// `pass`, `tx` or `drop`.
    pub action: String,
    /// Why, as the data path names it (e.g. `forwarded`, `no_real`).
    pub reason: String,
    pub packets: u64,
}

/// The values of the `state` label of `lb_real_state`, all emitted per real.
pub const REAL_STATES: [&str; 5] = ["up", "down", "draining", "backup_idle", "backup_active"];

/// Which of [`REAL_STATES`] a controller state counts as, if any.
///
/// Five states map to their own name. Two more map to the one an operator
/// would act on the same way: `drained` (configured weight 0: no new flows,
/// existing ones finish) is `draining`, and `unresolved` (no MAC for the
/// real, so nothing can be forwarded to it) is `down`. `removed` (a real
/// gone from the config whose flows are still ageing out) is none of them:
/// all five series are 0 for it.
#[must_use]
pub fn state_label(state: RealState) -> Option<&'static str> {
    match state {
        RealState::Up => Some("up"),
        RealState::Down | RealState::Unresolved => Some("down"),
        RealState::Draining | RealState::Drained => Some("draining"),
        RealState::BackupIdle => Some("backup_idle"),
        RealState::BackupActive => Some("backup_active"),
        RealState::Removed => None,
    }
}
