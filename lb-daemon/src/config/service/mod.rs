//! `[[service]]`: a virtual service and its reals, with its health
//! settings, `[service.check]` (in `check`) and `[service.damping]` (in
//! `damping`). Every key applies on reload; `lbctl` edits of services and
//! reals are written back to the file by `edit`.

mod capacity;
mod check;
mod damping;
mod edit;
mod health;
mod read;
mod real;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::balancer::model::{Scheduler, ServiceAddr};
use crate::health::spec::CheckSpec;
use crate::sched::maglev;
pub(super) use check::DURATION_KEYS as CHECK_DURATION_KEYS;
pub use check::{RISE_FALL_RANGE, STATUS_RANGE};
pub(super) use damping::DURATION_KEYS as DAMPING_DURATION_KEYS;
pub use damping::{DAMPING_RANGE, DampingConfig};
pub(super) use read::Headers;
pub use real::{DEFAULT_WEIGHT, MAX_WEIGHT, RealConfig};

/// Allowed `table_size` of a maglev/sh service (must also be prime). The
/// default is [`maglev::DEFAULT_SIZE`].
pub const TABLE_SIZE_RANGE: RangeInclusive<u32> = 257..=1_000_003;
/// A service's `min_primaries` when not given (spares step in only when no
/// primary is healthy), and its allowed range.
pub const DEFAULT_MIN_PRIMARIES: u32 = 1;
pub const MIN_PRIMARIES_RANGE: RangeInclusive<u32> = 1..=65_535;
/// A service's `min_healthy` when not given, and its allowed range: with
/// `[ecmp]`, a director announces a VIP only while each of its services has
/// at least this many healthy reals (spares count, the fallback does not).
pub const DEFAULT_MIN_HEALTHY: u32 = 1;
pub const MIN_HEALTHY_RANGE: RangeInclusive<u32> = 0..=65_535;
/// A service's `drain_timeout` when not given.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_mins(5);

/// The keys of a `[[service]]` table whose value is a duration.
pub(super) const DURATION_KEYS: &[&str] = &["slow_start", "drain_timeout"];

/// One `[[service]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    pub addr: ServiceAddr,
    pub scheduler: Scheduler,
    /// Maglev/sh table size (prime); [`maglev::DEFAULT_SIZE`] when not given,
    /// whatever the scheduler.
    pub table_size: u32,
    /// In file order; no two share (address, port). May be empty: reals are
    /// often added later with `lbctl`.
    pub reals: Vec<RealConfig>,
    /// `[service.check]`: how its reals are checked unless a real overrides
    /// it (see [`ServiceConfig::check_for`]). Without the table, a TCP
    /// connect with the default timers ([`CheckSpec::default`]).
    pub check: CheckSpec,
    /// What happens to the flows of a real that goes down.
    pub on_down: OnDown,
    /// Spares (`backup` reals) take traffic while fewer than this many
    /// primaries are healthy: 1 (the default) = only when none is.
    /// [`MIN_PRIMARIES_RANGE`].
    pub min_primaries: u32,
    /// With `[ecmp]`: the VIP is announced only while this service has at
    /// least this many healthy reals (0: whatever their health).
    /// [`MIN_HEALTHY_RANGE`].
    pub min_healthy: u32,
    /// A real that comes up (or is added) ramps its effective weight up over
    /// this long; `None`: it gets its full weight at once. Positive.
    pub slow_start: Option<Duration>,
    /// The "sorry" server used when no primary or spare is healthy.
    pub fallback: Option<FallbackConfig>,
    /// A drained real is removed once its flows reach zero or this passes.
    /// Positive; [`DEFAULT_DRAIN_TIMEOUT`] when not given.
    pub drain_timeout: Duration,
    /// `[service.damping]`; `None`: flapping reals are not held down.
    pub damping: Option<DampingConfig>,
}

impl ServiceConfig {
    /// A service with the default scheduler, table size, check and health
    /// settings, and no reals.
    #[must_use]
    pub fn new(addr: ServiceAddr) -> Self {
        Self {
            addr,
            scheduler: Scheduler::WeightedLeastConnection,
            table_size: maglev::DEFAULT_SIZE,
            reals: Vec::new(),
            check: CheckSpec::default(),
            on_down: OnDown::default(),
            min_primaries: DEFAULT_MIN_PRIMARIES,
            min_healthy: DEFAULT_MIN_HEALTHY,
            slow_start: None,
            fallback: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            damping: None,
        }
    }

    /// The real with this address and port, if configured.
    #[must_use]
    pub fn real(&self, addr: IpAddr, port: u16) -> Option<&RealConfig> {
        self.reals.iter().find(|r| r.addr == addr && r.port == port)
    }

    /// The check that applies to `real` (one of this service's): its own if
    /// it overrides the service's, else the service's.
    #[must_use]
    pub fn check_for<'a>(&'a self, real: &'a RealConfig) -> &'a CheckSpec {
        real.check.as_ref().unwrap_or(&self.check)
    }
}

/// A service's `on_down`: what happens to the established flows of a real
/// that goes down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnDown {
    /// They move to a healthy real on their next packet (a dead server
    /// cannot finish them).
    #[default]
    Reroute,
    /// They stay on the real (for servers that are only overloaded).
    Keep,
}

impl OnDown {
    /// The name in the file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OnDown::Reroute => "reroute",
            OnDown::Keep => "keep",
        }
    }
}

impl fmt::Display for OnDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A service's `fallback` ("sorry") server, reached at the service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FallbackConfig {
    /// Of the VIP's family; neither the VIP nor one of the service's reals.
    pub addr: IpAddr,
    /// `fallback_mac`; `None` resolves it from the neighbour table.
    pub mac: Option<[u8; 6]>,
}

/// Same settings and the same set of reals (a config never has two reals
/// with one (address, port), so equal lengths plus every real found equal in
/// the other is set equality). Reals are compared whole, their checks
/// included.
pub(super) fn same_service(a: &ServiceConfig, b: &ServiceConfig) -> bool {
    // Destructured so that a new field cannot be forgotten here.
    let ServiceConfig {
        addr,
        scheduler,
        table_size,
        reals,
        check,
        on_down,
        min_primaries,
        min_healthy,
        slow_start,
        fallback,
        drain_timeout,
        damping,
    } = a;
    *addr == b.addr
        && *scheduler == b.scheduler
        && *table_size == b.table_size
        && *check == b.check
        && *on_down == b.on_down
        && *min_primaries == b.min_primaries
        && *min_healthy == b.min_healthy
        && *slow_start == b.slow_start
        && *fallback == b.fallback
        && *drain_timeout == b.drain_timeout
        && *damping == b.damping
        && reals.len() == b.reals.len()
        && reals.iter().all(|r| b.real(r.addr, r.port) == Some(r))
}
