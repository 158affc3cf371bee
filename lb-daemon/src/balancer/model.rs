//! What the operator asks for: services and their reals, as typed values.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use lb_common::{FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP, ServiceKey, VipKey, sched};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    #[must_use]
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => PROTO_TCP,
            Protocol::Udp => PROTO_UDP,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// How a service picks a real for a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheduler {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnection,
    WeightedLeastConnection,
    Maglev,
    SourceHash,
}

impl Scheduler {
    pub const ALL: [Scheduler; 6] = [
        Scheduler::RoundRobin,
        Scheduler::WeightedRoundRobin,
        Scheduler::LeastConnection,
        Scheduler::WeightedLeastConnection,
        Scheduler::Maglev,
        Scheduler::SourceHash,
    ];

    /// Name in config files and the CLI (the ipvsadm names).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::RoundRobin => "rr",
            Scheduler::WeightedRoundRobin => "wrr",
            Scheduler::LeastConnection => "lc",
            Scheduler::WeightedLeastConnection => "wlc",
            Scheduler::Maglev => "maglev",
            Scheduler::SourceHash => "sh",
        }
    }

    /// The data path's id for it.
    #[must_use]
    pub fn id(self) -> u32 {
        match self {
            Scheduler::RoundRobin => sched::RR,
            Scheduler::WeightedRoundRobin => sched::WRR,
            Scheduler::LeastConnection => sched::LC,
            Scheduler::WeightedLeastConnection => sched::WLC,
            Scheduler::Maglev => sched::MAGLEV,
            Scheduler::SourceHash => sched::SH,
        }
    }

    /// lc and wlc scan a member set instead of indexing a table.
    #[must_use]
    pub fn uses_lc_set(self) -> bool {
        matches!(
            self,
            Scheduler::LeastConnection | Scheduler::WeightedLeastConnection
        )
    }
}

impl Scheduler {
    /// The scheduler with this data-path id.
    #[must_use]
    pub fn from_id(id: u32) -> Option<Self> {
        Scheduler::ALL.into_iter().find(|s| s.id() == id)
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown scheduler name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown scheduler `{0}` (expected one of rr, wrr, lc, wlc, maglev, sh)")]
pub struct UnknownScheduler(pub String);

impl FromStr for Scheduler {
    type Err = UnknownScheduler;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheduler::ALL
            .into_iter()
            .find(|sched| sched.name() == s)
            .ok_or_else(|| UnknownScheduler(s.to_owned()))
    }
}

/// A service's identity: (VIP, port, protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAddr {
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl ServiceAddr {
    /// The `SERVICES` map key.
    #[must_use]
    pub fn key(&self) -> ServiceKey {
        let (addr, family) = addr_words(self.vip);
        ServiceKey {
            addr,
            port: lb_common::port_wire(self.port),
            proto: self.protocol.number(),
            family,
        }
    }

    /// The service a `SERVICES` key stands for.
    #[must_use]
    pub fn from_key(key: &ServiceKey) -> Option<Self> {
        let protocol = match key.proto {
            PROTO_TCP => Protocol::Tcp,
            PROTO_UDP => Protocol::Udp,
            _ => return None,
        };
        let vip = ip_from_words(&key.addr, key.family)?;
        Some(Self {
            vip,
            port: u16::from_be(key.port),
            protocol,
        })
    }

    #[must_use]
    pub fn vip_key(&self) -> VipKey {
        let (addr, family) = addr_words(self.vip);
        VipKey {
            addr,
            family: u32::from(family),
        }
    }
}

impl fmt::Display for ServiceAddr {
    /// `VIP:PORT/PROTO`, the `service` label of the metrics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vip {
            IpAddr::V4(v4) => write!(f, "{v4}:{}/{}", self.port, self.protocol),
            IpAddr::V6(v6) => write!(f, "[{v6}]:{}/{}", self.port, self.protocol),
        }
    }
}

/// A real of a service: how the balancer, the health checker, drains and
/// the metrics' bookkeeping identify it. The same address under two
/// services is two reals (each has its own slot, health and counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RealKey {
    pub service: ServiceAddr,
    /// `IP:PORT` (`[v6]:PORT`) as text: the `real` label and `lbctl`'s form.
    pub real: SocketAddr,
}

impl RealKey {
    #[must_use]
    pub fn new(service: ServiceAddr, real: SocketAddr) -> Self {
        Self { service, real }
    }
}

impl fmt::Display for RealKey {
    /// `real IP:PORT of VIP:PORT/PROTO`, as log lines name a checked real.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "real {} of {}", self.real, self.service)
    }
}

/// The address that map words (wire order) and a family stand for.
#[must_use]
pub fn ip_from_words(words: &[u32; 4], family: u8) -> Option<IpAddr> {
    let mut bytes = [0u8; 16];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    match family {
        FAMILY_V4 => Some(IpAddr::from(
            <[u8; 4]>::try_from(&bytes[..4]).expect("4 bytes"),
        )),
        FAMILY_V6 => Some(IpAddr::from(bytes)),
        _ => None,
    }
}

/// Address words and family of an IP address, as the maps store them.
#[must_use]
pub fn addr_words(ip: IpAddr) -> ([u32; 4], u8) {
    match ip {
        IpAddr::V4(v4) => (lb_common::addr_words_v4(v4.octets()), FAMILY_V4),
        IpAddr::V6(v6) => (lb_common::addr_words_v6(v6.octets()), FAMILY_V6),
    }
}

/// One real server of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealSpec {
    pub addr: IpAddr,
    /// The service port on the real (DR cannot translate ports: it is used by
    /// health checks and as the real's identity).
    pub port: u16,
    /// 0 takes the real out of rotation for new flows; existing flows stay.
    pub weight: u32,
    /// Resolved MAC; `None` keeps the real out of rotation until known.
    pub mac: Option<[u8; 6]>,
    /// The real is down and its established flows should move to other
    /// reals on their next packet (`REAL_F_REROUTE`): a dead server cannot
    /// finish them.
    pub reroute: bool,
}

impl RealSpec {
    /// `IP:PORT`, the `real` label of the metrics and the real's identity
    /// (Maglev hashes it, so two directors agree).
    #[must_use]
    pub fn name(&self) -> String {
        self.socket().to_string()
    }

    /// `IP:PORT`, typed: the real's part of its [`RealKey`].
    #[must_use]
    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// Everything about one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub addr: ServiceAddr,
    pub scheduler: Scheduler,
    /// Maglev/sh ring size (prime).
    pub table_size: u32,
    pub reals: Vec<RealSpec>,
    /// The "sorry" server new flows go to when no real can take them.
    pub fallback: Option<RealSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_round_trip() {
        for (vip, protocol) in [("10.1.2.3", Protocol::Tcp), ("fd00::200", Protocol::Udp)] {
            let addr = ServiceAddr {
                vip: vip.parse().unwrap(),
                port: 8080,
                protocol,
            };
            assert_eq!(ServiceAddr::from_key(&addr.key()), Some(addr));
        }
    }

    #[test]
    fn scheduler_ids_round_trip() {
        for sched in Scheduler::ALL {
            assert_eq!(Scheduler::from_id(sched.id()), Some(sched));
        }
        assert_eq!(Scheduler::from_id(0), None);
    }
}
