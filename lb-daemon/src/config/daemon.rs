//! `[daemon]`: the process itself (admin socket, pin path, metrics,
//! neighbour refresh). Every key needs a restart to change.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::errors::Checker;
use super::values::{Text, Value};

/// `daemon.admin_socket` when not given.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/lbd/lbd.sock";
/// `daemon.pin_path` when not given.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/lbd";
/// `daemon.metrics_address` when not given.
pub const DEFAULT_METRICS_ADDRESS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9140));
/// `daemon.neighbour_refresh` when not given.
pub const DEFAULT_NEIGHBOUR_REFRESH: Duration = Duration::from_secs(1);

/// The keys of `[daemon]` whose value is a duration.
pub(super) const DURATION_KEYS: &[&str] = &["neighbour_refresh"];

/// `[daemon]`: the process itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Unix socket `lbctl` talks to.
    pub admin_socket: PathBuf,
    /// bpffs directory the program and maps are pinned under.
    pub pin_path: PathBuf,
    /// Where the Prometheus metrics are served.
    pub metrics_address: SocketAddr,
    /// How often the neighbour table (MACs of the reals) is re-read.
    pub neighbour_refresh: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            admin_socket: PathBuf::from(DEFAULT_ADMIN_SOCKET),
            pin_path: PathBuf::from(DEFAULT_PIN_PATH),
            metrics_address: DEFAULT_METRICS_ADDRESS,
            neighbour_refresh: DEFAULT_NEIGHBOUR_REFRESH,
        }
    }
}

impl DaemonConfig {
    /// The dotted names of the keys that differ from `new`: all of them
    /// only take effect after a restart.
    pub(super) fn restart_required(&self, new: &Self) -> Vec<&'static str> {
        [
            ("daemon.pin_path", self.pin_path != new.pin_path),
            // The neighbour thread reads it once, at startup.
            (
                "daemon.neighbour_refresh",
                self.neighbour_refresh != new.neighbour_refresh,
            ),
            ("daemon.admin_socket", self.admin_socket != new.admin_socket),
            (
                "daemon.metrics_address",
                self.metrics_address != new.metrics_address,
            ),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
    }
}

/// `[daemon]` as serde sees it (see `values` for why every field is
/// optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [daemon] table")]
struct RawDaemon {
    admin_socket: Option<Text>,
    pin_path: Option<Text>,
    metrics_address: Option<Text>,
    neighbour_refresh: Option<Text>,
}

impl Checker<'_> {
    pub(super) fn daemon(&mut self, value: &Value<'_>) -> DaemonConfig {
        let mut daemon = DaemonConfig::default();
        let Some(raw) = self.section::<RawDaemon>("daemon", value) else {
            return daemon;
        };
        if let Some(path) = self.path("daemon.admin_socket", raw.admin_socket.as_ref()) {
            // sockaddr_un holds 108 bytes including the terminating NUL.
            if path.as_os_str().len() > 107 {
                let offset = raw.admin_socket.as_ref().map_or(0, |t| t.span().start);
                self.error(
                    offset,
                    "daemon.admin_socket",
                    format!(
                        "the path is {} bytes long; a Unix socket path has at most 107",
                        path.as_os_str().len()
                    ),
                );
            } else {
                daemon.admin_socket = path;
            }
        }
        if let Some(path) = self.path("daemon.pin_path", raw.pin_path.as_ref()) {
            daemon.pin_path = path;
        }
        if let Some(text) = &raw.metrics_address {
            match text.get_ref().parse::<SocketAddr>() {
                Ok(addr) => daemon.metrics_address = addr,
                Err(_) => self.error(
                    text.span().start,
                    "daemon.metrics_address",
                    format!(
                        "{:?} is not an address and port (expected IP:PORT, e.g. \
                         \"127.0.0.1:9140\" or \"[::1]:9140\")",
                        text.get_ref()
                    ),
                ),
            }
        }
        if let Some(d) = self.duration("daemon.neighbour_refresh", raw.neighbour_refresh.as_ref()) {
            daemon.neighbour_refresh = d;
        }
        daemon
    }
}
