//! Turns service specs into map contents and keeps them consistent: ids,
//! scheduling tables, least-connection sets, retired reals, ageing.
//!
//! Every change is made so the data path never sees a half-built state: new
//! reals are written first, then a new table in a fresh range, then the
//! service value that points at it (one atomic map update), and only then is
//! the old range freed. A real removed from a service keeps its slot, still
//! valid, until no flow refers to it, so established flows finish where they
//! started.

mod alloc;
pub mod model;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    net::SocketAddr,
    time::Duration,
};

use lb_common::{
    LcMember, LcSet, MAX_LC_REALS, NO_REAL, REAL_F_REROUTE, REAL_F_VALID, RealValue, ServiceValue,
};

use crate::{
    ageing::{self, AgeingPlan, Timeouts},
    dataplane::{Dataplane, DataplaneError, META_ACTIVE, META_RETIRED, RealMeta, table_footprint},
    sched::{Backend, lc, maglev, wrr},
};
pub use alloc::{IdAllocator, RangeAllocator};
use model::{RealKey, RealSpec, Scheduler, ServiceAddr, ServiceSpec};

/// Longest weighted round-robin cycle kept in the table; longer cycles are
/// scaled down (see `wrr::sequence`).
pub const MAX_WRR_SEQUENCE: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("no free {what} slot (limit reached)")]
    Exhausted { what: &'static str },
    #[error("service {service}: {scheduler} supports at most {MAX_LC_REALS} reals, {count} given")]
    TooManyLcReals {
        service: ServiceAddr,
        scheduler: Scheduler,
        count: usize,
    },
    #[error("service {service}: duplicate real {real}")]
    DuplicateReal {
        service: ServiceAddr,
        real: SocketAddr,
    },
    #[error("service {service}: {source}")]
    Maglev {
        service: ServiceAddr,
        #[source]
        source: maglev::MaglevError,
    },
    #[error("service {0} is not configured")]
    UnknownService(ServiceAddr),
    #[error("{0}")]
    Inconsistent(String),
}

/// A service as programmed into the maps.
#[derive(Debug)]
struct Programmed {
    spec: ServiceSpec,
    value: ServiceValue,
    /// Real (`IP:PORT`) -> real slot.
    real_ids: BTreeMap<SocketAddr, u32>,
}

/// What one ageing pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AgeingReport {
    pub flows_seen: usize,
    pub expired: usize,
    /// The same for the half-open table.
    pub half_open_seen: usize,
    pub half_open_expired: usize,
    /// Half-open flows left in the connection table (SYN allowance).
    pub half_open_in_main: usize,
    /// Slots of removed reals given back because their last flow ended.
    pub released_reals: usize,
}

/// What `Balancer::adopt` found in pinned maps.
#[derive(Debug, Default)]
pub struct Adopted {
    pub services: usize,
    pub reals: usize,
    pub retired: usize,
    /// MAC each adopted real was forwarding to, by real address: the
    /// restarted daemon uses them until the neighbour table says otherwise,
    /// so no flow loses its real while MACs are re-resolved.
    pub macs: BTreeMap<std::net::IpAddr, [u8; 6]>,
}

/// The userspace owner of a loaded data path.
pub struct Balancer {
    dp: Dataplane,
    services: BTreeMap<ServiceAddr, Programmed>,
    service_ids: IdAllocator,
    real_ids: IdAllocator,
    lc_ids: IdAllocator,
    tables: RangeAllocator,
    /// Removed reals whose slot some flow may still use.
    retired: BTreeMap<RealKey, u32>,
    /// Ids of removed services that flows still carry (they count their
    /// packets under it): reused only once no flow does.
    retired_services: BTreeSet<u32>,
}

