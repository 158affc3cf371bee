//! The connection table as the sync sees it: flows named by addresses
//! ([`FlowRecord`]) instead of this host's slot numbers, read from and
//! written to the pinned maps directly. The sync thread opens its own
//! handles on the pins, so it never waits for (or delays) the controller.
//!
//! Slots differ between directors: a record names the service (VIP, port,
//! protocol) and the real (address, port), and the receiver looks both up
//! in its own `SERVICES` and `REAL_META`. A flow whose service or real this
//! director does not have is counted and skipped; on a backup a flow
//! already in the table on another real is overwritten (the master's choice
//! is the one the client's connection lives on).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use aya::maps::{Array, HashMap as BpfHashMap, IterableMap, Map, MapData, MapError};
use lb_common::{
    FLOW_CLOSING, FLOW_HALF_OPEN, FlowKey, FlowValue, ServiceKey, ServiceValue, map_names as names,
};

use super::wire::FlowRecord;
use crate::balancer::model::{addr_words, ip_from_words};
use crate::dataplane::{
    DataplaneError, META_ACTIVE, META_FREE, PinDir, REAL_META_NAME, RealMeta, batch_unsupported,
    lookup_all, update_entries,
};

/// Who owns each slot and each service id, read from the pinned maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// (service key, real address) -> real slot.
    slots: HashMap<(ServiceKey, SocketAddr), u32>,
    /// real slot -> real address.
    reals: HashMap<u32, SocketAddr>,
    /// service key -> service id.
    ids: HashMap<ServiceKey, u32>,
}

impl Index {
    /// From the `SERVICES` entries and the used `REAL_META` slots. An
    /// active owner wins over a retired one of the same address (a real
    /// removed and added again gets a new slot).
    #[must_use]
    pub fn new(
        services: impl IntoIterator<Item = (ServiceKey, ServiceValue)>,
        metas: impl IntoIterator<Item = (u32, RealMeta)>,
    ) -> Self {
        let mut index = Self::default();
        for (key, value) in services {
            index.ids.insert(key, value.id);
        }
        for (slot, m) in metas {
            if m.state == META_FREE {
                continue;
            }
            let Some(ip) = m.ip() else { continue };
            let addr = SocketAddr::new(ip, m.port);
            index.reals.insert(slot, addr);
            let entry = index.slots.entry((m.service, addr)).or_insert(slot);
            if m.state == META_ACTIVE {
                *entry = slot;
            }
        }
        index
    }

    /// The record for one connection-table entry, or `None` when its slot
    /// has no owner.
    #[must_use]
    pub fn record(&self, key: &FlowKey, value: &FlowValue, now_ns: u64) -> Option<FlowRecord> {
        let real = *self.reals.get(&value.real)?;
        let client = SocketAddr::new(
            ip_from_words(&key.src, key.family)?,
            u16::from_be(key.src_port),
        );
        let vip = SocketAddr::new(
            ip_from_words(&key.dst, key.family)?,
            u16::from_be(key.dst_port),
        );
        let idle = now_ns.saturating_sub(value.last_seen_ns) / 1_000_000;
        Some(FlowRecord {
            client,
            vip,
            protocol: key.proto,
            real,
            closing: value.state == FLOW_CLOSING,
            half_open: value.state == FLOW_HALF_OPEN,
            idle_ms: u32::try_from(idle).unwrap_or(u32::MAX),
        })
    }

    /// The entry to write for `record`, or why not.
    pub fn entry(&self, record: &FlowRecord, now_ns: u64) -> Result<(FlowKey, FlowValue), Unknown> {
        let service = service_key(record.vip, record.protocol);
        let id = *self.ids.get(&service).ok_or(Unknown::Service)?;
        let slot = *self
            .slots
            .get(&(service, record.real))
            .ok_or(Unknown::Real)?;
        let (src, family) = addr_words(record.client.ip());
        let (dst, _) = addr_words(record.vip.ip());
        let key = FlowKey {
            src,
            dst,
            src_port: record.client.port().to_be(),
            dst_port: record.vip.port().to_be(),
            proto: record.protocol,
            family,
            _pad: [0; 2],
        };
        let value = FlowValue {
            real: slot,
            state: record.state(),
            service: id,
            flags: 0,
            last_seen_ns: now_ns.saturating_sub(u64::from(record.idle_ms) * 1_000_000),
        };
        Ok((key, value))
    }
}

/// Why a received flow was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// No such service here.
    Service,
    /// The service has no such real here.
    Real,
}

fn service_key(vip: SocketAddr, protocol: u8) -> ServiceKey {
    let (addr, family) = addr_words(vip.ip());
    ServiceKey {
        addr,
        port: lb_common::port_wire(vip.port()),
        proto: protocol,
        family,
    }
}

