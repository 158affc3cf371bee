//! `lbctl trace`: where a 5-tuple goes now, and why.

use std::net::SocketAddr;

use lb_common::{
    FLOW_ACTIVE, FLOW_HALF_OPEN, FlowKey, PROTO_TCP, REAL_F_REROUTE, REAL_F_VALID, ServiceValue,
    flow_hash, source_hash,
};

use super::{ControlError, Controller};
use crate::{
    admin::{TraceResult, parse_service},
    balancer::model::{Protocol, RealKey, Scheduler, ServiceAddr, addr_words},
    config::ServiceConfig,
    dataplane::DataplaneError,
    sched::lc::{LcCandidate, pick},
};

impl Controller {
    pub fn trace(
        &self,
        protocol: &str,
        client: &str,
        service: &str,
    ) -> Result<TraceResult, ControlError> {
        let protocol = match protocol {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => {
                return Err(ControlError::Argument(format!(
                    "protocol `{other}`: expected tcp or udp"
                )));
            }
        };
        let client: SocketAddr = client.parse().map_err(|_| {
            ControlError::Argument(format!(
                "client `{client}`: expected IP:PORT (IPv6 as [IP]:PORT)"
            ))
        })?;
        let mut addr = parse_service(service).map_err(ControlError::Argument)?;
        addr.protocol = protocol;
        if client.is_ipv4() != addr.vip.is_ipv4() {
            return Err(ControlError::Argument(format!(
                "client {client} and service {addr} are of different address families"
            )));
        }
        let (src, family) = addr_words(client.ip());
        let (dst, _) = addr_words(addr.vip);
        let key = FlowKey {
            src,
            dst,
            src_port: client.port().to_be(),
            dst_port: addr.port.to_be(),
            proto: protocol.number(),
            family,
            _pad: [0; 2],
        };
        let dp = self.lb.dataplane();
        let dp_err = |e: DataplaneError| ControlError::Balancer(e.into());
        let name_of = |slot: u32| self.real_name(&addr, slot);
        let result = |real: Option<String>, reason: String| TraceResult {
            service: addr.to_string(),
            real,
            reason,
        };
        let known = match dp.flow(&key).map_err(dp_err)? {
            Some(flow) => Some(flow),
            None if key.proto == PROTO_TCP => dp.half_open_flow(&key).map_err(dp_err)?,
            None => None,
        };
        if let Some(flow) = known {
            let real = dp.real(flow.real).map_err(dp_err)?;
            let name = name_of(flow.real);
            let state = match flow.state {
                FLOW_ACTIVE => "established",
                FLOW_HALF_OPEN => "half-open: SYN seen, handshake not finished",
                _ => "closing (a new SYN starts a new connection)",
            };
            if real.flags & REAL_F_VALID == 0 || real.flags & REAL_F_REROUTE != 0 {
                return Ok(result(
                    None,
                    format!(
                        "known flow ({state}) on {name}, which is out of rotation: \
                         its next packet is scheduled again"
                    ),
                ));
            }
            return Ok(result(
                Some(name.clone()),
                format!("known flow ({state}): stays on {name} until it ends or idles out"),
            ));
        }
        let (Some(value), Some(service)) =
            (self.lb.service_value(&addr), self.config.service(&addr))
        else {
            return Ok(result(
                None,
                format!("no service {addr}: the packet goes to the kernel (XDP_PASS)"),
            ));
        };
        if value.table_len == 0 {
            return Ok(result(
                None,
                "no real can take new connections (no MAC or weight 0): dropped".into(),
            ));
        }
        self.explain_new_flow(&addr, &key, value, service)
    }

    /// Which real the scheduler would give a new flow now.
    fn explain_new_flow(
        &self,
        addr: &ServiceAddr,
        key: &FlowKey,
        value: ServiceValue,
        service: &ServiceConfig,
    ) -> Result<TraceResult, ControlError> {
        let dp = self.lb.dataplane();
        let dp_err = |e: DataplaneError| ControlError::Balancer(e.into());
        let name_of = |slot: u32| self.real_name(addr, slot);
        let result = |real: Option<String>, reason: String| TraceResult {
            service: addr.to_string(),
            real,
            reason,
        };
        let scheduler = service.scheduler;
        match scheduler {
            Scheduler::Maglev | Scheduler::SourceHash => {
                let hash = if scheduler == Scheduler::Maglev {
                    flow_hash(key)
                } else {
                    source_hash(&key.src)
                };
                let index = hash % value.table_len;
                let slot = dp
                    .read_table(value.table_offset + index, 1)
                    .map_err(dp_err)?[0];
                let name = name_of(slot);
                Ok(result(
                    Some(name.clone()),
                    format!(
                        "new connection: {scheduler} hash {hash:#010x} -> entry {index} of {} -> {name}",
                        value.table_len
                    ),
                ))
            }
            Scheduler::RoundRobin | Scheduler::WeightedRoundRobin => {
                let table = dp
                    .read_table(value.table_offset, value.table_len)
                    .map_err(dp_err)?;
                let mut order: Vec<String> = Vec::new();
                for slot in table.iter().take(16) {
                    order.push(name_of(*slot));
                }
                Ok(result(
                    None,
                    format!(
                        "new connection: {scheduler} takes the next entry of a {}-entry cycle \
                         (positions are per CPU): {}{}",
                        value.table_len,
                        order.join(", "),
                        if table.len() > 16 { ", ..." } else { "" }
                    ),
                ))
            }
            Scheduler::LeastConnection | Scheduler::WeightedLeastConnection => {
                let spec = self.spec(service);
                let mut candidates = Vec::new();
                for real in spec
                    .reals
                    .iter()
                    .filter(|r| r.weight > 0 && r.mac.is_some())
                {
                    if let Some(slot) = self.lb.real_id(&RealKey::new(*addr, real.socket())) {
                        candidates.push(LcCandidate {
                            id: slot,
                            weight: real.weight,
                            active: dp.real_connections(slot).map_err(dp_err)?,
                            inactive: dp.real_inactive(slot).map_err(dp_err)?,
                        });
                    }
                }
                let weighted = scheduler == Scheduler::WeightedLeastConnection;
                let Some(best) = pick(&candidates, 0, weighted) else {
                    return Ok(result(
                        None,
                        "no real can take new connections: dropped".into(),
                    ));
                };
                let chosen = &candidates[best];
                let name = name_of(chosen.id);
                Ok(result(
                    Some(name.clone()),
                    format!(
                        "new connection: {scheduler} picks the real with the least load \
                         (active x 256 + inactive){}: {name} ({} active, {} inactive, weight {}; \
                         ties rotate per CPU)",
                        if weighted { " per weight" } else { "" },
                        chosen.active,
                        chosen.inactive,
                        chosen.weight
                    ),
                ))
            }
        }
    }

    /// The name of the real in a slot of a service (also once removed).
    fn real_name(&self, addr: &ServiceAddr, slot: u32) -> String {
        self.lb
            .real_slots(addr)
            .and_then(|reals| reals.iter().find(|(_, s)| **s == slot))
            .map(|(real, _)| real.to_string())
            .or_else(|| {
                self.lb
                    .retired()
                    .iter()
                    .find(|(_, s)| **s == slot)
                    .map(|(key, _)| format!("{} (removed)", key.real))
            })
            .unwrap_or_else(|| format!("slot {slot}"))
    }
}