impl Balancer {
    #[must_use]
    pub fn new(dp: Dataplane) -> Self {
        let limits = dp.limits();
        Self {
            dp,
            services: BTreeMap::new(),
            service_ids: IdAllocator::new(limits.max_services),
            real_ids: IdAllocator::new(limits.max_reals),
            lc_ids: IdAllocator::new(limits.lc_sets),
            tables: RangeAllocator::new(limits.sched_table_size),
            retired: BTreeMap::new(),
            retired_services: BTreeSet::new(),
        }
    }

    /// Takes over maps a previous `lbd` pinned: services keep their ids
    /// and tables, reals their slots (so every established flow keeps its
    /// real), removed reals stay retired until their flows end. The caller
    /// then applies its configuration, which rebuilds each table in a fresh
    /// range and switches to it atomically.
    pub fn adopt(dp: Dataplane) -> Result<(Self, Adopted), BalancerError> {
        let mut balancer = Self::new(dp);
        let mut adopted = Adopted::default();
        let mut by_key = std::collections::HashMap::new();
        for (key, value) in balancer.dp.services()? {
            let (Some(addr), Some(scheduler)) = (
                ServiceAddr::from_key(&key),
                Scheduler::from_id(value.scheduler),
            ) else {
                // Not something this lbd writes: drop it.
                balancer.dp.remove_service(&key)?;
                continue;
            };
            let claimed = balancer.service_ids.claim(value.id)
                && if scheduler.uses_lc_set() {
                    balancer.lc_ids.claim(value.table_offset)
                } else {
                    balancer
                        .tables
                        .claim(value.table_offset, table_footprint(value.table_len))
                };
            if !claimed {
                // Two services claim the same id or table range: the maps
                // are not what an lbd writes. Refuse rather than risk
                // writing one service's table over another's.
                return Err(BalancerError::Inconsistent(format!(
                    "pinned service {addr} overlaps another (id {}, table {}+{}); \
                     `lbd teardown` starts afresh",
                    value.id, value.table_offset, value.table_len
                )));
            }
            let spec = ServiceSpec {
                fallback: None,
                addr,
                scheduler,
                table_size: if matches!(scheduler, Scheduler::Maglev | Scheduler::SourceHash) {
                    value.table_len
                } else {
                    maglev::DEFAULT_SIZE
                },
                reals: Vec::new(),
            };
            by_key.insert(key, addr);
            balancer.services.insert(
                addr,
                Programmed {
                    spec,
                    value,
                    real_ids: BTreeMap::new(),
                },
            );
            adopted.services += 1;
        }
        for (slot, meta) in balancer.dp.real_metas()? {
            // Any non-free slot may carry flows: keep it.
            balancer.real_ids.claim(slot);
            let Some(ip) = meta.ip() else { continue };
            let sock = SocketAddr::new(ip, meta.port);
            let service = by_key.get(&meta.service).copied();
            match (service, meta.state) {
                (Some(addr), META_ACTIVE) => {
                    let real = balancer.dp.real(slot)?;
                    if real.flags & REAL_F_VALID != 0 {
                        adopted.macs.insert(ip, real.mac);
                    }
                    let programmed = balancer.services.get_mut(&addr).expect("inserted above");
                    programmed.real_ids.insert(sock, slot);
                    adopted.reals += 1;
                }
                _ => {
                    // A real of a removed service: keyed by its old service
                    // (or, if unreadable, by its slot, so keys stay unique).
                    let addr = service
                        .or_else(|| ServiceAddr::from_key(&meta.service))
                        .unwrap_or(ServiceAddr {
                            vip: ip,
                            port: (slot & 0xffff) as u16,
                            protocol: model::Protocol::Tcp,
                        });
                    balancer.retired.insert(RealKey::new(addr, sock), slot);
                    adopted.retired += 1;
                }
            }
        }
        Ok((balancer, adopted))
    }

    /// Services currently programmed.
    pub fn service_addrs(&self) -> impl Iterator<Item = &ServiceAddr> {
        self.services.keys()
    }

