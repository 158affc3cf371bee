//! The typed configuration: what [`super::parse`] produces once every string
//! has been turned into an address, a duration or a MAC and every value has
//! been checked.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use super::vrrp::VrrpConfig;
use crate::ageing::Timeouts;
use crate::balancer::model::{Scheduler, ServiceAddr};
use crate::health::spec::CheckSpec;
use crate::sched::maglev;

/// `daemon.admin_socket` when not given.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/lbd/lbd.sock";
/// `daemon.pin_path` when not given.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/lbd";
/// `daemon.metrics_address` when not given.
pub const DEFAULT_METRICS_ADDRESS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9140));
/// `daemon.neighbour_refresh` when not given.
pub const DEFAULT_NEIGHBOUR_REFRESH: Duration = Duration::from_secs(1);

/// Most interfaces `dataplane.interfaces` may list.
pub const MAX_INTERFACES: usize = 8;
/// `dataplane.conntrack_size` when not given, and its allowed range.
pub const DEFAULT_CONNTRACK_SIZE: u32 = 1_000_000;
pub const CONNTRACK_SIZE_RANGE: RangeInclusive<u32> = 1024..=100_000_000;
/// `dataplane.max_reals` when not given, and its allowed range.
pub const DEFAULT_MAX_REALS: u32 = 65_536;
pub const MAX_REALS_RANGE: RangeInclusive<u32> = 16..=1_048_576;
/// `dataplane.max_services` when not given, and its allowed range.
pub const DEFAULT_MAX_SERVICES: u32 = 1024;
pub const MAX_SERVICES_RANGE: RangeInclusive<u32> = 1..=65_536;

/// `timeouts.*` when not given: the IPVS defaults of [`Timeouts`], and a
/// 10 s sweep.
pub const DEFAULT_AGEING_INTERVAL: Duration = Duration::from_secs(10);

/// Allowed `table_size` of a maglev/sh service (must also be prime). The
/// default is [`maglev::DEFAULT_SIZE`].
pub const TABLE_SIZE_RANGE: RangeInclusive<u32> = 257..=1_000_003;
/// A real's weight when not given, and the largest allowed.
pub const DEFAULT_WEIGHT: u32 = 1;
pub const MAX_WEIGHT: u32 = 65_535;

/// A service's `min_primaries` when not given (spares step in only when no
/// primary is healthy), and its allowed range.
pub const DEFAULT_MIN_PRIMARIES: u32 = 1;
pub const MIN_PRIMARIES_RANGE: RangeInclusive<u32> = 1..=65_535;
/// A service's `drain_timeout` when not given.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_mins(5);
/// Allowed `rise` and `fall` of a check (the defaults are in
/// [`crate::health::spec`]).
pub const RISE_FALL_RANGE: RangeInclusive<u32> = 1..=100;
/// Allowed status codes in a check's `expect_status`.
pub const STATUS_RANGE: RangeInclusive<u32> = 100..=599;
/// Allowed `penalty`, `suppress` and `reuse` of `[service.damping]`.
pub const DAMPING_RANGE: RangeInclusive<u32> = 1..=1_000_000;

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub dataplane: DataplaneConfig,
    pub timeouts: TimeoutsConfig,
    /// `None`: no failover; lbd holds the VIPs itself.
    pub vrrp: Option<VrrpConfig>,
    /// In file order; no two share a [`ServiceAddr`].
    pub services: Vec<ServiceConfig>,
}

impl Config {
    /// The service with this address, if configured.
    #[must_use]
    pub fn service(&self, addr: &ServiceAddr) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.addr == *addr)
    }

    /// Addresses whose MAC must come from the neighbour table: reals and
    /// fallback servers without a static `mac`.
    #[must_use]
    pub fn addresses_to_resolve(&self) -> std::collections::BTreeSet<std::net::IpAddr> {
        let reals = self
            .services
            .iter()
            .flat_map(|s| s.reals.iter())
            .filter(|r| r.mac.is_none())
            .map(|r| r.addr);
        let fallbacks = self
            .services
            .iter()
            .filter_map(|s| s.fallback.as_ref())
            .filter(|f| f.mac.is_none())
            .map(|f| f.addr);
        reals.chain(fallbacks).collect()
    }
}

