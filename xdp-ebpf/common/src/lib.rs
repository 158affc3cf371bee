//! Map layouts and constants shared by the XDP program and userspace.
//!
//! Every map value is `#[repr(C)]` with explicit padding so its byte layout is
//! the same on both sides and contains no uninitialised bytes. Flags are `u32`,
//! never `bool`. Addresses and ports are kept in *wire order*: the bytes as
//! they appear in the packet, read as native-endian integers. Userspace
//! converts with [`addr_words_v4`]/[`addr_words_v6`] and [`port_wire`].
#![no_std]

mod hash;
mod reason;

pub use hash::{flow_hash, fold_addr, mix32, source_hash};
pub use reason::{Action, Reason};

/// Largest number of reals a least-connection service may have: the data path
/// scans all of them for every new flow.
pub const MAX_LC_REALS: usize = 256;
/// Interfaces the program may be attached to at once (their MACs live in
/// [`Settings`]).
pub const MAX_IFACES: usize = 8;
/// Weight of one active connection in a real's least-connection load
/// (`REAL_LOAD` = active × this + inactive), as IPVS weighs them.
pub const ACTIVE_LOAD: u64 = 256;
/// Marks "no real" in `u32` real-id fields.
pub const NO_REAL: u32 = u32::MAX;

/// `HALF_OPEN_GEN` slot: how many times the data path put a half-open flow
/// of its own into `HALF_OPEN` (or adopted a learned one there).
pub const HALF_OPEN_GEN_INSERTS: u32 = 0;
/// `HALF_OPEN_GEN` slot: the [`HALF_OPEN_GEN_INSERTS`] count at which
/// userspace last saw no half-open flow of this director's own in
/// `HALF_OPEN`; while both are equal there is none.
pub const HALF_OPEN_GEN_EMPTY_AT: u32 = 1;

/// Map names, as the program declares them and userspace looks them up.
pub mod map_names {
    pub const SERVICES: &str = "SERVICES";
    pub const VIPS: &str = "VIPS";
    pub const REALS: &str = "REALS";
    pub const REAL_CONNS: &str = "REAL_CONNS";
    pub const REAL_STATS: &str = "REAL_STATS";
    pub const REAL_SYN_RETRANS: &str = "REAL_SYN_RETRANS";
    pub const SERVICE_STATS: &str = "SERVICE_STATS";
    pub const GLOBAL_STATS: &str = "GLOBAL_STATS";
    pub const SCHED_TABLE: &str = "SCHED_TABLE";
    pub const LC_SETS: &str = "LC_SETS";
    pub const LC_HINTS: &str = "LC_HINTS";
    pub const RR_CURSOR: &str = "RR_CURSOR";
    pub const CONNTRACK: &str = "CONNTRACK";
    pub const HALF_OPEN: &str = "HALF_OPEN";
    pub const REAL_INACTIVE: &str = "REAL_INACTIVE";
    pub const REAL_LOAD: &str = "REAL_LOAD";
    pub const SETTINGS: &str = "SETTINGS";
    pub const SHARE_EVENTS: &str = "SHARE_EVENTS";
    pub const SHARE_DROPPED: &str = "SHARE_DROPPED";
    pub const SYN_ALLOWANCE: &str = "SYN_ALLOWANCE";
    pub const HALF_OPEN_GEN: &str = "HALF_OPEN_GEN";
}

/// Program names in the object file.
pub mod program_names {
    /// The load balancer.
    pub const LB: &str = "lb_xdp";
    /// Passes everything; the lab attaches it to the bridge-side veth peer so
    /// frames sent with `XDP_TX` are received (see toolchain notes).
    pub const PASS: &str = "xdp_pass";
    /// Benchmark baseline: rewrites the MACs and returns `XDP_TX`, nothing else.
    pub const FLOOR: &str = "bench_floor";
}

/// Address families as stored in keys.
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Scheduler ids stored in [`ServiceValue::scheduler`].
pub mod sched {
    /// Round-robin over `SCHED_TABLE[offset..offset+len]` (one entry per real).
    pub const RR: u32 = 1;
    /// Weighted round-robin: same walk over a precomputed weighted sequence.
    pub const WRR: u32 = 2;
    /// Least-connection over `LC_SETS[offset]`.
    pub const LC: u32 = 3;
    /// Weighted least-connection over `LC_SETS[offset]`.
    pub const WLC: u32 = 4;
    /// Maglev: `SCHED_TABLE[offset + flow_hash % len]`.
    pub const MAGLEV: u32 = 5;
    /// Source hashing: `SCHED_TABLE[offset + source_hash % len]`.
    pub const SH: u32 = 6;
}

