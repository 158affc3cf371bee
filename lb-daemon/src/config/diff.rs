//! What changed between two configs (SIGHUP); each section names its own
//! restart-only keys.

use std::collections::HashSet;

use super::file::Config;
use super::service::{ServiceConfig, same_service};
use super::{ecmp, vrrp};
use crate::balancer::model::ServiceAddr;

/// The difference between the running config and a newly read one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Services only in the new config, in its order.
    pub added: Vec<ServiceConfig>,
    /// Services only in the old config, in its order.
    pub removed: Vec<ServiceAddr>,
    /// The new version of services in both whose settings (scheduler, table
    /// size, check, health options) or reals (their checks included) differ,
    /// in the new config's order. Reals are compared as a set
    /// keyed by (address, port): reordering them is not a change.
    pub changed: Vec<ServiceConfig>,
    /// How many services are in both and the same.
    pub unchanged: usize,
    /// Any of `[timeouts]` differs (ageing interval included).
    pub timeouts_changed: bool,
    /// `dataplane.log_events` differs: the new value.
    pub event_log: Option<bool>,
    /// Dotted names of settings that differ but only take effect after a
    /// restart.
    pub restart_required: Vec<String>,
}

impl ConfigDiff {
    /// Nothing to apply and nothing that needs a restart.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.timeouts_changed
            && self.event_log.is_none()
            && self.restart_required.is_empty()
    }
}