/// `[daemon]`: the process itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Unix socket `lbctl` talks to.
    pub admin_socket: PathBuf,
    /// bpffs directory the program and maps are pinned under.
    pub pin_path: PathBuf,
    /// Where the Prometheus metrics are served.
    pub metrics_address: SocketAddr,
    /// How often the neighbour table (MACs of the reals) is re-read.
    pub neighbour_refresh: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            admin_socket: PathBuf::from(DEFAULT_ADMIN_SOCKET),
            pin_path: PathBuf::from(DEFAULT_PIN_PATH),
            metrics_address: DEFAULT_METRICS_ADDRESS,
            neighbour_refresh: DEFAULT_NEIGHBOUR_REFRESH,
        }
    }
}

/// `dataplane.xdp_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XdpModeConfig {
    /// Native XDP in the NIC driver.
    #[default]
    Driver,
    /// Generic (skb) XDP: works everywhere, much slower.
    Generic,
}

impl XdpModeConfig {
    /// The name in the file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            XdpModeConfig::Driver => "driver",
            XdpModeConfig::Generic => "generic",
        }
    }
}

impl fmt::Display for XdpModeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[dataplane]`: where the XDP program runs and how big its maps are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// 1 to [`MAX_INTERFACES`] distinct existing interfaces (empty only in
    /// [`Default`]; a parsed file always has at least one).
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpModeConfig,
    /// Attach in generic mode (with a warning) when driver mode fails.
    pub xdp_fallback: bool,
    /// Connection-table entries.
    pub conntrack_size: u32,
    pub max_reals: u32,
    pub max_services: u32,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            xdp_mode: XdpModeConfig::Driver,
            xdp_fallback: true,
            conntrack_size: DEFAULT_CONNTRACK_SIZE,
            max_reals: DEFAULT_MAX_REALS,
            max_services: DEFAULT_MAX_SERVICES,
        }
    }
}

/// `[timeouts]`: connection-table ageing. All positive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutsConfig {
    /// Established TCP flow idle timeout.
    pub tcp: Duration,
    /// TCP flow after FIN/RST.
    pub tcp_closing: Duration,
    pub udp: Duration,
    /// How often the connection table is swept.
    pub ageing_interval: Duration,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        let t = Timeouts::default();
        Self {
            tcp: t.tcp,
            tcp_closing: t.tcp_closing,
            udp: t.udp,
            ageing_interval: DEFAULT_AGEING_INTERVAL,
        }
    }
}

impl TimeoutsConfig {
    /// The timeouts the ageing pass applies.
    #[must_use]
    pub fn ageing(&self) -> Timeouts {
        Timeouts {
            tcp: self.tcp,
            tcp_closing: self.tcp_closing,
            udp: self.udp,
        }
    }
}

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

/// `[service.damping]`: route-flap damping of reals. Every flap (a
/// transition to down) adds `penalty`; the penalty halves every
/// `half_life`; a real whose penalty exceeds `suppress` is held down until
/// it decays below `reuse`, and never longer than `max_suppress`.
/// Penalties are whole numbers in [`DAMPING_RANGE`], `reuse < suppress`,
/// durations positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DampingConfig {
    pub penalty: u32,
    pub suppress: u32,
    pub reuse: u32,
    pub half_life: Duration,
    pub max_suppress: Duration,
}

impl Default for DampingConfig {
    /// The values an empty `[service.damping]` table gets.
    fn default() -> Self {
        Self {
            penalty: 1000,
            suppress: 2000,
            reuse: 750,
            half_life: Duration::from_secs(30),
            max_suppress: Duration::from_mins(5),
        }
    }
}

/// One `[[service.real]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealConfig {
    /// Same address family as the service's VIP.
    pub addr: IpAddr,
    /// Always the service port (direct routing cannot translate ports).
    pub port: u16,
    /// 0..=[`MAX_WEIGHT`]; 0 takes no new connections.
    pub weight: u32,
    /// A spare server (used by health checking).
    pub backup: bool,
    /// Static MAC; `None` resolves it from the neighbour table.
    pub mac: Option<[u8; 6]>,
    /// The real's own check when its `check` table makes it differ from the
    /// service's; `None`: the service's applies. Use
    /// [`ServiceConfig::check_for`].
    pub check: Option<CheckSpec>,
}

impl RealConfig {
    /// A real with the default weight, not a backup, MAC from the neighbour
    /// table, checked as its service says.
    #[must_use]
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Self {
            addr,
            port,
            weight: DEFAULT_WEIGHT,
            backup: false,
            mac: None,
            check: None,
        }
    }

    /// `IP:PORT` (`[v6]:PORT`), the same as `RealSpec::name`.
    #[must_use]
    pub fn name(&self) -> String {
        SocketAddr::new(self.addr, self.port).to_string()
    }
}

