//! The numbers behind `/metrics`: the same reading of the maps as
//! `lbctl status`, in the metrics module's shape.

use super::{ControlError, Controller};
use crate::metrics::{RealSample, ServiceSample, Snapshot, XdpSample};

impl Controller {
    /// Counters and states of every service and real, for one scrape.
    pub fn snapshot(&self) -> Result<Snapshot, ControlError> {
        let (status, typed_states) = self.status_with_states()?;
        let mut snapshot = Snapshot {
            conntrack_entries: status.conntrack_entries,
            conntrack_capacity: status.conntrack_capacity,
            xdp: status
                .xdp
                .into_iter()
                .map(|x| XdpSample {
                    action: x.action,
                    reason: x.reason,
                    packets: x.packets,
                })
                .collect(),
            ..Snapshot::default()
        };
        for (service, states) in status.services.into_iter().zip(typed_states) {
            for (real, state) in service.reals.into_iter().zip(states) {
                snapshot.reals.push(RealSample {
                    service: service.service.clone(),
                    up: state.is_up(),
                    real: real.real,
                    packets: real.packets,
                    bytes: real.bytes,
                    connections: real.connections,
                    active: real.active_connections,
                    inactive: real.inactive_connections,
                    syn_retransmits: real.syn_retransmits,
                    weight: real.effective_weight,
                    state,
                });
            }
            snapshot.services.push(ServiceSample {
                service: service.service,
                packets: service.packets,
                bytes: service.bytes,
                connections: service.connections,
            });
        }
        Ok(snapshot)
    }
}