/// Compares `old` (running) with `new` (just read).
#[must_use]
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut out = ConfigDiff::default();
    for service in &new.services {
        match old.service(&service.addr) {
            None => out.added.push(service.clone()),
            Some(before) if same_service(before, service) => out.unchanged += 1,
            Some(_) => out.changed.push(service.clone()),
        }
    }
    let kept: HashSet<ServiceAddr> = new.services.iter().map(|s| s.addr).collect();
    out.removed = old
        .services
        .iter()
        .map(|s| s.addr)
        .filter(|addr| !kept.contains(addr))
        .collect();
    out.timeouts_changed = old.timeouts != new.timeouts;
    out.event_log =
        (old.dataplane.log_events != new.dataplane.log_events).then_some(new.dataplane.log_events);
    out.restart_required = [
        old.daemon.restart_required(&new.daemon),
        old.dataplane.restart_required(&new.dataplane),
        vrrp::restart_required(old.vrrp.as_ref(), new.vrrp.as_ref()),
        ecmp::restart_required(old.ecmp.as_ref(), new.ecmp.as_ref()),
    ]
    .concat()
    .into_iter()
    .map(str::to_owned)
    .collect();
    out
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::*;
    use crate::balancer::model::{Protocol, Scheduler};
    use crate::config::{DampingConfig, FallbackConfig, OnDown, RealConfig, XdpModeConfig};
    use crate::health::spec::{CheckKind, CheckSpec};

    fn addr(vip: &str, port: u16) -> ServiceAddr {
        ServiceAddr {
            vip: vip.parse().unwrap(),
            port,
            protocol: Protocol::Tcp,
        }
    }

    fn real(ip: &str, weight: u32) -> RealConfig {
        RealConfig {
            weight,
            ..RealConfig::new(ip.parse::<IpAddr>().unwrap(), 80)
        }
    }

    fn service(vip: &str, reals: &[(&str, u32)]) -> ServiceConfig {
        ServiceConfig {
            reals: reals.iter().map(|(ip, w)| real(ip, *w)).collect(),
            ..ServiceConfig::new(addr(vip, 80))
        }
    }

    fn config(services: Vec<ServiceConfig>) -> Config {
        Config {
            services,
            ..Config::default()
        }
    }

    #[test]
    fn identical_configs_are_empty() {
        let c = config(vec![service("192.0.2.1", &[("10.0.0.1", 1)])]);
        let d = diff(&c, &c.clone());
        assert!(d.is_empty());
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn added_removed_changed_unchanged() {
        let old = config(vec![
            service("192.0.2.1", &[("10.0.0.1", 1)]),
            service("192.0.2.2", &[("10.0.0.2", 1)]),
            service("192.0.2.3", &[("10.0.0.3", 1)]),
        ]);
        let new = config(vec![
            service("192.0.2.4", &[]),
            service("192.0.2.3", &[("10.0.0.3", 2)]),
            service("192.0.2.1", &[("10.0.0.1", 1)]),
        ]);
        let d = diff(&old, &new);
        assert_eq!(d.added, vec![new.services[0].clone()]);
        assert_eq!(d.removed, vec![addr("192.0.2.2", 80)]);
        assert_eq!(d.changed, vec![new.services[1].clone()]);
        assert_eq!(d.unchanged, 1);
        assert!(!d.timeouts_changed);
        assert!(d.restart_required.is_empty());
        assert!(!d.is_empty());
    }

    #[test]
    fn protocol_is_part_of_the_identity() {
        let old = config(vec![service("192.0.2.1", &[])]);
        let mut udp = service("192.0.2.1", &[]);
        udp.addr.protocol = Protocol::Udp;
        let d = diff(&old, &config(vec![udp.clone()]));
        assert_eq!(d.added, vec![udp]);
        assert_eq!(d.removed, vec![addr("192.0.2.1", 80)]);
    }

    #[test]
    fn reordered_reals_are_unchanged() {
        let old = config(vec![service(
            "192.0.2.1",
            &[("10.0.0.1", 1), ("10.0.0.2", 3)],
        )]);
        let new = config(vec![service(
            "192.0.2.1",
            &[("10.0.0.2", 3), ("10.0.0.1", 1)],
        )]);
        let d = diff(&old, &new);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn every_service_field_is_a_change() {
        let base = service("192.0.2.1", &[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        let mut variants = Vec::new();
        let mut s = base.clone();
        s.scheduler = Scheduler::Maglev;
        variants.push(s);
        let mut s = base.clone();
        s.table_size = 257;
        variants.push(s);
        let mut s = base.clone();
        s.reals[1].weight = 0;
        variants.push(s);
        let mut s = base.clone();
        s.reals[0].backup = true;
        variants.push(s);
        let mut s = base.clone();
        s.reals[0].mac = Some([2, 0, 0, 0, 0, 1]);
        variants.push(s);
        let mut s = base.clone();
        s.reals.pop();
        variants.push(s);
        let mut s = base.clone();
        s.reals.push(real("10.0.0.3", 1));
        variants.push(s);
        let mut s = base.clone();
        s.reals[1] = real("10.0.0.3", 1);
        variants.push(s);
        let mut s = base.clone();
        s.check.rise = 3;
        variants.push(s);
        let mut s = base.clone();
        s.check.kind = CheckKind::None;
        variants.push(s);
        let mut s = base.clone();
        s.reals[0].check = Some(CheckSpec {
            port: Some(8080),
            ..CheckSpec::default()
        });
        variants.push(s);
        let mut s = base.clone();
        s.on_down = OnDown::Keep;
        variants.push(s);
        let mut s = base.clone();
        s.min_primaries = 2;
        variants.push(s);
        let mut s = base.clone();
        s.slow_start = Some(Duration::from_secs(30));
        variants.push(s);
        let mut s = base.clone();
        s.fallback = Some(FallbackConfig {
            addr: "10.0.0.99".parse().unwrap(),
            mac: None,
        });
        variants.push(s);
        let mut s = base.clone();
        s.drain_timeout = Duration::from_secs(1);
        variants.push(s);
        let mut s = base.clone();
        s.damping = Some(DampingConfig::default());
        variants.push(s);
        for variant in variants {
            let d = diff(&config(vec![base.clone()]), &config(vec![variant.clone()]));
            assert_eq!(d.changed, vec![variant], "{d:?}");
            assert_eq!(d.unchanged, 0);
        }
    }

    #[test]
    fn timeouts_and_neighbour_refresh_apply_at_runtime() {
        let old = config(vec![]);
        let mut new = old.clone();
        new.timeouts.ageing_interval = Duration::from_secs(30);
        let d = diff(&old, &new);
        assert!(d.timeouts_changed);
        assert!(d.restart_required.is_empty());
        assert!(!d.is_empty());

        let mut new = old.clone();
        new.daemon.neighbour_refresh = Duration::from_secs(5);
        let d = diff(&old, &new);
        assert!(!d.timeouts_changed);
        assert_eq!(d.restart_required, ["daemon.neighbour_refresh"]);
        assert!(!d.is_empty());
    }

    #[test]
    fn restart_required_names_each_field() {
        let old = config(vec![]);
        let mut new = old.clone();
        new.daemon.pin_path = "/sys/fs/bpf/other".into();
        new.daemon.admin_socket = "/run/other.sock".into();
        new.daemon.metrics_address = "127.0.0.1:1".parse().unwrap();
        new.dataplane.interfaces = vec!["eth1".into()];
        new.dataplane.xdp_mode = XdpModeConfig::Generic;
        new.dataplane.xdp_fallback = false;
        new.dataplane.log_events = true;
        new.dataplane.conntrack_size = 2048;
        new.dataplane.max_reals = 16;
        new.dataplane.max_services = 1;
        let d = diff(&old, &new);
        assert_eq!(
            d.restart_required,
            [
                "daemon.pin_path",
                "daemon.admin_socket",
                "daemon.metrics_address",
                "dataplane.interfaces",
                "dataplane.xdp_mode",
                "dataplane.xdp_fallback",
                "dataplane.conntrack_size",
                "dataplane.max_reals",
                "dataplane.max_services",
            ]
        );
        assert!(!d.timeouts_changed && !d.is_empty());

        let mut new = old.clone();
        new.dataplane.max_reals = 16;
        assert_eq!(diff(&old, &new).restart_required, ["dataplane.max_reals"]);
    }

    #[test]
    fn the_event_log_switch_applies_without_a_restart() {
        let old = config(vec![]);
        let mut new = old.clone();
        new.dataplane.log_events = true;
        let d = diff(&old, &new);
        assert_eq!(d.event_log, Some(true));
        assert!(d.restart_required.is_empty() && !d.is_empty());
        assert_eq!(diff(&new, &old).event_log, Some(false));
        assert_eq!(diff(&old, &old).event_log, None);
    }
}
