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
//! `config/lb.toml` at the top of the repository documents every option.

mod diff;
mod document;
mod duration;
mod persist;
mod raw;
mod types;
mod validate;
mod vrrp;

use std::fmt;
use std::path::Path;

pub use diff::{ConfigDiff, diff};
pub use document::{ConfigDocument, EditError};
pub use duration::{format_duration, parse_duration};
pub use persist::write_atomic;
pub use types::{
    CONNTRACK_SIZE_RANGE, Config, DAMPING_RANGE, DEFAULT_ADMIN_SOCKET, DEFAULT_AGEING_INTERVAL,
    DEFAULT_CONNTRACK_SIZE, DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_REALS, DEFAULT_MAX_SERVICES,
    DEFAULT_METRICS_ADDRESS, DEFAULT_MIN_PRIMARIES, DEFAULT_NEIGHBOUR_REFRESH, DEFAULT_PIN_PATH,
    DEFAULT_WEIGHT, DaemonConfig, DampingConfig, DataplaneConfig, FallbackConfig, MAX_INTERFACES,
    MAX_REALS_RANGE, MAX_SERVICES_RANGE, MAX_WEIGHT, MIN_PRIMARIES_RANGE, OnDown, RISE_FALL_RANGE,
    RealConfig, STATUS_RANGE, ServiceConfig, TABLE_SIZE_RANGE, TimeoutsConfig, XdpModeConfig,
    format_mac, parse_mac,
};
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
    validate::parse(text, source, env)
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

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (as given to [`parse`]/[`load`]).
    pub source_name: String,
    /// 1-based; 0 when the error is not about a line (the file cannot be
    /// read).
    pub line: usize,
    /// Dotted path such as `service[2].real[0].weight` (0-based indexes);
    /// empty for TOML syntax errors and I/O errors.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `{source}:{line}: {field}: {message}`, leaving out the line when 0
    /// and the field when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source_name)?;
        if self.line != 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file, in file order (never empty when
/// returned by [`parse`]/[`load`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests;
