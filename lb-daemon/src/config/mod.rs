//! The configuration file (`lbd --config FILE`, `lbd check-config FILE`).
//!
//! - [`parse`]/[`load`] turn the TOML text into a [`Config`] of typed values
//!   (addresses, durations, MACs), or into [`ConfigErrors`]: every problem
//!   found, in file order, each naming the file, the line and the dotted path
//!   of the field (`service[2].real[0].weight`). Unknown fields are errors.
//! - [`diff`] compares two configs, for SIGHUP: which services to add, remove
//!   or update, and which settings only take effect after a restart.
//! - [`ConfigDocument`] edits the operator's file for `lbctl` changes while
//!   keeping its comments and layout; [`write_atomic`] saves it.
//!
//! One module per section of the file (`daemon`, `dataplane`, `timeouts`,
//! `service` with its `check` and `damping`, `vrrp` with its `sync`) holds
//! the section's serde form, its typed form and the reading of one into the
//! other, its restart-only keys and, for services, the `lbctl` edits. They
//! share the error collector (`errors`), the value readers (`values`), the
//! durations, MACs, the document and the atomic save.
//!
//! `config/lb.toml` at the top of the repository documents every option.

mod daemon;
mod dataplane;
mod diff;
mod document;
mod duration;
mod ecmp;
mod errors;
mod file;
mod mac;
mod persist;
mod service;
mod timeouts;
mod values;
mod vrrp;

use std::path::Path;

pub use daemon::{
    DEFAULT_ADMIN_SOCKET, DEFAULT_METRICS_ADDRESS, DEFAULT_NEIGHBOUR_REFRESH, DEFAULT_PIN_PATH,
    DaemonConfig,
};
pub use dataplane::{
    CONNTRACK_SIZE_RANGE, DEFAULT_CONNTRACK_SIZE, DEFAULT_MAX_REALS, DEFAULT_MAX_SERVICES,
    DataplaneConfig, MAX_INTERFACES, MAX_REALS_RANGE, MAX_SERVICES_RANGE, XdpModeConfig,
};
pub use diff::{ConfigDiff, diff};
pub use document::{ConfigDocument, EditError};
pub use duration::{format_duration, parse_duration};
pub use ecmp::{
    DEFAULT_LEARN_DELAY, DEFAULT_ROUTE_TABLE, DEFAULT_SHARE_PORT, EcmpConfig, MAX_LEARN_DELAY,
    ShareConfig,
};
pub use errors::{ConfigError, ConfigErrors};
pub use file::Config;
pub use mac::{format_mac, parse_mac};
pub use persist::write_atomic;
pub use service::{
    DAMPING_RANGE, DEFAULT_DRAIN_TIMEOUT, DEFAULT_MIN_HEALTHY, DEFAULT_MIN_PRIMARIES,
    DEFAULT_WEIGHT, DampingConfig, FallbackConfig, MAX_WEIGHT, MIN_HEALTHY_RANGE,
    MIN_PRIMARIES_RANGE, OnDown, RISE_FALL_RANGE, RealConfig, STATUS_RANGE, ServiceConfig,
    TABLE_SIZE_RANGE,
};
pub use timeouts::{DEFAULT_AGEING_INTERVAL, TimeoutsConfig};
pub use vrrp::{
    DEFAULT_ADVERT_INTERVAL, DEFAULT_PRIORITY, DEFAULT_SYNC_INTERVAL, DEFAULT_SYNC_PORT,
    DEFAULT_WAIT_BEFORE_PREEMPT, MIN_SYNC_KEY_LEN, SyncConfig, VrrpConfig, VrrpFamily,
};

/// How validation asks the system about things outside the file (tests pass
/// a fake).
pub trait Environment {
    fn interface_exists(&self, name: &str) -> bool;
}

/// The running system.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn interface_exists(&self, name: &str) -> bool {
        let Ok(name) = std::ffi::CString::new(name) else {
            return false;
        };
        // SAFETY: `name` is a valid NUL-terminated string that outlives the
        // call; if_nametoindex only reads it.
        unsafe { libc::if_nametoindex(name.as_ptr()) != 0 }
    }
}

/// Parses and validates a config file's text. `source` names it in errors
/// (usually the path).
pub fn parse(text: &str, source: &str, env: &dyn Environment) -> Result<Config, ConfigErrors> {
    file::parse(text, source, env)
}

/// Reads and parses a config file; returns the text too (for
/// [`ConfigDocument`]). A read error is one [`ConfigError`] with line 0.
pub fn load(path: &Path, env: &dyn Environment) -> Result<(Config, String), ConfigErrors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            source_name: source.clone(),
            line: 0,
            field: String::new(),
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    let config = parse(&text, &source, env)?;
    Ok((config, text))
}

#[cfg(test)]
pub(crate) mod tests;