/// Key of the `SERVICES` hash map: (VIP, port, protocol).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// VIP in wire order; IPv4 uses word 0 and leaves 1..3 zero.
    pub addr: [u32; 4],
    /// Destination port in wire order.
    pub port: u16,
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    /// `FAMILY_V4` or `FAMILY_V6`.
    pub family: u8,
}

/// Value of the `SERVICES` map. Replaced as a whole by userspace, which makes
/// switching to a new scheduling table atomic for the data path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceValue {
    /// Index into the per-service arrays (`SERVICE_STATS`, `RR_CURSOR`).
    pub id: u32,
    /// One of [`sched`].
    pub scheduler: u32,
    /// `SCHED_TABLE` offset, or `LC_SETS` index for lc/wlc.
    pub table_offset: u32,
    /// Entries in the table (0 = no usable real).
    pub table_len: u32,
    /// Real used when the table is empty ("sorry server"), or [`NO_REAL`].
    pub fallback_real: u32,
    /// Reserved; zero.
    pub flags: u32,
}

/// Key of the `VIPS` map: every address that has at least one service. Only
/// consulted for IPv4 fragments (which carry no ports) and ICMP errors.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    pub addr: [u32; 4],
    pub family: u32,
}

/// `REALS[real_id]`: where to send a flow's frames.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealValue {
    /// Destination MAC written into forwarded frames.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// [`REAL_F_VALID`] | [`REAL_F_REROUTE`].
    pub flags: u32,
    /// Where the real sits in a least-connection set, so that the data path
    /// can keep that set's [`LcHints`] when one of the real's connections
    /// closes or completes its handshake: 0 = in none, otherwise
    /// `(set << 8 | position) + 1` ([`lc_slot`]). Only a hint: a stale value
    /// can make the data path compare two members of another set, never
    /// pick a wrong real (see `LcHints`).
    pub lc_slot: u32,
}

impl RealValue {
    /// The (`LC_SETS` index, member position) of [`RealValue::lc_slot`].
    #[inline(always)]
    #[must_use]
    pub fn lc_position(&self) -> Option<(u32, u32)> {
        let slot = self.lc_slot.checked_sub(1)?;
        Some((slot >> 8, slot & (MAX_LC_REALS as u32 - 1)))
    }
}

/// [`RealValue::lc_slot`] of position `position` of `LC_SETS[set]`.
#[must_use]
pub const fn lc_slot(set: u32, position: u32) -> u32 {
    (set << 8 | (position & (MAX_LC_REALS as u32 - 1))) + 1
}

/// The slot holds a configured real with a resolved MAC.
pub const REAL_F_VALID: u32 = 1;
/// Existing flows of this real are scheduled again on their next packet (the
/// real is down and cannot finish them).
pub const REAL_F_REROUTE: u32 = 2;

/// Per-CPU counters kept per service and per real.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficStats {
    pub packets: u64,
    pub bytes: u64,
    /// Flows scheduled to this service/real (including rescheduled ones).
    pub new_flows: u64,
}

/// One member of a least-connection set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LcMember {
    pub real: u32,
    /// Effective weight; members with weight 0 are skipped.
    pub weight: u32,
}

/// `LC_SETS[i]`: the reals a least-connection service picks from.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LcSet {
    pub count: u32,
    /// 1 for wlc (loads compared per weight), 0 for lc. The pick knows it
    /// from the service; the set carries it for the close path, which does
    /// not look the service up.
    pub weighted: u32,
    pub members: [LcMember; MAX_LC_REALS],
}

impl Default for LcSet {
    fn default() -> Self {
        Self {
            count: 0,
            weighted: 0,
            members: [LcMember::default(); MAX_LC_REALS],
        }
    }
}

/// Members of a least-connection set per group: member `p` is in group
/// `p / LC_GROUP_SIZE`.
pub const LC_GROUP_SIZE: usize = 16;
/// Groups of a full least-connection set.
pub const LC_GROUPS: usize = MAX_LC_REALS / LC_GROUP_SIZE;

