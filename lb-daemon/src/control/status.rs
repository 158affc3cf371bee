//! Read-only views: `lbctl status` and `lbctl flows`.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use lb_common::{FLOW_ACTIVE, FLOW_F_LEARNED, FLOW_HALF_OPEN, FlowKey, FlowValue, TrafficStats};

use super::{ControlError, Controller, health::RealHealth};
use crate::{
    admin::{
        FlowEntry, RealState, RealStatus, ServiceStatus, Status, XdpCounter, parse_real,
        parse_service,
    },
    ageing::Timeouts,
    balancer::{
        model::{Protocol, RealKey, ServiceAddr, ip_from_words},
        monotonic_now_ns,
    },
    dataplane::DataplaneError,
};

impl Controller {
    /// Services and reals with weights, states and counters, in config order.
    pub fn status(&self) -> Result<Status, ControlError> {
        self.status_with_states().map(|(status, _)| status)
    }

    /// [`Controller::status`] and each real's state, typed: `states[i][j]`
    /// is that of `services[i].reals[j]` (the metrics need the type, the
    /// wire only the name).
    pub(super) fn status_with_states(&self) -> Result<(Status, Vec<Vec<RealState>>), ControlError> {
        let dp = self.lb.dataplane();
        let dp_err = |e: DataplaneError| ControlError::Balancer(e.into());
        let mut services = Vec::new();
        let mut typed_states = Vec::new();
        for service in &self.config.services {
            let stats = match self.lb.service_value(&service.addr) {
                Some(value) => dp.service_stats(value.id).map_err(dp_err)?,
                None => TrafficStats::default(),
            };
            let mut reals = Vec::new();
            let mut real_states = Vec::new();
            let spec = self.spec(service);
            for (real, programmed) in service.reals.iter().zip(&spec.reals) {
                let key = RealKey::new(service.addr, real.socket());
                let mac = self.mac_of(service, real.addr);
                let health = self.real_health(&key);
                // In the order `RealState` lists its variants.
                let real_state = if self.is_draining(&key) {
                    RealState::Draining
                } else if health.is_some_and(RealHealth::out) {
                    RealState::Down
                } else if mac.is_none() {
                    RealState::Unresolved
                } else if real.backup && programmed.weight > 0 {
                    RealState::BackupActive
                } else if real.backup {
                    RealState::BackupIdle
                } else if real.weight == 0 {
                    RealState::Drained
                } else {
                    RealState::Up
                };
                real_states.push(real_state);
                let slot = self.lb.real_id(&key);
                let mut view = self.real_status(real.name(), real.weight, real_state, mac, slot)?;
                view.effective_weight = programmed.weight;
                view.health_reason = health.and_then(|h| h.reason.clone());
                view.slow_start = real_state == RealState::Up
                    && service.slow_start.is_some_and(|ramp| {
                        health
                            .and_then(|h| h.up_since)
                            .is_some_and(|t| t.elapsed() < ramp)
                    });
                reals.push(view);
            }
            // Ordered by their text, as `lbctl status` always listed them.
            let mut retired: Vec<(String, u32)> = self
                .lb
                .retired()
                .iter()
                .filter(|(key, _)| key.service == service.addr)
                .map(|(key, slot)| (key.real.to_string(), *slot))
                .collect();
            retired.sort();
            for (name, slot) in retired {
                reals.push(self.real_status(name, 0, RealState::Removed, None, Some(slot))?);
                real_states.push(RealState::Removed);
            }
            typed_states.push(real_states);
            services.push(ServiceStatus {
                service: service.addr.to_string(),
                scheduler: service.scheduler.to_string(),
                packets: stats.packets,
                bytes: stats.bytes,
                connections: stats.new_flows,
                reals,
            });
        }
        let xdp = dp
            .reason_counts()
            .map_err(dp_err)?
            .into_iter()
            .filter(|(_, packets)| *packets > 0)
            .map(|(reason, packets)| XdpCounter {
                action: reason.action().name().into(),
                reason: reason.name().into(),
                packets,
            })
            .collect();
        let status = Status {
            xdp,
            services,
            conntrack_entries: match self.flow_count {
                Some(count) => count,
                None => dp.flows().map_err(dp_err)?.len() as u64,
            },
            conntrack_capacity: u64::from(dp.limits().conntrack_size),
            half_open_entries: match self.half_open_count {
                Some(count) => count,
                None => dp.half_open_flows().map_err(dp_err)?.len() as u64,
            },
            half_open_capacity: u64::from(dp.limits().half_open_size()),
            ageing_passes: self.ageing_passes,
            conntrack_half_open: self.conntrack_half_open,
        };
        Ok((status, typed_states))
    }

