//! The read-only status page on the metrics address: `GET /` serves
//! [`PAGE`] (built into the binary: no files to install, nothing fetched
//! from elsewhere), which polls `GET /api/status` ([`api`]). The controller
//! thread keeps the page's state here: a sample of the counters every
//! [`history::INTERVAL`] and the last health transitions.

pub mod api;
pub mod history;

use std::{collections::VecDeque, time::Instant};

use api::{HealthTransition, Inputs, TRANSITIONS};
use history::History;

use crate::{
    admin::{EcmpStatus, VrrpStatus, unix_seconds},
    control::{ControlError, Controller},
    health::scheduler::HealthEvent,
};

/// The page: HTML with inline CSS, JS and SVG charts.
pub const PAGE: &str = include_str!("page.html");

/// What the controller thread keeps for the page.
pub(crate) struct StatusPage {
    history: History,
    health: VecDeque<HealthTransition>,
    /// When the next sample is due.
    pub(crate) next_sample: Instant,
}

impl StatusPage {
    pub(crate) fn new() -> Self {
        Self {
            history: History::default(),
            health: VecDeque::with_capacity(TRANSITIONS),
            next_sample: Instant::now(),
        }
    }

    /// Reads the counters into the history (a scrape's reading of the maps,
    /// once per interval) and sets the next sample's time.
    pub(crate) fn sample(&mut self, controller: &Controller) {
        let at = Instant::now();
        match controller.snapshot() {
            Ok(snapshot) => {
                let unix = unix_seconds(std::time::SystemTime::now());
                self.history.record(unix, at, &snapshot);
            }
            Err(e) => tracing::warn!(error = %e, "status page: reading the counters"),
        }
        self.next_sample = at + history::INTERVAL;
    }

    /// Keeps a health transition (with its reason) for the page.
    pub(crate) fn observe_health(&mut self, event: &HealthEvent) {
        let Some(transition) = event.transition else {
            return;
        };
        if self.health.len() == TRANSITIONS {
            self.health.pop_front();
        }
        self.health.push_back(HealthTransition {
            at: unix_seconds(std::time::SystemTime::now()),
            service: event.key.service.to_string(),
            real: event.key.real.to_string(),
            to: transition.to.label().into(),
            reason: event.reason.clone().unwrap_or_default(),
        });
    }

    /// The JSON of `GET /api/status`.
    pub(crate) fn answer(
        &self,
        controller: &Controller,
        vrrp: &VrrpStatus,
        ecmp: &EcmpStatus,
        since: Option<f64>,
    ) -> Result<String, ControlError> {
        let status = controller.status()?;
        Ok(api::build(&Inputs {
            now: unix_seconds(std::time::SystemTime::now()),
            status: &status,
            vrrp,
            ecmp,
            history: &self.history,
            health_transitions: &self.health,
            since,
        }))
    }
}