    /// The spec a service was last programmed with (adopted services have
    /// no reals in it until the configuration is applied).
    #[must_use]
    pub fn spec(&self, addr: &ServiceAddr) -> Option<&ServiceSpec> {
        self.services.get(addr).map(|p| &p.spec)
    }

    /// Slots of a service's configured reals, by real.
    #[must_use]
    pub fn real_slots(&self, addr: &ServiceAddr) -> Option<&BTreeMap<SocketAddr, u32>> {
        self.services.get(addr).map(|p| &p.real_ids)
    }

    /// Retired reals and their slots.
    #[must_use]
    pub fn retired(&self) -> &BTreeMap<RealKey, u32> {
        &self.retired
    }

    #[must_use]
    pub fn dataplane(&self) -> &Dataplane {
        &self.dp
    }

    pub fn dataplane_mut(&mut self) -> &mut Dataplane {
        &mut self.dp
    }

    /// The service's data-path value (id, table range), if configured.
    #[must_use]
    pub fn service_value(&self, addr: &ServiceAddr) -> Option<ServiceValue> {
        self.services.get(addr).map(|p| p.value)
    }

    /// The slot of a real of a service (also while retired).
    #[must_use]
    pub fn real_id(&self, real: &RealKey) -> Option<u32> {
        self.services
            .get(&real.service)
            .and_then(|p| p.real_ids.get(&real.real).copied())
            .or_else(|| self.retired.get(real).copied())
    }

    /// Creates or updates a service so the maps match `spec`. Flows already
    /// established keep their reals.
    pub fn apply(&mut self, spec: &ServiceSpec) -> Result<(), BalancerError> {
        Self::validate(spec)?;
        let addr = spec.addr;
        // The VIP first: it only makes fragments to it count as ours.
        self.dp.add_vip(&addr.vip_key())?;
        let previous = self.services.remove(&addr);
        let (id, mut real_ids) = match &previous {
            Some(p) => (p.value.id, p.real_ids.clone()),
            None => {
                let id = self
                    .service_ids
                    .allocate()
                    .ok_or(BalancerError::Exhausted { what: "service" })?;
                self.dp.reset_cursor(id)?;
                self.dp.clear_service_stats(id)?;
                (id, BTreeMap::new())
            }
        };
        match self.program(
            spec,
            id,
            &mut real_ids,
            previous.as_ref().map(|p| (&p.spec, p.value)),
        ) {
            Ok(value) => {
                self.services.insert(
                    addr,
                    Programmed {
                        spec: spec.clone(),
                        value,
                        real_ids,
                    },
                );
                Ok(())
            }
            Err(e) => {
                // `program` fails only before switching the service value:
                // the old state is still what the data path sees. Slots given
                // to new reals are retired, so ageing frees them.
                let kept: BTreeSet<&SocketAddr> = previous
                    .as_ref()
                    .map(|p| p.real_ids.keys().collect())
                    .unwrap_or_default();
                let fresh: Vec<(SocketAddr, u32)> = real_ids
                    .iter()
                    .filter(|(real, _)| !kept.contains(real))
                    .map(|(real, slot)| (*real, *slot))
                    .collect();
                for (real, slot) in fresh {
                    self.retire(addr, real, slot);
                }
                match previous {
                    Some(p) => {
                        self.services.insert(addr, p);
                    }
                    None => self.service_ids.free(id),
                }
                Err(e)
            }
        }
    }

    /// Removes a service: new packets to it go to the kernel again. Its real
    /// slots are retired until their flows age out.
    pub fn remove(&mut self, addr: &ServiceAddr) -> Result<(), BalancerError> {
        let programmed = self
            .services
            .remove(addr)
            .ok_or(BalancerError::UnknownService(*addr))?;
        self.dp.remove_service(&addr.key())?;
        self.release_table(&programmed.spec, &programmed.value);
        for (real, id) in programmed.real_ids {
            self.retire(*addr, real, id);
        }
        self.retired_services.insert(programmed.value.id);
        if !self.services.keys().any(|other| other.vip == addr.vip) {
            self.dp.remove_vip(&addr.vip_key())?;
        }
        Ok(())
    }