/// `LC_HINTS[i]`: for each group of `LC_SETS[i]`, the position of its least
/// loaded member. A new flow compares the live loads of the 16 hinted
/// members, scans the winning group's 16 members and updates that group's
/// hint: 32 loads read instead of 256. The data path keeps the hints as
/// loads change (a pick, a close, a completed handshake); userspace
/// recomputes them whenever it writes counts itself (ageing). Loads are
/// always read live, so a stale hint can only make a group look busier
/// than it is until its next scan.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LcHints {
    pub best: [u32; LC_GROUPS],
}

/// Slots of the scheduling table per `SCHED_TABLE` element. The table is
/// stored in chunks so userspace writes a 65537-slot Maglev ring as ~1000
/// map elements instead of 65537 (the kernel's cost is per element).
pub const TABLE_CHUNK_SLOTS: u32 = 64;

/// One element of `SCHED_TABLE`: `TABLE_CHUNK_SLOTS` consecutive slots.
/// Slot `s` lives in element `s / 64` at position `s % 64`; every service's
/// range starts on a chunk boundary, so no two services share a chunk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableChunk {
    pub ids: [u32; TABLE_CHUNK_SLOTS as usize],
}

impl Default for TableChunk {
    fn default() -> Self {
        Self {
            ids: [NO_REAL; TABLE_CHUNK_SLOTS as usize],
        }
    }
}

/// Connection-table key: the flow's 5-tuple as sent by the client.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

/// Connection-table value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    /// Index into `REALS`.
    pub real: u32,
    /// [`FLOW_ACTIVE`] or [`FLOW_CLOSING`] in `CONNTRACK`;
    /// [`FLOW_HALF_OPEN`] or [`FLOW_CLOSING`] in `HALF_OPEN`.
    pub state: u32,
    /// The service's id (`ServiceValue::id`), so a packet of a known flow
    /// needs no service lookup.
    pub service: u32,
    /// [`FLOW_F_LEARNED`], or 0.
    pub flags: u32,
    /// `CLOCK_MONOTONIC` (coarse) nanoseconds of the last packet, refreshed at
    /// most every [`LAST_SEEN_GRANULARITY_NS`] to keep the hit path cheap.
    pub last_seen_ns: u64,
}

/// A live flow: counted in its real's active connections.
pub const FLOW_ACTIVE: u32 = 1;
/// The client sent FIN or RST; no longer counted as active. A new SYN on this
/// 5-tuple is a new connection and is scheduled again.
pub const FLOW_CLOSING: u32 = 2;
/// A TCP flow between the client's SYN and its first packet without SYN
/// (the handshake's ACK): kept in `HALF_OPEN`, counted in its real's
/// inactive connections (its load in `REAL_LOAD`), not in the active ones. The ACK
/// moves it to `CONNTRACK` as [`FLOW_ACTIVE`]; FIN or RST makes it
/// [`FLOW_CLOSING`] where it is.
pub const FLOW_HALF_OPEN: u32 = 3;
/// `FlowValue::flags`: written by flow sharing (`[ecmp.sync]`) from another
/// director's report, not opened here. A learned flow counts in no real's
/// active or inactive connections on this director (the director that
/// forwards it counts it), and the sharing never overwrites a flow without
/// the flag. The first packet of it this director forwards clears the flag
/// and counts the flow (the router moved it here): from then on it is this
/// director's own.
pub const FLOW_F_LEARNED: u32 = 1;
/// How stale `last_seen_ns` may get before the data path refreshes it.
pub const LAST_SEEN_GRANULARITY_NS: u64 = 1_000_000_000;

/// One interface the program runs on and the MAC it sends from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceMac {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// `SETTINGS[0]`: program-wide settings written by userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub iface_count: u32,
    /// [`SETTINGS_F_LOG_EVENTS`], [`SETTINGS_F_SHARE_FLOWS`],
    /// [`SETTINGS_F_DIRECTOR_DRAINED`].
    pub flags: u32,
    /// Until when (`CLOCK_MONOTONIC` ns, the clock of
    /// `bpf_ktime_get_coarse_ns`) a mid-connection TCP packet of a flow this
    /// director does not know goes to `handover_mac`, the other director
    /// (the master, while this one is backup; the previous master, for a
    /// while after this one took over): it saw the flow open and knows its
    /// real. 0: never; `u64::MAX`: until further notice.
    pub handover_until_ns: u64,
    /// The other director's MAC (see `handover_until_ns`).
    pub handover_mac: [u8; 6],
    pub _pad2: [u8; 2],
    pub ifaces: [IfaceMac; MAX_IFACES],
}

