//! Why the data path returned what it did: one slot per reason in the
//! `GLOBAL_STATS` per-CPU array, each tied to exactly one action.
//!
//! The documented rule for bad input: a frame that cannot be parsed far enough
//! to know it belongs to a service is passed to the kernel untouched (the
//! kernel's own checks then drop it); IPv4 fragments to a VIP and packets of a
//! service without a usable real are dropped. Nothing returns `XDP_ABORTED`.
//!
//! ICMP errors addressed to a VIP (destination unreachable, including
//! "fragmentation needed", packet too big, time exceeded) are about a packet
//! a real sent: they go to the real that owns the flow, so path MTU discovery
//! works through the director; when no flow matches they pass to the kernel.

/// The verdict a reason implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pass,
    Tx,
    Drop,
}

impl Action {
    /// The XDP return code.
    #[must_use]
    pub const fn xdp_code(self) -> u32 {
        match self {
            Action::Drop => 1,
            Action::Pass => 2,
            Action::Tx => 3,
        }
    }

    /// Name used in metrics (`action` label).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Tx => "tx",
            Action::Drop => "drop",
        }
    }
}

/// Every reason the data path counts. The discriminant is the slot in
/// `GLOBAL_STATS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Frame shorter than an Ethernet header.
    ShortEthernet = 0,
    /// 802.1Q tag cut short.
    ShortVlan,
    /// Neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IPv4 header cut short.
    ShortIpv4,
    /// IPv4 IHL below 5.
    BadIhl,
    /// IPv4 total length smaller than the header or larger than the frame.
    BadIpv4Length,
    /// IPv6 header cut short.
    ShortIpv6,
    /// IPv6 payload length larger than the frame.
    BadIpv6Length,
    /// IPv6 with an extension header: left to the kernel.
    Ipv6ExtensionHeader,
    /// Not TCP or UDP, and not an ICMP error to a VIP (echo, VRRP, ...).
    NotTcpUdp,
    /// TCP/UDP header cut short.
    ShortL4,
    /// No service for (destination, port, protocol): the host's own traffic.
    NoService,
    /// IPv4 fragment of something that is not a VIP.
    FragmentNotVip,
    /// Service traffic arriving on an interface userspace did not configure
    /// (other traffic there counts as `NoService`).
    UnknownInterface,
    /// A packet of a known flow.
    Established,
    /// First packet of a new connection, scheduled (including a SYN that
    /// reuses the 5-tuple of a closing flow).
    NewFlow,
    /// A known flow whose real is gone or down, scheduled again.
    Rescheduled,
    /// IPv4 fragment to a VIP: no ports to find the service or flow.
    FragmentToVip,
    /// The service has no usable real and no fallback.
    NoReal,
    /// The connection table refused an insert (should not happen with LRU).
    ConntrackFull,
    /// Ethernet destination is not the ingress interface's own MAC: a frame
    /// flooded by a switch (unknown unicast) or meant for another host, such
    /// as the other director. Not ours to forward.
    OtherHost,
    /// IP header whose version nibble does not match its `EtherType` (4 for
    /// IPv4, 6 for IPv6).
    BadIpVersion,
    /// Around a failover: a mid-connection TCP packet (no SYN) of a flow
    /// this director does not know (or knows only as closing), sent on to
    /// the other director, which saw it open and knows its real.
    ToOtherDirector,
    /// ICMP error to a VIP about a known flow: sent to the flow's real.
    IcmpErrorForwarded,
    /// ICMP error to a VIP whose embedded packet matches no flow with a
    /// usable real (or is not TCP/UDP): the kernel handles it.
    IcmpErrorNoFlow,
    /// ICMP error to a VIP cut short (ICMP header or embedded IP/ports) or
    /// with a malformed embedded IPv4 header: the kernel handles it.
    IcmpErrorShort,
}

impl Reason {
    /// Number of slots in `GLOBAL_STATS`.
    pub const COUNT: u32 = Reason::IcmpErrorShort as u32 + 1;

    /// Every reason in slot order.
    pub const ALL: [Reason; Reason::COUNT as usize] = [
        Reason::ShortEthernet,
        Reason::ShortVlan,
        Reason::NotIp,
        Reason::ShortIpv4,
        Reason::BadIhl,
        Reason::BadIpv4Length,
        Reason::ShortIpv6,
        Reason::BadIpv6Length,
        Reason::Ipv6ExtensionHeader,
        Reason::NotTcpUdp,
        Reason::ShortL4,
        Reason::NoService,
        Reason::FragmentNotVip,
        Reason::UnknownInterface,
        Reason::Established,
        Reason::NewFlow,
        Reason::Rescheduled,
        Reason::FragmentToVip,
        Reason::NoReal,
        Reason::ConntrackFull,
        Reason::OtherHost,
        Reason::BadIpVersion,
        Reason::ToOtherDirector,
        Reason::IcmpErrorForwarded,
        Reason::IcmpErrorNoFlow,
        Reason::IcmpErrorShort,
    ];

    #[must_use]
    pub const fn action(self) -> Action {
        match self {
            Reason::Established
            | Reason::NewFlow
            | Reason::Rescheduled
            | Reason::ToOtherDirector
            | Reason::IcmpErrorForwarded => Action::Tx,
            Reason::FragmentToVip | Reason::NoReal | Reason::ConntrackFull => Action::Drop,
            _ => Action::Pass,
        }
    }

    /// Name used in metrics (`reason` label) and `lbctl`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Reason::ShortEthernet => "short_ethernet",
            Reason::ShortVlan => "short_vlan",
            Reason::NotIp => "not_ip",
            Reason::ShortIpv4 => "short_ipv4",
            Reason::BadIhl => "bad_ihl",
            Reason::BadIpv4Length => "bad_ipv4_length",
            Reason::ShortIpv6 => "short_ipv6",
            Reason::BadIpv6Length => "bad_ipv6_length",
            Reason::Ipv6ExtensionHeader => "ipv6_extension_header",
            Reason::NotTcpUdp => "not_tcp_udp",
            Reason::ShortL4 => "short_l4",
            Reason::NoService => "no_service",
            Reason::FragmentNotVip => "fragment_not_vip",
            Reason::UnknownInterface => "unknown_interface",
            Reason::Established => "established",
            Reason::NewFlow => "new_flow",
            Reason::Rescheduled => "rescheduled",
            Reason::FragmentToVip => "fragment_to_vip",
            Reason::NoReal => "no_real",
            Reason::ConntrackFull => "conntrack_full",
            Reason::OtherHost => "other_host",
            Reason::BadIpVersion => "bad_ip_version",
            Reason::ToOtherDirector => "to_other_director",
            Reason::IcmpErrorForwarded => "icmp_error_forwarded",
            Reason::IcmpErrorNoFlow => "icmp_error_no_flow",
            Reason::IcmpErrorShort => "icmp_error_short",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_slot_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }
}
