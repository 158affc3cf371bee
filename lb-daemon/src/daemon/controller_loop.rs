//! The controller loop: one thread owns the [`Controller`] and serves
//! events one at a time (every admin request is answered here, in
//! [`dispatch`]), and between them ages the connection table, steps slow
//! starts, finishes drains and samples the status page's history.

use std::{
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use crate::{
    admin::{
        EcmpStatus, RealHealthStatus, Request, Response, Transition, VrrpStatus, unix_seconds,
    },
    config,
    control::{ControlError, Controller},
    health::{
        scheduler::{Checker, HealthEvent},
        state::Health,
    },
    metrics::Metrics,
    netlink::Netlink,
};

use super::{
    Event, Wanted, evidence::Evidence, failover::Handover, notify::Notifier, startup::Vips,
    status_page::StatusPage, table_thread::TableThread, vips,
};
use crate::balancer::monotonic_now_ns;

/// How often reals in slow start get their next, larger weight, and
/// drained reals are checked for removal.
const RAMP_STEP: Duration = Duration::from_secs(1);

/// What the controller loop drives outside the controller: VIP addresses,
/// the neighbour thread's wanted set, the health checker, the metrics.
pub(super) struct Host {
    /// Walks of the whole connection table.
    pub(super) table: TableThread,
    pub(super) netlink: Netlink,
    pub(super) vip_iface: u32,
    pub(super) vips: Vips,
    pub(super) wanted: Wanted,
    /// Wakes the neighbour thread; dropping it ends that thread.
    pub(super) waker: mpsc::Sender<()>,
    pub(super) checker: Checker,
    pub(super) metrics: Arc<Metrics>,
    /// The controller's config generation this was last synced with.
    pub(super) generation: u64,
    /// The status page's history and recent transitions.
    pub(super) page: StatusPage,
    /// systemd's notify socket and watchdog (nothing without them).
    pub(super) notify: Notifier,
    /// Probes reals whose clients retransmit SYNs.
    pub(super) evidence: Evidence,
    /// Flow sharing with the other ECMP directors (`[ecmp.sync]`).
    pub(super) share: Option<super::flow_share::ShareHandle>,
}

impl Host {
    /// What `lbctl vrrp` shows (disabled without `[vrrp]`).
    fn vrrp_status(&self) -> VrrpStatus {
        match &self.vips {
            Vips::Vrrp(failover) => failover.status(),
            Vips::Direct(_) | Vips::Ecmp(_) => VrrpStatus::default(),
        }
    }

    /// What `lbctl director` shows (disabled without `[ecmp]`).
    fn ecmp_status(&self) -> EcmpStatus {
        match &self.vips {
            Vips::Ecmp(announcer) => EcmpStatus {
                share: self
                    .share
                    .as_ref()
                    .map(super::flow_share::ShareHandle::status),
                ..announcer.status()
            },
            Vips::Direct(_) | Vips::Vrrp(_) => EcmpStatus::default(),
        }
    }

    /// With `[ecmp]`: announces or withdraws VIPs as health, config and
    /// the director's own state say (cheap when nothing changed).
    fn announce(&mut self, controller: &Controller) {
        if let Vips::Ecmp(announcer) = &mut self.vips {
            announcer.update(&mut self.netlink, &controller.service_health());
        }
    }

    /// When the loop must wake for the announcer (the learn delay's end).
    fn announce_deadline(&self) -> Option<Instant> {
        match &self.vips {
            Vips::Ecmp(announcer) => announcer.deadline(),
            Vips::Direct(_) | Vips::Vrrp(_) => None,
        }
    }

    /// `lbctl director drain|undrain`.
    fn drain_director(&mut self, controller: &mut Controller, drain: bool) -> Response {
        let Vips::Ecmp(announcer) = &mut self.vips else {
            return Response::failure(
                "this director has no [ecmp] table: it holds its VIPs itself (or by VRRP), \
                 there is nothing to withdraw",
            );
        };
        // Recorded first, in the pinned maps, so that a restarted lbd keeps
        // it; if that fails nothing changes.
        if let Err(e) = controller
            .balancer_mut()
            .dataplane_mut()
            .set_director_drained(drain)
        {
            return Response::failure(format!("recording the drain in the pinned maps: {e}"));
        }
        announcer.set_drained(drain);
        announcer.update(&mut self.netlink, &controller.service_health());
        let summary = if drain {
            "director drained: every VIP withdrawn from the router; flows that still arrive \
             are forwarded"
        } else {
            "director undrained: VIPs are announced again where their services are healthy"
        };
        tracing::info!(drain, "{summary}");
        Response::success(crate::admin::ChangeResult {
            summary: summary.to_owned(),
            ..Default::default()
        })
    }

    /// Brings VIPs, neighbour targets, health targets and metric series in
    /// line with the controller's config, when that changed.
    fn sync(&mut self, controller: &mut Controller) {
        if controller.generation() == self.generation {
            return;
        }
        self.generation = controller.generation();
        controller.forget_unused_macs();
        controller.forget_unused_health();
        let now_wanted = controller.reals_to_resolve();
        let mut current = self.wanted.lock().expect("wanted lock");
        if *current != now_wanted {
            *current = now_wanted;
            // New reals: resolve them now, not at the next refresh.
            let _ = self.waker.send(());
        }
        drop(current);
        let vips = controller.vips();
        match &mut self.vips {
            Vips::Direct(held) => {
                if vips != *held {
                    *held = vips::sync(&mut self.netlink, self.vip_iface, held, &vips);
                }
            }
            Vips::Vrrp(failover) => failover.set_vips(vips),
            // Decided after every event, in `announce`.
            Vips::Ecmp(_) => {}
        }
        self.metrics.retain_reals(&controller.configured_reals());
        self.checker.set_targets(controller.health_targets());
        self.evidence.set_reals(controller.real_slots_in_use());
    }
}

/// Serves events one at a time until shutdown; between them ages the
/// connection table, steps slow starts, finishes drains and samples the
/// status page's history.
pub(super) fn controller_loop(
    controller: &mut Controller,
    inbox: &mpsc::Receiver<Event>,
    host: &mut Host,
) {
    let mut next_ageing = Instant::now() + controller.config().timeouts.ageing_interval;
    let mut next_ramp = Instant::now() + RAMP_STEP;
    loop {
        // The watchdog is fed here, between events, and nowhere else: a
        // controller stuck in one event stops feeding it.
        host.notify.ping_if_due();
        let mut wake_at = next_ageing.min(next_ramp).min(host.page.next_sample);
        if let Some(deadline) = host.announce_deadline() {
            wake_at = wake_at.min(deadline);
        }
        if let Some(ping) = host.notify.next_ping() {
            wake_at = wake_at.min(ping);
        }
        let timeout = wake_at.saturating_duration_since(Instant::now());
        match inbox.recv_timeout(timeout) {
            Ok(event) => {
                if !handle(controller, host, event) {
                    return;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= next_ramp {
                    step(controller);
                    next_ramp = Instant::now() + RAMP_STEP;
                }
                if Instant::now() >= next_ageing {
                    if let Vips::Ecmp(announcer) = &mut host.vips {
                        announcer.audit(&mut host.netlink);
                    }
                    let (timeouts, context) = controller.ageing_job();
                    host.table.age(timeouts, context);
                    next_ageing = Instant::now() + controller.config().timeouts.ageing_interval;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        // Checked after events too: a steady stream of them must not hold
        // the samples back.
        if Instant::now() >= host.page.next_sample {
            host.page.sample(controller);
        }
        host.sync(controller);
        host.announce(controller);
    }
}

/// Once a second: the next slow-start weights, and drained reals whose
/// flows have ended are removed.
fn step(controller: &mut Controller) {
    if let Err(e) = controller.ramp() {
        tracing::error!(error = %e, "slow start step");
    }
    for (service, real, active) in controller.finish_drains() {
        tracing::info!(%service, %real, flows_left = active, "drained real removed");
    }
}

/// What `lbctl health` shows: the checker's view, with the data path's
/// evidence about each real.
fn health_report(checker: &Checker, controller: &Controller) -> Vec<RealHealthStatus> {
    let mut states = checker.states();
    // By text, as `lbctl health` always listed them.
    states.sort_by_cached_key(|s| (s.key.service.to_string(), s.key.real.to_string()));
    states
        .into_iter()
        .map(|s| {
            let (inactive_connections, syn_retransmits) = controller.handshake_evidence(&s.key);
            RealHealthStatus {
                inactive_connections,
                syn_retransmits,
                early_probes: s.early_probes,
                service: s.key.service.to_string(),
                real: s.key.real.to_string(),
                check: s.check,
                health: s.health.label().into(),
                checks: s.checks.label().into(),
                streak: s.streak,
                held_for_seconds: s.held_for.map(|d| d.as_secs_f64()),
                damping_penalty: s.penalty,
                last_probe: s.last.map(|p| match p.result {
                    Ok(took) => format!("ok ({:.1} ms)", took.as_secs_f64() * 1e3),
                    Err(failure) => failure.to_string(),
                }),
                history: s
                    .history
                    .into_iter()
                    .map(|h| Transition {
                        at: unix_seconds(h.at),
                        to: h.transition.to.label().into(),
                        reason: h.reason,
                    })
                    .collect(),
            }
        })
        .collect()
}

fn log_reload(result: Result<config::ConfigDiff, ControlError>) {
    match result {
        Ok(diff) => tracing::info!(
            added = diff.added.len(),
            removed = diff.removed.len(),
            changed = diff.changed.len(),
            unchanged = diff.unchanged,
            "config reloaded (SIGHUP)"
        ),
        Err(e) => tracing::error!(
            "config reload (SIGHUP) refused; still running the previous config: {e}"
        ),
    }
}

/// A probe's duration and failure, and a transition, as metrics.
pub(super) fn observe_health(metrics: &Metrics, event: &HealthEvent) {
    let (service, real) = (event.key.service.to_string(), event.key.real.to_string());
    // Events without a probe (a check set to `none`) carry no duration.
    if !event.took.is_zero() {
        let failure = event.result.as_ref().err().map(|f| f.reason.label());
        metrics.observe_probe(&service, &real, event.took, failure);
    }
    if let Some(t) = event.transition {
        metrics.observe_transition(&service, &real, t.to.label());
    }
}

pub(super) fn unix_now() -> f64 {
    unix_seconds(std::time::SystemTime::now())
}

/// Points the data path at the other director (see [`Handover`]).
fn hand_over(controller: &mut Controller, handover: Handover) {
    let (mac, until_ns) = match handover {
        Handover::ToMaster { mac } => (mac, u64::MAX),
        Handover::ToPreviousMaster { mac, window } => (
            mac,
            monotonic_now_ns().saturating_add(window.as_nanos() as u64),
        ),
        Handover::Off => ([0; 6], 0),
    };
    if let Err(e) = controller
        .balancer_mut()
        .dataplane_mut()
        .set_handover(mac, until_ns)
    {
        tracing::error!(error = %e, "setting the handover to the other director");
    }
}

/// Finishes an ageing pass whose table walk the table thread reported.
fn finish_ageing(
    controller: &mut Controller,
    walked: Result<crate::ageing::AgeingPlan, crate::dataplane::DataplaneError>,
    context: &crate::balancer::AgeingContext,
) {
    let result = walked
        .map_err(|e| ControlError::Balancer(e.into()))
        .and_then(|plan| controller.finish_ageing(&plan, context));
    match result {
        Ok(report) if report.expired > 0 || report.released_reals > 0 => {
            tracing::info!(
                flows = report.flows_seen,
                expired = report.expired,
                released_reals = report.released_reals,
                "aged the connection table"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "ageing the connection table"),
    }
}

/// One event; false on shutdown.
fn handle(controller: &mut Controller, host: &mut Host, event: Event) -> bool {
    match event {
        Event::Shutdown => return false,
        Event::Admin(request, reply) => answer(controller, host, request, reply),
        Event::Role { master, handover } => {
            // Set first: the clients are switching over right now.
            hand_over(controller, handover);
            if master {
                // Rebuild the least-connection counts: flows written by the
                // sync are not in them.
                let (timeouts, context) = controller.ageing_job();
                host.table.age(timeouts, context);
            }
        }
        Event::Aged(walked, context) => {
            host.table.aged();
            finish_ageing(controller, walked.map(|plan| *plan), &context);
        }
        Event::Reload => {
            host.notify.reloading();
            let result = controller.reload();
            host.metrics.observe_reload(result.is_ok(), unix_now());
            host.notify.reloaded(controller, result.is_ok());
            log_reload(result);
        }
        Event::Scrape(reply) => {
            let text = match controller.snapshot() {
                Ok(snapshot) => host.metrics.render(&snapshot),
                Err(e) => format!("# lbd could not read its maps: {e}\n"),
            };
            let _ = reply.send(text);
        }
        Event::StatusPage { since, reply } => {
            let json = host
                .page
                .answer(controller, &host.vrrp_status(), &host.ecmp_status(), since)
                .map_err(|e| e.to_string());
            let _ = reply.send(json);
        }
        Event::Mac(ip, mac) => match controller.set_mac(ip, mac) {
            Ok(services) if !services.is_empty() => match mac {
                Some(mac) => tracing::info!(
                    real = %ip,
                    mac = %config::format_mac(mac),
                    services = services.len(),
                    "real's MAC resolved: in rotation"
                ),
                None => tracing::warn!(
                    real = %ip,
                    "real's MAC is no longer resolvable: no new connections until it is \
                     (established flows continue)"
                ),
            },
            Ok(_) => {}
            Err(e) => tracing::error!(real = %ip, error = %e, "updating a real's MAC"),
        },
        Event::Health(event) => {
            let changed = controller.on_health(&event);
            host.page.observe_health(&event);
            if let Some(t) = event.transition {
                let reason = event.reason.as_deref().unwrap_or("");
                if t.to == Health::Down {
                    tracing::warn!(
                        service = %event.key.service,
                        real = %event.key.real,
                        reason,
                        "real DOWN: out of rotation"
                    );
                } else {
                    tracing::info!(
                        service = %event.key.service,
                        real = %event.key.real,
                        reason,
                        "real UP: in rotation"
                    );
                }
            }
            if let Err(e) = changed {
                tracing::error!(real = %event.key.real, error = %e, "applying a health change");
            }
        }
    }
    true
}

/// Answers one admin request, logging changes (reads are not logged).
fn answer(
    controller: &mut Controller,
    host: &mut Host,
    request: Request,
    reply: oneshot::Sender<Response>,
) {
    let summary = format!("{request:?}");
    let is_change = request.is_change();
    let is_reload = request == Request::Reload;
    if is_reload {
        host.notify.reloading();
    }
    let Some(response) = dispatch(controller, host, request, reply) else {
        return;
    };
    let (response, reply) = response;
    let response = response.unwrap_or_else(Response::failure);
    if is_reload {
        host.metrics.observe_reload(response.ok, unix_now());
        host.notify.reloaded(controller, response.ok);
    }
    if is_change {
        match &response.error {
            None => tracing::info!(request = %summary, "lbctl change applied"),
            Some(e) => tracing::warn!(request = %summary, error = %e, "lbctl change refused"),
        }
    }
    let _ = reply.send(response);
}

/// Every admin request, answered in this one place: reads and changes by
/// the controller, health states by the checker, VRRP by the failover;
/// `flows` by the table thread (which then replies itself: `None` here).
fn dispatch(
    controller: &mut Controller,
    host: &mut Host,
    request: Request,
    reply: oneshot::Sender<Response>,
) -> Option<(Result<Response, ControlError>, oneshot::Sender<Response>)> {
    let response = match request {
        Request::Status => controller.status().map(Response::success),
        Request::Flows {
            service,
            real,
            limit,
        } => match controller.flow_view(service.as_deref(), real.as_deref(), limit) {
            Ok(view) => {
                host.table.flows(view, reply);
                return None;
            }
            Err(e) => Err(e),
        },
        Request::Trace {
            protocol,
            client,
            service,
        } => controller
            .trace(&protocol, &client, &service)
            .map(Response::success),
        Request::Health => Ok(Response::success(health_report(&host.checker, controller))),
        Request::Vrrp => Ok(Response::success(host.vrrp_status())),
        Request::Director => Ok(Response::success(host.ecmp_status())),
        Request::DirectorDrain { drain } => Ok(host.drain_director(controller, drain)),
        Request::Reload => controller.reload_request().map(Response::success),
        Request::AddService {
            service,
            scheduler,
            table_size,
        } => controller
            .add_service(&service, scheduler.as_deref(), table_size)
            .map(Response::success),
        Request::RemoveService { service } => {
            controller.remove_service(&service).map(Response::success)
        }
        Request::AddReal {
            service,
            real,
            weight,
            backup,
            mac,
        } => controller
            .add_real(&service, &real, weight, backup, mac)
            .map(Response::success),
        Request::RemoveReal { service, real } => controller
            .remove_real(&service, &real)
            .map(Response::success),
        Request::SetWeight {
            service,
            real,
            weight,
        } => controller
            .set_weight(&service, &real, weight)
            .map(Response::success),
        Request::Drain { service, real } => {
            controller.drain(&service, &real).map(Response::success)
        }
    };
    Some((response, reply))
}
