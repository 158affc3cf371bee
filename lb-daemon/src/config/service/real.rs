//! `[[service.real]]`: a real server of a service, with its own `check`
//! (merged over the service's by `check`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::super::errors::Checker;
use super::super::mac::parse_mac;
use super::super::values::{Bool, Int, Text, Value};
use super::health::Health;
use super::read::Seen;
use crate::health::spec::CheckSpec;

/// A real's weight when not given, and the largest allowed.
pub const DEFAULT_WEIGHT: u32 = 1;
pub const MAX_WEIGHT: u32 = 65_535;

/// One `[[service.real]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealConfig {
    /// Same address family as the service's VIP.
    pub addr: IpAddr,
    /// Always the service port (direct routing cannot translate ports).
    pub port: u16,
    /// 0..=[`MAX_WEIGHT`]; 0 takes no new connections.
    pub weight: u32,
    /// A spare server (used by health checking).
    pub backup: bool,
    /// Static MAC; `None` resolves it from the neighbour table.
    pub mac: Option<[u8; 6]>,
    /// The real's own check when its `check` table makes it differ from the
    /// service's; `None`: the service's applies. Use
    /// [`ServiceConfig::check_for`].
    pub check: Option<CheckSpec>,
}

impl RealConfig {
    /// A real with the default weight, not a backup, MAC from the neighbour
    /// table, checked as its service says.
    #[must_use]
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Self {
            addr,
            port,
            weight: DEFAULT_WEIGHT,
            backup: false,
            mac: None,
            check: None,
        }
    }

    /// `IP:PORT` (`[v6]:PORT`), the same as `RealSpec::name`.
    #[must_use]
    pub fn name(&self) -> String {
        self.socket().to_string()
    }

    /// `IP:PORT`, typed (the real's part of a `RealKey`).
    #[must_use]
    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// `[[service.real]]` as serde sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[service.real]] table")]
struct RawReal {
    address: Option<Text>,
    port: Option<Int>,
    weight: Option<Int>,
    backup: Option<Bool>,
    mac: Option<Text>,
    /// Deserialized on its own by `check`.
    #[allow(dead_code)]
    check: Option<IgnoredAny>,
}

impl Checker<'_> {
    pub(super) fn reals(
        &mut self,
        service_path: &str,
        service: &Value<'_>,
        vip: Option<IpAddr>,
        service_port: Option<u16>,
        health: &Health,
        headers: &mut Vec<(usize, String)>,
    ) -> Vec<RealConfig> {
        let Some(items) = service
            .get_ref()
            .as_table()
            .and_then(|t| t.get("real"))
            .and_then(|r| r.get_ref().as_array())
        else {
            return Vec::new();
        };
        let mut reals = Vec::new();
        let mut seen: HashMap<(IpAddr, u16), Seen> = HashMap::new();
        for (j, item) in items.iter().enumerate() {
            let path = format!("{service_path}.real[{j}]");
            let offset = item.span().start;
            headers.push((offset, path.clone()));
            let Some(real) = self.real(&path, item, vip, service_port, health) else {
                continue;
            };
            if let Some(first) = seen.get(&(real.addr, real.port)) {
                let message = format!(
                    "duplicate real {} (already defined by {} at line {})",
                    real.name(),
                    first.path,
                    self.lines.line(first.offset)
                );
                self.error(offset, path, message);
                continue;
            }
            seen.insert((real.addr, real.port), Seen { offset, path });
            reals.push(real);
        }
        reals
    }

    /// One real; `None` when its identity (address, port) is not valid.
    fn real(
        &mut self,
        path: &str,
        item: &Value<'_>,
        vip: Option<IpAddr>,
        service_port: Option<u16>,
        health: &Health,
    ) -> Option<RealConfig> {
        let raw = self.section::<RawReal>(path, item)?;
        let header = item.span().start;
        let address = self.required(
            header,
            path,
            "address",
            "the real server's IP address",
            raw.address.as_ref(),
        );
        let addr = address.and_then(|text| self.ip(&format!("{path}.address"), text));
        if let (Some(vip), Some(addr), Some(text)) = (vip, addr, address)
            && vip.is_ipv4() != addr.is_ipv4()
        {
            let (vip_family, real_family) = if vip.is_ipv4() {
                ("IPv4", "IPv6")
            } else {
                ("IPv6", "IPv4")
            };
            self.error(
                text.span().start,
                format!("{path}.address"),
                format!(
                    "{vip_family} VIP {vip} cannot have {real_family} real {addr} \
                     (direct routing keeps the packet's addresses, so a real must be \
                     of the VIP's address family)"
                ),
            );
        }
        let port = match &raw.port {
            None => service_port.or(Some(0)),
            Some(v) => {
                let port = self.port(&format!("{path}.port"), v);
                if let (Some(port), Some(service_port)) = (port, service_port)
                    && port != service_port
                {
                    self.error(
                        v.span().start,
                        format!("{path}.port"),
                        format!(
                            "real port {port} differs from the service port \
                             {service_port}: direct routing forwards packets unchanged \
                             and cannot translate ports (leave `port` out or set it \
                             to {service_port})"
                        ),
                    );
                }
                port
            }
        };
        let weight = raw
            .weight
            .as_ref()
            .and_then(|w| self.int(&format!("{path}.weight"), "weight", w, 0..=MAX_WEIGHT));
        let mac = raw
            .mac
            .as_ref()
            .and_then(|text| match parse_mac(text.get_ref()) {
                Ok(mac) => Some(mac),
                Err(e) => {
                    self.error(text.span().start, format!("{path}.mac"), e);
                    None
                }
            });
        let check = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("check"))
            .and_then(|value| self.real_check(path, value, &health.check_table, &health.check));
        Some(RealConfig {
            addr: addr?,
            port: port?,
            weight: weight.unwrap_or(DEFAULT_WEIGHT),
            backup: raw.backup.as_ref().is_some_and(|b: &Bool| *b.get_ref()),
            mac,
            check,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_names_match_real_spec() {
        let v4 = RealConfig::new("192.0.2.1".parse().unwrap(), 80);
        assert_eq!(v4.name(), "192.0.2.1:80");
        let v6 = RealConfig::new("fd00::1".parse().unwrap(), 80);
        assert_eq!(v6.name(), "[fd00::1]:80");
    }
}