    fn real_status(
        &self,
        real: String,
        weight: u32,
        state: RealState,
        mac: Option<[u8; 6]>,
        slot: Option<u32>,
    ) -> Result<RealStatus, ControlError> {
        let dp = self.lb.dataplane();
        let dp_err = |e: DataplaneError| ControlError::Balancer(e.into());
        let (active, inactive, traffic, syn_retransmits) = match slot {
            Some(slot) => (
                dp.real_connections(slot).map_err(dp_err)?,
                dp.real_inactive(slot).map_err(dp_err)?,
                dp.real_stats(slot).map_err(dp_err)?,
                dp.real_syn_retransmits(slot).map_err(dp_err)?,
            ),
            None => (0, 0, TrafficStats::default(), 0),
        };
        Ok(RealStatus {
            real,
            weight,
            effective_weight: 0,
            health_reason: None,
            slow_start: false,
            state: state.as_str().into(),
            mac: mac.map(crate::config::format_mac),
            active_connections: active,
            inactive_connections: inactive,
            syn_retransmits,
            connections: traffic.new_flows,
            packets: traffic.packets,
            bytes: traffic.bytes,
        })
    }

    /// Live flows, optionally only those of a service and/or a real
    /// (`IP` matches every port, `IP:PORT` one real), read here and now.
    pub fn flows(
        &self,
        service: Option<&str>,
        real: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<FlowEntry>, ControlError> {
        let view = self.flow_view(service, real, limit)?;
        let dp = self.lb.dataplane();
        let dp_err = |e: DataplaneError| ControlError::Balancer(e.into());
        let mut flows = dp.flows().map_err(dp_err)?;
        flows.extend(dp.half_open_flows().map_err(dp_err)?);
        Ok(view.entries(flows, monotonic_now_ns()))
    }

    /// What turns the connection table into `lbctl flows` entries, without
    /// the table: the daemon reads the table on a thread of its own.
    pub fn flow_view(
        &self,
        service: Option<&str>,
        real: Option<&str>,
        limit: Option<usize>,
    ) -> Result<FlowView, ControlError> {
        let service = service
            .map(parse_service)
            .transpose()
            .map_err(ControlError::Argument)?;
        let real = real
            .map(|r| {
                // A bare IP matches the real on any port.
                parse_real(r, 0).map(|(ip, port)| (ip, (port != 0).then_some(port)))
            })
            .transpose()
            .map_err(ControlError::Argument)?;
        let mut owners: HashMap<u32, SocketAddr> = HashMap::new();
        for addr in self.lb.service_addrs() {
            for (real, slot) in self.lb.real_slots(addr).into_iter().flatten() {
                owners.insert(*slot, *real);
            }
        }
        for (key, slot) in self.lb.retired() {
            owners.insert(*slot, key.real);
        }
        Ok(FlowView {
            service,
            real,
            limit,
            owners,
            timeouts: self.config.timeouts.ageing(),
        })
    }
}

/// The filters, real names and timeouts `lbctl flows` needs (see
/// [`Controller::flow_view`]).
pub struct FlowView {
    service: Option<ServiceAddr>,
    real: Option<(IpAddr, Option<u16>)>,
    limit: Option<usize>,
    /// Real slot -> real.
    owners: HashMap<u32, SocketAddr>,
    timeouts: Timeouts,
}

impl FlowView {
    /// The entries of `flows` (of either table) that pass the filters,
    /// sorted, at most `limit`; idle times as of `now_ns`.
    #[must_use]
    pub fn entries(&self, flows: Vec<(FlowKey, FlowValue)>, now_ns: u64) -> Vec<FlowEntry> {
        let mut entries = Vec::new();
        for (key, value) in flows {
            let (Some(src), Some(dst)) = (
                ip_from_words(&key.src, key.family),
                ip_from_words(&key.dst, key.family),
            ) else {
                continue;
            };
            let protocol = if key.proto == lb_common::PROTO_UDP {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            let flow_service = ServiceAddr {
                vip: dst,
                port: u16::from_be(key.dst_port),
                protocol,
            };
            if self.service.is_some_and(|s| s != flow_service) {
                continue;
            }
            let owner = self.owners.get(&value.real).copied();
            if let Some((ip, port)) = self.real {
                // A flow of an unknown slot matches no real.
                let Some(sock) = owner else {
                    continue;
                };
                if sock.ip() != ip || port.is_some_and(|p| p != sock.port()) {
                    continue;
                }
            }
            let idle = Duration::from_nanos(now_ns.saturating_sub(value.last_seen_ns));
            let timeout = self.timeouts.for_flow(key.proto, value.state);
            entries.push(FlowEntry {
                protocol: protocol.to_string(),
                client: SocketAddr::new(src, u16::from_be(key.src_port)).to_string(),
                service: flow_service.to_string(),
                real: owner.map_or_else(|| "?".to_owned(), |r| r.to_string()),
                state: match value.state {
                    FLOW_ACTIVE => "established",
                    FLOW_HALF_OPEN => "half-open",
                    _ => "closing",
                }
                .into(),
                idle_seconds: idle.as_secs(),
                expires_in_seconds: timeout.saturating_sub(idle).as_secs(),
                learned: value.flags & FLOW_F_LEARNED != 0,
            });
        }
        entries.sort_by(|a, b| {
            (&a.service, &a.real, &a.client).cmp(&(&b.service, &b.real, &b.client))
        });
        if let Some(limit) = self.limit.filter(|l| *l > 0) {
            entries.truncate(limit);
        }
        entries
    }
}