/// `Settings::flags`: log rare data-path events (aya-log).
pub const SETTINGS_F_LOG_EVENTS: u32 = 1;
/// `Settings::flags`: report flows opened, established and closing into
/// `SHARE_EVENTS` (flow sharing, `[ecmp.sync]`).
pub const SETTINGS_F_SHARE_FLOWS: u32 = 2;
/// `Settings::flags`, for userspace only (the data path ignores it): the
/// director is drained (`lbctl director drain`). Kept in the pinned map so
/// that a restarted lbd, which adopts it, stays drained until `lbctl
/// director undrain`; `lbd teardown` (or a reboot) forgets it.
pub const SETTINGS_F_DIRECTOR_DRAINED: u32 = 4;

/// Bytes of the `SHARE_EVENTS` ring buffer: about 75,000 records (48 bytes
/// and the kernel's 8-byte header each), 1.5 s of 50,000 new flows a second
/// with three records each, should the reader stall.
pub const SHARE_RING_BYTES: u32 = 1 << 22;

/// One record of `SHARE_EVENTS`: the data path opened a flow
/// ([`FLOW_HALF_OPEN`] for a SYN, [`FLOW_ACTIVE`] or [`FLOW_CLOSING`]
/// otherwise), completed its handshake ([`FLOW_ACTIVE`]), or saw its FIN or
/// RST ([`FLOW_CLOSING`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    pub key: FlowKey,
    /// Index into `REALS`.
    pub real: u32,
    /// The flow's state after the event.
    pub state: u32,
}

/// IPv4 address as a key word (wire order).
#[must_use]
pub const fn addr_words_v4(octets: [u8; 4]) -> [u32; 4] {
    [u32::from_ne_bytes(octets), 0, 0, 0]
}

/// IPv6 address as key words (wire order).
#[must_use]
pub const fn addr_words_v6(o: [u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([o[0], o[1], o[2], o[3]]),
        u32::from_ne_bytes([o[4], o[5], o[6], o[7]]),
        u32::from_ne_bytes([o[8], o[9], o[10], o[11]]),
        u32::from_ne_bytes([o[12], o[13], o[14], o[15]]),
    ]
}

/// Port in wire order.
#[must_use]
pub const fn port_wire(port: u16) -> u16 {
    port.to_be()
}

#[cfg(feature = "user")]
mod pod {
    use super::{
        FlowEvent, FlowKey, FlowValue, LcHints, LcSet, RealValue, ServiceKey, ServiceValue,
        Settings, TableChunk, TrafficStats, VipKey,
    };
    // SAFETY: all of these are #[repr(C)], contain only integers and integer
    // arrays, and have explicit padding fields, so every byte is initialised.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for ServiceValue {}
    unsafe impl aya::Pod for VipKey {}
    unsafe impl aya::Pod for RealValue {}
    unsafe impl aya::Pod for TrafficStats {}
    unsafe impl aya::Pod for LcSet {}
    unsafe impl aya::Pod for LcHints {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowValue {}
    unsafe impl aya::Pod for FlowEvent {}
    unsafe impl aya::Pod for Settings {}
    unsafe impl aya::Pod for TableChunk {}
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn lc_slot_round_trips_and_zero_means_none() {
        let real = RealValue {
            lc_slot: lc_slot(300, 255),
            ..RealValue::default()
        };
        assert_eq!(real.lc_position(), Some((300, 255)));
        assert_eq!(RealValue::default().lc_position(), None);
    }

    #[test]
    fn sizes_have_no_implicit_padding() {
        assert_eq!(size_of::<ServiceKey>(), 20);
        assert_eq!(size_of::<ServiceValue>(), 24);
        assert_eq!(size_of::<VipKey>(), 20);
        assert_eq!(size_of::<RealValue>(), 16);
        assert_eq!(size_of::<TrafficStats>(), 24);
        assert_eq!(size_of::<LcSet>(), 8 + 8 * MAX_LC_REALS);
        assert_eq!(size_of::<LcHints>(), 4 * LC_GROUPS);
        assert_eq!(size_of::<FlowKey>(), 40);
        assert_eq!(size_of::<FlowValue>(), 24);
        assert_eq!(size_of::<FlowEvent>(), 48);
        // Counts, the hand-over deadline and MAC (8 + 8), the interfaces.
        assert_eq!(size_of::<Settings>(), 8 + 16 + 12 * MAX_IFACES);
    }
}
