//! Every map the program uses. Sizes here are defaults; userspace sets the
//! real `max_entries` at load time (connection-table size, real count, ...).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use lb_common::{
    FlowKey, FlowValue, LcHints, LcSet, RealValue, Reason, SHARE_RING_BYTES, ServiceKey,
    ServiceValue, Settings, TABLE_CHUNK_SLOTS, TableChunk, TrafficStats, VipKey,
};

/// (VIP, port, protocol) -> service. Userspace replaces a value as a whole to
/// switch a service to a new table atomically.
#[map]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::with_max_entries(1024, 0);

/// Addresses that carry at least one service; consulted for fragments and
/// ICMP errors only.
#[map]
pub static VIPS: HashMap<VipKey, u32> = HashMap::with_max_entries(1024, 0);

/// real id -> where to forward.
#[map]
pub static REALS: Array<RealValue> = Array::with_max_entries(65536, 0);

/// real id -> active connections (shared by all CPUs, updated atomically;
/// least-connection reads it, userspace ageing repairs it).
#[map]
pub static REAL_CONNS: Array<u64> = Array::with_max_entries(65536, 0);

/// No longer written or read: the inactive (half-open) count is derived
/// from `REAL_LOAD` and `REAL_CONNS` (see conntrack.rs). Still declared so
/// that an upgraded lbd adopts the maps an older one pinned, which include
/// it.
#[map]
pub static REAL_INACTIVE: Array<u64> = Array::with_max_entries(65536, 0);

/// real id -> least-connection load, `active * 256 + inactive` (IPVS's
/// overhead): the half-open flows' count lives only here, and a scan reads
/// one array.
#[map]
pub static REAL_LOAD: Array<u64> = Array::with_max_entries(65536, 0);

/// real id -> per-CPU traffic counters.
#[map]
pub static REAL_STATS: PerCpuArray<TrafficStats> = PerCpuArray::with_max_entries(65536, 0);

/// real id -> per-CPU count of retransmitted SYNs of its half-open flows
/// (a client sent its SYN again: the real did not answer the first). A map
/// of its own rather than a field of `TrafficStats`: an `lbd` upgrade then
/// adopts the pinned maps of the previous one (a grown `REAL_STATS` would
/// need `lbd teardown`), and the daemon, which polls it several times a
/// second, reads 8 bytes per real and CPU instead of 32.
#[map]
pub static REAL_SYN_RETRANS: PerCpuArray<u64> = PerCpuArray::with_max_entries(65536, 0);

/// service id -> per-CPU traffic counters.
#[map]
pub static SERVICE_STATS: PerCpuArray<TrafficStats> = PerCpuArray::with_max_entries(1024, 0);

/// Reason slot -> per-CPU packet count.
#[map]
pub static GLOBAL_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Reason::COUNT, 0);

/// Real ids of every rr/wrr sequence and maglev/sh table, in chunk-aligned
/// slot ranges that userspace allocates (`ServiceValue::table_offset/len`)
/// and fills with one batch update per table; see `TableChunk`.
#[map]
pub static SCHED_TABLE: Array<TableChunk> =
    Array::with_max_entries((1 << 20) / TABLE_CHUNK_SLOTS, 0);

/// Least-connection member sets; two per lc service so userspace can build
/// the next one while the data path reads the current one.
#[map]
pub static LC_SETS: Array<LcSet> = Array::with_max_entries(256, 0);

/// `LC_SETS` index -> each group's least-loaded member (see `lc.rs`).
/// Written by the data path on every pick and by userspace after it writes
/// counts.
#[map]
pub static LC_HINTS: Array<LcHints> = Array::with_max_entries(256, 0);

/// One least-connection pick's working state (see `lc::Scratch`); the
/// program's own, not pinned, never read by userspace.
#[map]
pub static LC_SCRATCH: PerCpuArray<crate::lc::Scratch> = PerCpuArray::with_max_entries(1, 0);

/// service id -> per-CPU round-robin position (also rotates lc tie-breaks).
#[map]
pub static RR_CURSOR: PerCpuArray<u32> = PerCpuArray::with_max_entries(1024, 0);

/// 5-tuple -> flow. LRU: under pressure the least recently used flows go.
#[map]
pub static CONNTRACK: LruHashMap<FlowKey, FlowValue> = LruHashMap::with_max_entries(1 << 20, 0);

/// 5-tuple -> half-open TCP flow (client SYN seen, its ACK not yet) that
/// found no room in `CONNTRACK` (see `SYN_ALLOWANCE`). Apart from
/// `CONNTRACK` so that a SYN flood evicts only half-open flows; the client's
/// ACK moves a flow to `CONNTRACK`.
#[map]
pub static HALF_OPEN: LruHashMap<FlowKey, FlowValue> = LruHashMap::with_max_entries(1 << 18, 0);

/// Slot 0: how many more half-open flows this CPU may put into `CONNTRACK`
/// (per CPU). A SYN spends one, the flow's handshake completing or closing
/// gives it back; userspace rewrites it after every ageing pass from what
/// the table holds (see `lb_daemon::ageing::syn_allowance`). At 0 SYNs go to
/// `HALF_OPEN` instead: a flood fills at most the share of `CONNTRACK`
/// userspace allows, never evicting an established flow.
#[map]
pub static SYN_ALLOWANCE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Whether `HALF_OPEN` may hold a half-open flow of this director's own:
/// unless slot `HALF_OPEN_GEN_INSERTS` equals slot `HALF_OPEN_GEN_EMPTY_AT`
/// (see `lb_common`). While it may, SYNs go to `HALF_OPEN` whatever their
/// allowance, so that a retransmitted SYN finds its flow there.
#[map]
pub static HALF_OPEN_GEN: Array<u64> = Array::with_max_entries(2, 0);

/// Slot 0: interfaces and their MACs.
#[map]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Flow sharing: records of flows opened, established and closing (see
/// `share.rs`), read by lbd's sharing thread.
#[map]
pub static SHARE_EVENTS: RingBuf = RingBuf::with_byte_size(SHARE_RING_BYTES, 0);

/// Slot 0: records `SHARE_EVENTS` had no room for (per CPU).
#[map]
pub static SHARE_DROPPED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