/// Parses a MAC written as six colon-separated pairs of hex digits
/// (`"02:00:00:00:00:11"`, either case). Multicast/broadcast and all-zero
/// addresses are refused: neither can be a real's NIC.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let syntax = || {
        format!("{text:?} is not a MAC address (expected six hex pairs like \"02:00:00:00:00:11\")")
    };
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or_else(syntax)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(syntax());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| syntax())?;
    }
    if parts.next().is_some() {
        return Err(syntax());
    }
    if mac == [0; 6] {
        return Err(format!("{text:?} is the all-zero MAC address"));
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "{text:?} is a multicast/broadcast MAC address, not a server's"
        ));
    }
    Ok(mac)
}

/// Writes a MAC the way [`parse_mac`] reads it (lower case).
#[must_use]
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::model::Protocol;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.daemon.admin_socket, PathBuf::from("/run/lbd/lbd.sock"));
        assert_eq!(c.daemon.pin_path, PathBuf::from("/sys/fs/bpf/lbd"));
        assert_eq!(c.daemon.metrics_address, "127.0.0.1:9140".parse().unwrap());
        assert_eq!(c.daemon.neighbour_refresh, Duration::from_secs(1));
        assert!(c.dataplane.interfaces.is_empty());
        assert_eq!(c.dataplane.xdp_mode, XdpModeConfig::Driver);
        assert!(c.dataplane.xdp_fallback);
        assert_eq!(c.dataplane.conntrack_size, 1_000_000);
        assert_eq!(c.dataplane.max_reals, 65_536);
        assert_eq!(c.dataplane.max_services, 1024);
        assert_eq!(c.timeouts.tcp, Duration::from_mins(15));
        assert_eq!(c.timeouts.tcp_closing, Duration::from_mins(2));
        assert_eq!(c.timeouts.udp, Duration::from_mins(5));
        assert_eq!(c.timeouts.ageing_interval, Duration::from_secs(10));
        assert_eq!(c.timeouts.ageing(), Timeouts::default());
        assert!(c.services.is_empty());
    }

    #[test]
    fn real_names_match_real_spec() {
        let v4 = RealConfig::new("192.0.2.1".parse().unwrap(), 80);
        assert_eq!(v4.name(), "192.0.2.1:80");
        let v6 = RealConfig::new("fd00::1".parse().unwrap(), 80);
        assert_eq!(v6.name(), "[fd00::1]:80");
    }

    #[test]
    fn lookups() {
        let addr = ServiceAddr {
            vip: "192.0.2.10".parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
        };
        let mut service = ServiceConfig::new(addr);
        service
            .reals
            .push(RealConfig::new("10.0.0.1".parse().unwrap(), 80));
        let config = Config {
            services: vec![service],
            ..Config::default()
        };
        let found = config.service(&addr).unwrap();
        assert!(found.real("10.0.0.1".parse().unwrap(), 80).is_some());
        assert!(found.real("10.0.0.1".parse().unwrap(), 81).is_none());
        assert!(
            config
                .service(&ServiceAddr {
                    protocol: Protocol::Udp,
                    ..addr
                })
                .is_none()
        );
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:1A"), Ok([2, 0, 0, 0, 0, 0x1a]));
        assert_eq!(format_mac([2, 0, 0, 0, 0, 0x1a]), "02:00:00:00:00:1a");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:11:22",
            "2:0:0:0:0:1",
            "02-00-00-00-00-11",
            "02:00:00:00:00:zz",
            "+2:00:00:00:00:11",
        ] {
            assert!(
                parse_mac(bad).unwrap_err().contains("not a MAC address"),
                "{bad}"
            );
        }
        assert!(
            parse_mac("00:00:00:00:00:00")
                .unwrap_err()
                .contains("all-zero")
        );
        assert!(
            parse_mac("ff:ff:ff:ff:ff:ff")
                .unwrap_err()
                .contains("multicast")
        );
        assert!(
            parse_mac("01:00:5e:00:00:01")
                .unwrap_err()
                .contains("multicast")
        );
    }
}
