//! The numbers behind `/metrics`: the same reading of the maps as
//! `lbctl status`, in the metrics module's shape.

use super::{ControlError, Controller};
use crate::metrics::{RealSample, ServiceSample, Snapshot, XdpSample};

impl Controller {
    /// Counters and states of every service and real, for one scrape.
    pub fn snapshot(&self) -> Result<Snapshot, ControlError> {
        let status = self.status()?;
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
        for service in status.services {
            for real in service.reals {
                snapshot.reals.push(RealSample {
                    service: service.service.clone(),
                    // A real is up unless its check says down or it cannot
                    // be reached (no MAC); removed reals are no longer up.
                    up: !matches!(real.state.as_str(), "down" | "unresolved" | "removed"),
                    real: real.real,
                    packets: real.packets,
                    bytes: real.bytes,
                    connections: real.connections,
                    active: real.active_connections,
                    weight: real.effective_weight,
                    state: real.state,
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
