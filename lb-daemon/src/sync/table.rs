//! The connection table as the sync sees it: flows named by addresses
//! ([`FlowRecord`]) instead of this host's slot numbers, read from and
//! written to the pinned maps directly. The sync thread opens its own
//! handles on the pins, so it never waits for (or delays) the controller.
//!
//! Slots differ between directors: a record names the service (VIP, port,
//! protocol) and the real (address, port), and the receiver looks both up
//! in its own `SERVICES` and `REAL_META`. A flow whose service or real this
//! director does not have is counted and skipped; a flow already in the
//! table on another real is overwritten (the master's choice is the one the
//! client's connection lives on).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use aya::maps::{Array, HashMap as BpfHashMap, IterableMap, Map, MapData, MapError};
use lb_common::{
    FLOW_ACTIVE, FLOW_CLOSING, FlowKey, FlowValue, ServiceKey, ServiceValue, map_names as names,
};

use super::wire::FlowRecord;
use crate::balancer::model::{addr_words, ip_from_words};
use crate::dataplane::{DataplaneError, META_ACTIVE, META_FREE, PinDir, REAL_META_NAME, RealMeta};

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
            state: if record.closing {
                FLOW_CLOSING
            } else {
                FLOW_ACTIVE
            },
            service: id,
            _pad: 0,
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

/// What applying one record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A new entry.
    Inserted,
    /// The entry existed; its real, state or age changed.
    Updated,
    /// Not applied.
    Unknown(Unknown),
    /// Already in the table, which this director's data path owns (it is
    /// master): kept as it is.
    Kept,
}

/// Handles on the pinned maps the sync reads and writes.
pub struct PinnedTables {
    conntrack: BpfHashMap<MapData, FlowKey, FlowValue>,
    services: BpfHashMap<MapData, ServiceKey, ServiceValue>,
    real_meta: Array<MapData, RealMeta>,
    real_conns: Array<MapData, u64>,
}

impl PinnedTables {
    /// Opens the maps a running lbd pinned under `pins`.
    pub fn open(pins: &PinDir) -> Result<Self, DataplaneError> {
        Ok(Self {
            conntrack: open(pins, names::CONNTRACK)?,
            services: open(pins, names::SERVICES)?,
            real_meta: open(pins, REAL_META_NAME)?,
            real_conns: open(pins, names::REAL_CONNS)?,
        })
    }

    /// Reads who owns each slot and service id now.
    pub fn index(&self) -> Result<Index, DataplaneError> {
        let mut services = Vec::new();
        for item in &self.services {
            services.push(item.map_err(err(names::SERVICES))?);
        }
        let mut metas = Vec::new();
        for slot in 0..self.real_meta.len() {
            let m = self.real_meta.get(&slot, 0).map_err(err(REAL_META_NAME))?;
            if m.state != META_FREE {
                metas.push((slot, m));
            }
        }
        Ok(Index::new(services, metas))
    }

    /// Every flow, read in batches.
    pub fn flows(&self) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
        crate::dataplane::lookup_all(IterableMap::map(&self.conntrack)).map_err(|source| {
            DataplaneError::Batch {
                name: names::CONNTRACK,
                source,
            }
        })
    }

    /// Writes one received flow. A new active flow (or one becoming
    /// active, or moving to this real) counts in its real's active
    /// connections, as if this director's data path had scheduled it; the
    /// data path takes the count down again when the flow closes. With
    /// `only_new` (this director is master) a flow already in the table is
    /// left alone: only flows it has never seen (the last ones of the
    /// previous master, or of the other side of a healed split) are added.
    pub fn apply(
        &mut self,
        index: &Index,
        record: &FlowRecord,
        now_ns: u64,
        only_new: bool,
    ) -> Result<Applied, DataplaneError> {
        let (key, value) = match index.entry(record, now_ns) {
            Ok(entry) => entry,
            Err(unknown) => return Ok(Applied::Unknown(unknown)),
        };
        let old = match self.conntrack.get(&key, 0) {
            Ok(v) => Some(v),
            Err(MapError::KeyNotFound) => None,
            Err(e) => return Err(err(names::CONNTRACK)(e)),
        };
        if only_new && old.is_some() {
            return Ok(Applied::Kept);
        }
        let counted = |v: &FlowValue| v.state == FLOW_ACTIVE;
        if let Some(old) = &old
            && counted(old)
            && (old.real != value.real || !counted(&value))
        {
            self.add_connections(old.real, -1)?;
        }
        if counted(&value)
            && old
                .as_ref()
                .is_none_or(|o| !counted(o) || o.real != value.real)
        {
            self.add_connections(value.real, 1)?;
        }
        // Never move a flow's clock backwards: our own data path may have
        // seen a later packet.
        let mut value = value;
        if let Some(old) = &old
            && old.real == value.real
        {
            value.last_seen_ns = value.last_seen_ns.max(old.last_seen_ns);
        }
        self.conntrack
            .insert(key, value, 0)
            .map_err(err(names::CONNTRACK))?;
        Ok(if old.is_some() {
            Applied::Updated
        } else {
            Applied::Inserted
        })
    }

    /// Racy against the data path's atomic updates, which is acceptable:
    /// flows are applied while this director is backup, when its data path
    /// sees no client traffic.
    fn add_connections(&mut self, slot: u32, delta: i64) -> Result<(), DataplaneError> {
        let now = self
            .real_conns
            .get(&slot, 0)
            .map_err(err(names::REAL_CONNS))?;
        let next = now.saturating_add_signed(delta);
        self.real_conns
            .set(slot, next, 0)
            .map_err(err(names::REAL_CONNS))
    }
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