    fn validate(spec: &ServiceSpec) -> Result<(), BalancerError> {
        let mut seen = HashSet::new();
        for real in spec.reals.iter().chain(&spec.fallback) {
            if !seen.insert(real.socket()) {
                return Err(BalancerError::DuplicateReal {
                    service: spec.addr,
                    real: real.socket(),
                });
            }
        }
        if spec.scheduler.uses_lc_set() && spec.reals.len() > MAX_LC_REALS {
            return Err(BalancerError::TooManyLcReals {
                service: spec.addr,
                scheduler: spec.scheduler,
                count: spec.reals.len(),
            });
        }
        Ok(())
    }

    /// Writes reals, a new table and the service value; frees the old table.
    fn program(
        &mut self,
        spec: &ServiceSpec,
        id: u32,
        real_ids: &mut BTreeMap<SocketAddr, u32>,
        old: Option<(&ServiceSpec, ServiceValue)>,
    ) -> Result<ServiceValue, BalancerError> {
        // 1. Real slots for every real in the spec, and the fallback.
        let mut backends = Vec::new();
        let mut values = Vec::new();
        let mut fallback_real = NO_REAL;
        let wanted: BTreeSet<SocketAddr> = spec
            .reals
            .iter()
            .chain(&spec.fallback)
            .map(RealSpec::socket)
            .collect();
        let fallback = spec.fallback.iter().map(|r| (r, true));
        for (real, is_fallback) in spec.reals.iter().map(|r| (r, false)).chain(fallback) {
            let slot = match real_ids.get(&real.socket()) {
                Some(&slot) => slot,
                None => {
                    let slot = self.adopt_or_allocate_real(spec.addr, real)?;
                    real_ids.insert(real.socket(), slot);
                    slot
                }
            };
            values.push((slot, real_value(real)));
            if is_fallback {
                if real.mac.is_some() {
                    fallback_real = slot;
                }
            } else if real.weight > 0 && real.mac.is_some() && !real.reroute {
                backends.push(Backend {
                    id: slot,
                    name: real.name(),
                    weight: real.weight,
                });
            }
        }
        // 2. A fresh table (or lc set) for the usable ones, then the reals
        // (which say where they sit in an lc set).
        let (offset, len) = self.build_table(spec, &backends)?;
        if spec.scheduler.uses_lc_set() {
            let positions: HashMap<u32, u32> =
                backends.iter().zip(0..).map(|(b, p)| (b.id, p)).collect();
            for (slot, value) in &mut values {
                if let Some(position) = positions.get(slot) {
                    value.lc_slot = lb_common::lc_slot(offset, *position);
                }
            }
        }
        for (slot, value) in &values {
            if let Err(e) = self.dp.set_real(*slot, value) {
                self.release_table(
                    spec,
                    &ServiceValue {
                        table_offset: offset,
                        table_len: len,
                        ..ServiceValue::default()
                    },
                );
                return Err(e.into());
            }
        }
        let value = ServiceValue {
            id,
            scheduler: spec.scheduler.id(),
            table_offset: offset,
            table_len: len,
            fallback_real,
            flags: 0,
        };
        // 3. Switch atomically, then free what the old value pointed at.
        // From here on nothing may fail: the switch is done.
        if let Err(e) = self.dp.set_service(&spec.addr.key(), &value) {
            self.release_table(spec, &value);
            return Err(e.into());
        }
        if let Some((old_spec, old_value)) = old {
            self.release_table(old_spec, &old_value);
        }
        // 4. Reals no longer in the spec keep their slot until their flows end.
        let removed: Vec<SocketAddr> = real_ids
            .keys()
            .filter(|r| !wanted.contains(*r))
            .copied()
            .collect();
        for real in removed {
            if let Some(slot) = real_ids.remove(&real) {
                self.retire(spec.addr, real, slot);
            }
        }
        Ok(value)
    }

