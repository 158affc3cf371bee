//! The whole file: [`Config`], and the walk from text to it (TOML syntax,
//! then each top-level table by the section that owns it, then the checks
//! that need several sections).

use toml::de::DeTable;

use super::Environment;
use super::daemon::DaemonConfig;
use super::dataplane::DataplaneConfig;
use super::ecmp::EcmpConfig;
use super::errors::{Checker, ConfigErrors};
use super::service::{Headers, ServiceConfig};
use super::timeouts::TimeoutsConfig;
use super::vrrp::VrrpConfig;
use crate::balancer::model::ServiceAddr;

/// The top-level keys.
const TOP_LEVEL: [&str; 6] = ["daemon", "dataplane", "timeouts", "vrrp", "ecmp", "service"];

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub dataplane: DataplaneConfig,
    pub timeouts: TimeoutsConfig,
    /// `None`: no failover; lbd holds the VIPs itself.
    pub vrrp: Option<VrrpConfig>,
    /// `None`: the VIPs are held on the interface (alone or by VRRP);
    /// `Some`: announced as routes for an ECMP router. Never both.
    pub ecmp: Option<EcmpConfig>,
    /// In file order; no two share a [`ServiceAddr`].
    pub services: Vec<ServiceConfig>,
}

impl Config {
    /// The service with this address, if configured.
    #[must_use]
    pub fn service(&self, addr: &ServiceAddr) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.addr == *addr)
    }

    /// Addresses whose MAC must come from the neighbour table: reals and
    /// fallback servers without a static `mac`.
    #[must_use]
    pub fn addresses_to_resolve(&self) -> std::collections::BTreeSet<std::net::IpAddr> {
        let reals = self
            .services
            .iter()
            .flat_map(|s| s.reals.iter())
            .filter(|r| r.mac.is_none())
            .map(|r| r.addr);
        let fallbacks = self
            .services
            .iter()
            .filter_map(|s| s.fallback.as_ref())
            .filter(|f| f.mac.is_none())
            .map(|f| f.addr);
        reals.chain(fallbacks).collect()
    }
}

/// Parses and checks a whole file; see [`super::parse`].
pub(super) fn parse(
    text: &str,
    source: &str,
    env: &dyn Environment,
) -> Result<Config, ConfigErrors> {
    let mut checker = Checker::new(text, source, env);
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            let span = e.span().unwrap_or(0..0);
            let mut message = e.message().trim_end().to_owned();
            // Name what the error points at when it is a short token
            // (`duplicate key` does not say which).
            if let Some(token) = text.get(span.clone())
                && !token.is_empty()
                && token.len() <= 60
                && !token.contains('\n')
            {
                message = format!("{message}: `{token}`");
            }
            checker.error(span.start, "", message);
        }
        return Err(checker.finish());
    }
    let config = checker.config(root.get_ref());
    if checker.has_errors() {
        Err(checker.finish())
    } else {
        Ok(config)
    }
}

impl Checker<'_> {
    fn config(&mut self, root: &DeTable<'_>) -> Config {
        let mut config = Config::default();
        let mut dataplane_seen = false;
        let mut headers = Headers::default();
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "daemon" => config.daemon = self.daemon(value),
                "dataplane" => {
                    dataplane_seen = true;
                    config.dataplane = self.dataplane(value);
                }
                "timeouts" => config.timeouts = self.timeouts(value),
                "vrrp" => config.vrrp = self.vrrp(value),
                "ecmp" => config.ecmp = self.ecmp(value),
                "service" => config.services = self.services(value, &mut headers),
                other => self.error(
                    key.span().start,
                    other,
                    format!(
                        "unknown field `{other}`, expected one of {}",
                        quoted(&TOP_LEVEL)
                    ),
                ),
            }
        }
        if !dataplane_seen {
            self.error(
                0,
                "dataplane.interfaces",
                "missing required field `interfaces`: the file has no [dataplane] table \
                 naming the interfaces to attach to",
            );
        }
        self.limits(&config.dataplane, &headers.services, &headers.reals);
        if config.vrrp.is_some()
            && config.ecmp.is_some()
            && let Some(ecmp) = root.get("ecmp")
        {
            self.error(
                ecmp.span().start,
                "ecmp",
                "[ecmp] and [vrrp] exclude each other: with [ecmp] every director is active                  and the router chooses (leave [vrrp] out)",
            );
        }
        if let Some(vrrp) = &config.vrrp {
            self.vrrp_interface(vrrp, &config.dataplane, root);
            self.vrrp_vip_count(vrrp, &config.services, root);
        }
        config
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::ageing::Timeouts;
    use crate::balancer::model::Protocol;
    use crate::config::{RealConfig, XdpModeConfig};

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.daemon.admin_socket, PathBuf::from("/run/lbd/lbd.sock"));
        assert_eq!(c.daemon.pin_path, PathBuf::from("/sys/fs/bpf/lbd"));
        assert_eq!(c.daemon.metrics_address, "127.0.0.1:9140".parse().unwrap());
        assert_eq!(c.daemon.neighbour_refresh, Duration::from_secs(1));
        assert!(c.dataplane.interfaces.is_empty());
        assert_eq!(c.dataplane.xdp_mode, XdpModeConfig::Driver);
        assert!(c.dataplane.xdp_fallback);
        assert_eq!(c.dataplane.conntrack_size, 1_000_000);
        assert_eq!(c.dataplane.max_reals, 65_536);
        assert_eq!(c.dataplane.max_services, 1024);
        assert_eq!(c.timeouts.tcp, Duration::from_mins(15));
        assert_eq!(c.timeouts.tcp_closing, Duration::from_mins(2));
        assert_eq!(c.timeouts.udp, Duration::from_mins(5));
        assert_eq!(c.timeouts.ageing_interval, Duration::from_secs(10));
        assert_eq!(c.timeouts.ageing(), Timeouts::default());
        assert!(c.services.is_empty());
    }

    #[test]
    fn lookups() {
        let addr = ServiceAddr {
            vip: "192.0.2.10".parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
        };
        let mut service = ServiceConfig::new(addr);
        service
            .reals
            .push(RealConfig::new("10.0.0.1".parse().unwrap(), 80));
        let config = Config {
            services: vec![service],
            ..Config::default()
        };
        let found = config.service(&addr).unwrap();
        assert!(found.real("10.0.0.1".parse().unwrap(), 80).is_some());
        assert!(found.real("10.0.0.1".parse().unwrap(), 81).is_none());
        assert!(
            config
                .service(&ServiceAddr {
                    protocol: Protocol::Udp,
                    ..addr
                })
                .is_none()
        );
    }
}
