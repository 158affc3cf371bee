//! systemd's notify protocol (`sd_notify(3)`) for `lbd.service`'s
//! `Type=notify`: `READY=1` once the data path is programmed and the
//! controller is about to answer the admin socket, `RELOADING=1` and
//! `READY=1` around a reload, `STATUS=` with a one-line summary,
//! `WATCHDOG=1` from the controller loop (so a hung controller stops feeding
//! it and systemd restarts lbd; the pinned data path keeps forwarding), and
//! `STOPPING=1` when the shutdown begins.
//!
//! Without `NOTIFY_SOCKET` (lbd not started by systemd) every call here does
//! nothing: `sd_notify::notify` returns at once.

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use sd_notify::NotifyState;

use crate::control::Controller;

/// The notify side of the daemon: what to send and when the watchdog wants
/// its next ping.
pub(super) struct Notifier {
    /// Half of `WATCHDOG_USEC` (systemd's advice), when the watchdog is on.
    ping_every: Option<Duration>,
    next_ping: Instant,
}

#[expect(
    clippy::unused_self,
    reason = "the messages go through the Notifier the controller loop holds, \
              so only code that has it can speak for lbd"
)]
impl Notifier {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`, which must be ours if set).
    pub(super) fn from_env() -> Self {
        let ping_every = sd_notify::watchdog_enabled()
            .filter(|d| !d.is_zero())
            .map(|d| d / 2);
        if let Some(every) = ping_every {
            tracing::info!(
                every_ms = every.as_millis(),
                "systemd watchdog on: the controller loop feeds it"
            );
        }
        Self {
            ping_every,
            next_ping: Instant::now(),
        }
    }

    /// The service is up: data path programmed, admin socket served.
    pub(super) fn ready(&self, controller: &Controller) {
        send(&[
            NotifyState::Ready,
            NotifyState::Status(&status_line(controller, "serving")),
        ]);
    }

    /// A reload starts (SIGHUP or `lbctl reload`).
    pub(super) fn reloading(&self) {
        // MONOTONIC_USEC lets a systemd that runs `Type=notify-reload` match
        // this message with the reload it asked for; older ones ignore it.
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// A reload ended: applied, or refused (the running state unchanged).
    pub(super) fn reloaded(&self, controller: &Controller, applied: bool) {
        let what = if applied {
            "serving (config reloaded)"
        } else {
            "serving the previous config (reload refused, see the log)"
        };
        send(&[
            NotifyState::Ready,
            NotifyState::Status(&status_line(controller, what)),
        ]);
    }

    /// The shutdown began; the data path stays.
    pub(super) fn stopping(&self) {
        send(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping; the data path keeps forwarding"),
        ]);
    }

    /// When the controller loop must wake up to ping, if the watchdog is on.
    pub(super) fn next_ping(&self) -> Option<Instant> {
        self.ping_every.map(|_| self.next_ping)
    }

    /// Pings the watchdog if it is due. Called by the controller loop only:
    /// a controller stuck in one event stops the pings.
    pub(super) fn ping_if_due(&mut self) {
        let Some(every) = self.ping_every else { return };
        let now = Instant::now();
        if now >= self.next_ping {
            send(&[NotifyState::Watchdog]);
            self.next_ping = now + every;
        }
    }
}

/// `STATUS=`: "serving: 3 services, 12 reals (1 without MAC)".
fn status_line(controller: &Controller, what: &str) -> String {
    let services = &controller.config().services;
    let reals: usize = services.iter().map(|s| s.reals.len()).sum();
    let unresolved = controller.unresolved_reals().len();
    let mut line = format!("{what}: {} services, {reals} reals", services.len());
    if unresolved > 0 {
        let _ = write!(line, " ({unresolved} without MAC)");
    }
    line
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sending to systemd's NOTIFY_SOCKET");
    }
}