/// What applying a datagram's records did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Written into the table.
    pub written: u64,
    /// Already in the table, which this director's data path owns (it is
    /// master): kept as they are.
    pub kept: u64,
    /// For a service or real this director does not have.
    pub unknown_service: u64,
    pub unknown_real: u64,
}

impl Applied {
    #[must_use]
    pub fn unknown(&self) -> u64 {
        self.unknown_service + self.unknown_real
    }
}

/// Handles on the pinned maps the sync reads and writes.
pub struct PinnedTables {
    conntrack: BpfHashMap<MapData, FlowKey, FlowValue>,
    services: BpfHashMap<MapData, ServiceKey, ServiceValue>,
    real_meta: Array<MapData, RealMeta>,
}

impl PinnedTables {
    /// Opens the maps a running lbd pinned under `pins`.
    pub fn open(pins: &PinDir) -> Result<Self, DataplaneError> {
        Ok(Self {
            conntrack: open(pins, names::CONNTRACK)?,
            services: open(pins, names::SERVICES)?,
            real_meta: open(pins, REAL_META_NAME)?,
        })
    }

    /// Reads who owns each slot and service id now (in batches: `REAL_META`
    /// has a slot for every possible real).
    pub fn index(&self) -> Result<Index, DataplaneError> {
        let services = match lookup_all(IterableMap::map(&self.services)) {
            Ok(all) => all,
            Err(e) if batch_unsupported(&e) => {
                let mut all = Vec::new();
                for item in &self.services {
                    all.push(item.map_err(err(names::SERVICES))?);
                }
                all
            }
            Err(source) => return Err(batch_err(names::SERVICES, source)),
        };
        let metas: Vec<(u32, RealMeta)> = match lookup_all(self.real_meta.map()) {
            Ok(all) => all,
            Err(e) if batch_unsupported(&e) => {
                let mut all = Vec::new();
                for slot in 0..self.real_meta.len() {
                    all.push((
                        slot,
                        self.real_meta.get(&slot, 0).map_err(err(REAL_META_NAME))?,
                    ));
                }
                all
            }
            Err(source) => return Err(batch_err(REAL_META_NAME, source)),
        };
        Ok(Index::new(
            services,
            metas.into_iter().filter(|(_, m)| m.state != META_FREE),
        ))
    }

    /// Every flow, read in batches.
    pub fn flows(&self) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
        match lookup_all(IterableMap::map(&self.conntrack)) {
            Ok(flows) => Ok(flows),
            Err(e) if batch_unsupported(&e) => crate::dataplane::walk(&self.conntrack),
            Err(source) => Err(batch_err(names::CONNTRACK, source)),
        }
    }

    /// Writes received flows.
    ///
    /// Backup (`only_new` false): every record is written as the master
    /// has it, in one batch; this director's data path sees no client
    /// traffic, so there is nothing to keep.
    /// Master (`only_new`): a flow already in the table is left alone, and
    /// one it has never seen (the last ones of the previous master, or of
    /// the other side of a healed split) is added only if the data path has
    /// not created it meanwhile (`BPF_NOEXIST`).
    ///
    /// The per-real active-connection counts least-connection reads are not
    /// adjusted here (a read-modify-write would race the data path's atomic
    /// updates): the ageing pass rebuilds them from the table, and lbd runs
    /// one as soon as it becomes master.
    pub fn apply(
        &mut self,
        index: &Index,
        records: &[FlowRecord],
        now_ns: u64,
        only_new: bool,
    ) -> Result<Applied, DataplaneError> {
        let mut applied = Applied::default();
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            match index.entry(record, now_ns) {
                Ok(entry) => entries.push(entry),
                Err(Unknown::Service) => applied.unknown_service += 1,
                Err(Unknown::Real) => applied.unknown_real += 1,
            }
        }
        if only_new {
            for (key, value) in &entries {
                match self.conntrack.insert(key, value, BPF_NOEXIST) {
                    Ok(()) => applied.written += 1,
                    Err(MapError::SyscallError(e))
                        if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
                    {
                        applied.kept += 1;
                    }
                    Err(e) => return Err(err(names::CONNTRACK)(e)),
                }
            }
            return Ok(applied);
        }
        match update_entries(IterableMap::map(&self.conntrack), &entries) {
            Ok(()) => {}
            Err(e) if batch_unsupported(&e) => {
                for (key, value) in &entries {
                    self.conntrack
                        .insert(key, value, 0)
                        .map_err(err(names::CONNTRACK))?;
                }
            }
            Err(source) => return Err(batch_err(names::CONNTRACK, source)),
        }
        applied.written = entries.len() as u64;
        Ok(applied)
    }
}