    /// A removed real that comes back gets its old slot (its flows and
    /// counters continue); otherwise a fresh, zeroed slot. Either way the
    /// slot's owner is recorded (only here: it changes nowhere else).
    fn adopt_or_allocate_real(
        &mut self,
        service: ServiceAddr,
        real: &RealSpec,
    ) -> Result<u32, BalancerError> {
        let slot = match self.retired.remove(&RealKey::new(service, real.socket())) {
            Some(slot) => slot,
            None => {
                let slot = self
                    .real_ids
                    .allocate()
                    .ok_or(BalancerError::Exhausted { what: "real" })?;
                self.dp.clear_real_stats(slot)?;
                self.dp.set_real_counts(slot, 0, 0)?;
                slot
            }
        };
        self.dp.set_real_meta(
            slot,
            &RealMeta::new(service.key(), real.addr, real.port, META_ACTIVE),
        )?;
        Ok(slot)
    }

    /// Keeps a removed real's slot (still forwarding) until its flows end.
    /// Cannot fail: it runs after a service switched to its new table. A
    /// metadata write that fails only means a restarted lbd sees the slot as
    /// active in its old service, and re-retires it when applying the config.
    fn retire(&mut self, service: ServiceAddr, real: SocketAddr, slot: u32) {
        let meta = RealMeta::new(service.key(), real.ip(), real.port(), META_RETIRED);
        if let Err(e) = self.dp.set_real_meta(slot, &meta) {
            tracing::warn!(real = %real, error = %e, "recording a retired real");
        }
        self.retired.insert(RealKey::new(service, real), slot);
    }

    fn build_table(
        &mut self,
        spec: &ServiceSpec,
        backends: &[Backend],
    ) -> Result<(u32, u32), BalancerError> {
        if spec.scheduler.uses_lc_set() {
            let index = self.lc_ids.allocate().ok_or(BalancerError::Exhausted {
                what: "least-connection set",
            })?;
            let weighted = spec.scheduler == Scheduler::WeightedLeastConnection;
            let mut set = LcSet {
                count: backends.len() as u32,
                weighted: u32::from(weighted),
                ..LcSet::default()
            };
            for (member, backend) in set.members.iter_mut().zip(backends) {
                *member = LcMember {
                    real: backend.id,
                    weight: backend.weight,
                };
            }
            let written = self
                .dp
                .set_lc_set(index, &set)
                .and_then(|()| self.write_lc_hints(index, &set));
            if let Err(e) = written {
                self.lc_ids.free(index);
                return Err(e.into());
            }
            return Ok((index, set.count));
        }
        let ids = match spec.scheduler {
            Scheduler::RoundRobin => wrr::rr_sequence(backends),
            Scheduler::WeightedRoundRobin => wrr::sequence(backends, MAX_WRR_SEQUENCE),
            Scheduler::Maglev | Scheduler::SourceHash => {
                maglev::build_table(backends, spec.table_size).map_err(|source| {
                    BalancerError::Maglev {
                        service: spec.addr,
                        source,
                    }
                })?
            }
            Scheduler::LeastConnection | Scheduler::WeightedLeastConnection => {
                unreachable!("handled above")
            }
        };
        let len = ids.len() as u32;
        let footprint = table_footprint(len);
        let offset = self
            .tables
            .allocate(footprint)
            .ok_or(BalancerError::Exhausted {
                what: "scheduling table",
            })?;
        if let Err(e) = self.dp.write_table(offset, &ids) {
            self.tables.free(offset, footprint);
            return Err(e.into());
        }
        Ok((offset, len))
    }

