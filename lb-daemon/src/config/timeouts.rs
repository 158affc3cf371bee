//! `[timeouts]`: connection-table ageing. A change applies on reload.

use std::time::Duration;

use serde::Deserialize;

use super::errors::Checker;
use super::values::{Text, Value};
use crate::ageing::Timeouts;

/// `timeouts.*` when not given: the IPVS defaults of [`Timeouts`], and a
/// 10 s sweep.
pub const DEFAULT_AGEING_INTERVAL: Duration = Duration::from_secs(10);

/// The keys of `[timeouts]` whose value is a duration (all of them).
pub(super) const DURATION_KEYS: &[&str] =
    &["tcp", "tcp_syn", "tcp_closing", "udp", "ageing_interval"];

/// `[timeouts]`: connection-table ageing. All positive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutsConfig {
    /// Established TCP flow idle timeout.
    pub tcp: Duration,
    /// Half-open TCP flow (SYN seen, handshake not finished).
    pub tcp_syn: Duration,
    /// TCP flow after FIN/RST.
    pub tcp_closing: Duration,
    pub udp: Duration,
    /// How often the connection table is swept.
    pub ageing_interval: Duration,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        let t = Timeouts::default();
        Self {
            tcp: t.tcp,
            tcp_syn: t.tcp_syn,
            tcp_closing: t.tcp_closing,
            udp: t.udp,
            ageing_interval: DEFAULT_AGEING_INTERVAL,
        }
    }
}

impl TimeoutsConfig {
    /// The timeouts the ageing pass applies.
    #[must_use]
    pub fn ageing(&self) -> Timeouts {
        Timeouts {
            tcp: self.tcp,
            tcp_syn: self.tcp_syn,
            tcp_closing: self.tcp_closing,
            udp: self.udp,
        }
    }
}

/// `[timeouts]` as serde sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [timeouts] table")]
struct RawTimeouts {
    tcp: Option<Text>,
    tcp_syn: Option<Text>,
    tcp_closing: Option<Text>,
    udp: Option<Text>,
    ageing_interval: Option<Text>,
}

impl Checker<'_> {
    pub(super) fn timeouts(&mut self, value: &Value<'_>) -> TimeoutsConfig {
        let mut timeouts = TimeoutsConfig::default();
        let Some(raw) = self.section::<RawTimeouts>("timeouts", value) else {
            return timeouts;
        };
        let fields = [
            ("timeouts.tcp", &raw.tcp, &mut timeouts.tcp),
            ("timeouts.tcp_syn", &raw.tcp_syn, &mut timeouts.tcp_syn),
            (
                "timeouts.tcp_closing",
                &raw.tcp_closing,
                &mut timeouts.tcp_closing,
            ),
            ("timeouts.udp", &raw.udp, &mut timeouts.udp),
            (
                "timeouts.ageing_interval",
                &raw.ageing_interval,
                &mut timeouts.ageing_interval,
            ),
        ];
        for (field, raw, slot) in fields {
            if let Some(d) = self.duration(field, raw.as_ref()) {
                *slot = d;
            }
        }
        timeouts
    }
}