/// `BPF_NOEXIST`: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;

fn batch_err(name: &'static str, source: std::io::Error) -> DataplaneError {
    DataplaneError::Batch { name, source }
}

fn open<T>(pins: &PinDir, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<Map, Error = MapError>,
{
    let data = MapData::from_pin(pins.map(name)).map_err(err(name))?;
    let map = Map::from_map_data(data).map_err(err(name))?;
    T::try_from(map).map_err(err(name))
}

fn err(name: &'static str) -> impl Fn(MapError) -> DataplaneError {
    move |source| DataplaneError::Map {
        name,
        source: Box::new(source),
    }
}

/// The address of a `SocketAddr`'s IP, for tests and logs.
#[must_use]
pub fn family_of(addr: SocketAddr) -> &'static str {
    match addr.ip() {
        IpAddr::V4(_) => "ipv4",
        IpAddr::V6(_) => "ipv6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::META_RETIRED;
    use lb_common::FLOW_ACTIVE;

    const NOW: u64 = 1_000_000_000_000;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn web() -> ServiceKey {
        service_key(sa("10.0.0.200:80"), 6)
    }

    fn index() -> Index {
        let services = [(
            web(),
            ServiceValue {
                id: 7,
                ..ServiceValue::default()
            },
        )];
        let metas = [
            (
                3,
                RealMeta::new(web(), "10.0.0.100".parse().unwrap(), 80, META_ACTIVE),
            ),
            (
                4,
                RealMeta::new(web(), "10.0.0.101".parse().unwrap(), 80, META_RETIRED),
            ),
            (
                9,
                RealMeta::new(web(), "10.0.0.101".parse().unwrap(), 80, META_ACTIVE),
            ),
        ];
        Index::new(services, metas)
    }

    fn record(real: &str) -> FlowRecord {
        FlowRecord {
            client: sa("10.0.0.10:40000"),
            vip: sa("10.0.0.200:80"),
            protocol: 6,
            real: sa(real),
            closing: false,
            half_open: false,
            idle_ms: 250,
        }
    }

    #[test]
    fn a_record_becomes_an_entry_on_this_hosts_slots_and_back() {
        let index = index();
        let (key, value) = index.entry(&record("10.0.0.100:80"), NOW).unwrap();
        assert_eq!(value.real, 3);
        assert_eq!(value.service, 7);
        assert_eq!(value.state, FLOW_ACTIVE);
        assert_eq!(value.last_seen_ns, NOW - 250_000_000);
        assert_eq!(u16::from_be(key.dst_port), 80);
        assert_eq!(
            index.record(&key, &value, NOW),
            Some(record("10.0.0.100:80"))
        );
    }

    #[test]
    fn the_active_owner_of_an_address_wins_over_a_retired_one() {
        let (_, value) = index().entry(&record("10.0.0.101:80"), NOW).unwrap();
        assert_eq!(value.real, 9);
    }

    #[test]
    fn unknown_services_and_reals_are_named() {
        let index = index();
        assert_eq!(
            index.entry(&record("10.0.0.102:80"), NOW),
            Err(Unknown::Real)
        );
        let mut other = record("10.0.0.100:80");
        other.vip = sa("10.0.0.200:443");
        assert_eq!(index.entry(&other, NOW), Err(Unknown::Service));
        other.vip = sa("10.0.0.200:80");
        other.protocol = 17;
        assert_eq!(index.entry(&other, NOW), Err(Unknown::Service));
    }

    #[test]
    fn closing_flows_and_ipv6_round_trip() {
        let v6 = service_key(sa("[fd00::200]:80"), 6);
        let index = Index::new(
            [(
                v6,
                ServiceValue {
                    id: 1,
                    ..ServiceValue::default()
                },
            )],
            [(
                0,
                RealMeta::new(v6, "fd00::100".parse().unwrap(), 80, META_ACTIVE),
            )],
        );
        let rec = FlowRecord {
            client: sa("[fd00::10]:5555"),
            vip: sa("[fd00::200]:80"),
            protocol: 6,
            real: sa("[fd00::100]:80"),
            closing: true,
            half_open: false,
            idle_ms: 0,
        };
        let (key, value) = index.entry(&rec, NOW).unwrap();
        assert_eq!(value.state, FLOW_CLOSING);
        assert_eq!(index.record(&key, &value, NOW), Some(rec));
        assert_eq!(family_of(sa("[fd00::1]:1")), "ipv6");
    }

    #[test]
    fn a_slot_without_owner_gives_no_record() {
        let index = index();
        let (key, mut value) = index.entry(&record("10.0.0.100:80"), NOW).unwrap();
        value.real = 42;
        assert_eq!(index.record(&key, &value, NOW), None);
    }
}