    /// Writes the group hints of `LC_SETS[index]` (holding `set`) from the
    /// members' current loads.
    fn write_lc_hints(&mut self, index: u32, set: &LcSet) -> Result<(), DataplaneError> {
        let count = (set.count as usize).min(MAX_LC_REALS);
        let mut members = Vec::with_capacity(count);
        for member in &set.members[..count] {
            members.push((self.dp.real_load(member.real)?, member.weight));
        }
        let hints = lc::group_hints(&members, set.weighted != 0);
        self.dp.set_lc_hints(index, &hints)
    }

    /// Recomputes every least-connection set's group hints from the current
    /// loads: after userspace wrote counts itself (ageing repairs them), or
    /// when two CPUs racing on a group left a hint behind.
    pub fn refresh_lc_hints(&mut self) -> Result<(), BalancerError> {
        let sets: Vec<u32> = self
            .services
            .values()
            .filter(|p| p.spec.scheduler.uses_lc_set())
            .map(|p| p.value.table_offset)
            .collect();
        for index in sets {
            let set = self.dp.lc_set(index)?;
            self.write_lc_hints(index, &set)?;
        }
        Ok(())
    }

    fn release_table(&mut self, spec: &ServiceSpec, value: &ServiceValue) {
        if spec.scheduler.uses_lc_set() {
            self.lc_ids.free(value.table_offset);
        } else {
            self.tables
                .free(value.table_offset, table_footprint(value.table_len));
        }
    }

    /// One ageing pass: removes idle flows, repairs the least-connection
    /// counts from what is left, and releases slots of removed reals that no
    /// flow uses any more. The daemon runs the table walk on a thread of its
    /// own ([`Balancer::ageing_context`], [`ageing::plan`] and
    /// [`Balancer::finish_ageing`]); this is the same pass in one call.
    pub fn age(&mut self, now_ns: u64, timeouts: &Timeouts) -> Result<AgeingReport, BalancerError> {
        let context = self.ageing_context();
        let plan = ageing::plan_tables(
            now_ns,
            self.dp.flows()?,
            self.dp.half_open_flows()?,
            timeouts,
        );
        for key in &plan.expired {
            self.dp.remove_flow(key)?;
        }
        for key in &plan.expired_half_open {
            self.dp.remove_half_open_flow(key)?;
        }
        self.finish_ageing(&plan, &context)
    }

    /// What a pass started now must know when it finishes: the slots and
    /// ids that existed when the table was read. Only for those does the
    /// table's content say anything (a real added since has flows the read
    /// did not see).
    #[must_use]
    pub fn ageing_context(&self) -> AgeingContext {
        AgeingContext {
            known_reals: self
                .services
                .values()
                .flat_map(|p| p.real_ids.values().copied())
                .chain(self.retired.values().copied())
                .collect(),
            retired_reals: self.retired.values().copied().collect(),
            retired_services: self.retired_services.clone(),
            // Unreadable (an object without the maps, A/B benchmarks only):
            // the pass leaves both alone.
            syn_allowance: self.dp.syn_allowance().ok(),
            half_open_inserts: self.dp.half_open_inserts().ok(),
        }
    }

    /// The bookkeeping half of an ageing pass whose table walk (`plan`, with
    /// its expired flows already deleted) began with `context`: repaired
    /// counts (active and inactive), released slots of removed reals,
    /// released service ids.
    pub fn finish_ageing(
        &mut self,
        plan: &AgeingPlan,
        context: &AgeingContext,
    ) -> Result<AgeingReport, BalancerError> {
        let known: Vec<u32> = self
            .services
            .values()
            .flat_map(|p| p.real_ids.values().copied())
            .chain(self.retired.values().copied())
            .filter(|slot| context.known_reals.contains(slot))
            .collect();
        let inactive = ageing::repaired_inactive_counts(plan, known.iter().copied());
        for ((real, active), (_, inactive)) in ageing::repaired_counts(plan, known)
            .into_iter()
            .zip(inactive)
        {
            self.dp.set_real_counts(real, active, inactive)?;
        }
        // A real retired after the read may have flows the read missed;
        // one retired before it gets no new flows, so the read is complete.
        let released: Vec<RealKey> = self
            .retired
            .iter()
            .filter(|(_, slot)| {
                context.retired_reals.contains(slot) && !plan.reals_in_use.contains(slot)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in &released {
            if let Some(slot) = self.retired.remove(key) {
                self.dp.set_real(slot, &RealValue::default())?;
                self.dp.set_real_meta(slot, &RealMeta::default())?;
                self.real_ids.free(slot);
            }
        }
        self.release_service_ids(&plan.services_in_use, &context.retired_services);
        self.refresh_lc_hints()?;
        if let Some(before) = context.syn_allowance {
            // What the table held when it was read, less what SYNs took
            // from the allowance while it was being read.
            let spent_since = before.saturating_sub(self.dp.syn_allowance()?);
            let allowance = ageing::syn_allowance(
                self.dp.limits().conntrack_size,
                plan.flows_seen - plan.expired.len(),
                plan.half_open_in_main,
            );
            self.dp
                .set_syn_allowance(allowance.saturating_sub(spent_since))?;
        }
        // No own half-open flow waits in `HALF_OPEN` as of the count read
        // before the walk: unless the data path put one there since, SYNs
        // may go into the connection table again.
        if let Some(inserts) = context.half_open_inserts
            && plan.own_half_open_waiting == 0
        {
            self.dp.set_half_open_empty_at(Some(inserts))?;
        }
        Ok(AgeingReport {
            flows_seen: plan.flows_seen,
            expired: plan.expired.len(),
            half_open_seen: plan.half_open_seen,
            half_open_expired: plan.expired_half_open.len(),
            half_open_in_main: plan.half_open_in_main,
            released_reals: released.len(),
        })
    }
}

/// The slots and ids an ageing pass may decide about (see
/// [`Balancer::ageing_context`]).
#[derive(Debug, Clone, Default)]
pub struct AgeingContext {
    known_reals: HashSet<u32>,
    retired_reals: HashSet<u32>,
    retired_services: BTreeSet<u32>,
    /// `SYN_ALLOWANCE` (all CPUs) when the pass began.
    syn_allowance: Option<u64>,
    /// `HALF_OPEN_GEN`'s insert count when the pass began.
    half_open_inserts: Option<u64>,
}

impl Balancer {
    /// Frees the ids of removed services that no flow carries any more
    /// (of those already removed when the table was read: `retired_then`),
    /// and keeps (claims) ids that flows carry but nothing owns, e.g. of a
    /// service removed while an earlier lbd ran.
    fn release_service_ids(&mut self, in_use: &BTreeSet<u32>, retired_then: &BTreeSet<u32>) {
        let live: BTreeSet<u32> = self.services.values().map(|p| p.value.id).collect();
        for id in in_use.difference(&live) {
            if !self.retired_services.contains(id) && self.service_ids.claim(*id) {
                self.retired_services.insert(*id);
            }
        }
        let done: Vec<u32> = self
            .retired_services
            .iter()
            .filter(|id| retired_then.contains(id) && !in_use.contains(id))
            .copied()
            .collect();
        for id in done {
            self.retired_services.remove(&id);
            self.service_ids.free(id);
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock the data path stamps flows
/// with (`bpf_ktime_get_coarse_ns`).
#[must_use]
pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32).as_nanos() as u64
}

fn real_value(real: &RealSpec) -> RealValue {
    match real.mac {
        Some(mac) => RealValue {
            mac,
            flags: if real.reroute {
                REAL_F_VALID | REAL_F_REROUTE
            } else {
                REAL_F_VALID
            },
            ..RealValue::default()
        },
        None => RealValue::default(),
    }
}
