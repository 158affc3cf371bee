//! `[ecmp]`: keeps lbd's routing table in step with [`crate::ecmp::decide`]
//! — one host route per VIP this director is ready to serve, which the
//! routing daemon (BIRD) announces to the router. Runs on the controller
//! thread: after every event the inputs are gathered again, and netlink is
//! only touched when a VIP's state changes.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Instant, SystemTime},
};

use anyhow::Context;

use crate::{
    admin::{EcmpStatus, VipAnnouncement, VipTransition, unix_seconds},
    config::EcmpConfig,
    ecmp::{Conditions, ServiceHealth, VipState, decide},
    metrics::Metrics,
    netlink::{Netlink, NetlinkError},
};

/// While learning, how often the sharing's "every peer's table arrived"
/// flag is looked at.
const LEARN_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Announcement changes kept for `lbctl director`.
const HISTORY: usize = 32;

pub(crate) struct Announcer {
    table: u32,
    /// The loopback's index: the routes' interface.
    lo: u32,
    /// Until then, without word from the peers, nothing is announced.
    learn_until: Instant,
    /// Set by the flow sharing once every peer's table has arrived; `None`
    /// without `[ecmp.sync]` (nothing to wait for).
    peers_learned: Option<Arc<AtomicBool>>,
    drained: bool,
    stopping: bool,
    states: BTreeMap<IpAddr, (VipState, Instant)>,
    /// VIPs whose route is in the table.
    routed: BTreeSet<IpAddr>,
    history: VecDeque<VipTransition>,
    metrics: Arc<Metrics>,
}

impl Announcer {
    /// Takes over `ecmp.table`: every route already in it goes (a killed
    /// lbd's, or anyone else's: the table is lbd's alone); nothing is
    /// announced before the first [`Announcer::update`].
    pub(crate) fn start(
        cfg: &EcmpConfig,
        netlink: &mut Netlink,
        peers_learned: Option<Arc<AtomicBool>>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let lo = netlink
            .link_index("lo")
            .context("finding the loopback interface for the VIP routes")?;
        let existing = netlink
            .routes_in_table(cfg.table)
            .with_context(|| format!("reading routing table {}", cfg.table))?;
        for route in existing {
            tracing::info!(
                table = cfg.table,
                route = %format!("{}/{}", route.destination, route.prefix_len),
                ours = route.ours,
                "removing a route left in lbd's table"
            );
            netlink
                .remove_table_route(cfg.table, route.destination, route.prefix_len)
                .with_context(|| format!("clearing routing table {}", cfg.table))?;
        }
        // Without peers to learn from there is nothing to wait for.
        let learn_until = if peers_learned.is_some() {
            Instant::now() + cfg.learn_delay
        } else {
            Instant::now()
        };
        Ok(Self {
            table: cfg.table,
            lo,
            learn_until,
            peers_learned,
            drained: false,
            stopping: false,
            states: BTreeMap::new(),
            routed: BTreeSet::new(),
            history: VecDeque::new(),
            metrics,
        })
    }

    fn learned(&self) -> bool {
        Instant::now() >= self.learn_until
            || self
                .peers_learned
                .as_ref()
                .is_none_or(|flag| flag.load(Ordering::Relaxed))
    }

    /// When the controller loop must call [`Announcer::update`] even if no
    /// event comes: while learning, every [`LEARN_POLL`] (the peers' tables
    /// may arrive any time) and at the end of the learn delay.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        (!self.learned()).then(|| self.learn_until.min(Instant::now() + LEARN_POLL))
    }

    pub(crate) fn set_drained(&mut self, drained: bool) {
        self.drained = drained;
    }

    /// Decides every VIP again and adds or removes the routes that changed.
    pub(crate) fn update(&mut self, netlink: &mut Netlink, services: &[ServiceHealth]) {
        let conditions = Conditions {
            stopping: self.stopping,
            drained: self.drained,
            learned: self.learned(),
        };
        let decided = decide(conditions, services);
        let now = Instant::now();
        for (vip, state) in &decided {
            let changed = self.states.get(vip).is_none_or(|(old, _)| old != state);
            if changed {
                tracing::info!(vip = %vip, state = %state, "VIP announcement");
                self.history.push_back(VipTransition {
                    at: unix_seconds(SystemTime::now()),
                    vip: vip.to_string(),
                    state: state.to_string(),
                });
                while self.history.len() > HISTORY {
                    self.history.pop_front();
                }
                self.states.insert(*vip, (state.clone(), now));
            }
        }
        let gone: Vec<IpAddr> = self
            .states
            .keys()
            .filter(|vip| !decided.contains_key(vip))
            .copied()
            .collect();
        for vip in gone {
            // No service left on it: its series goes.
            self.states.remove(&vip);
            self.metrics.set_vip_announced(vip, None);
        }
        let want: BTreeSet<IpAddr> = decided
            .iter()
            .filter(|(_, s)| s.is_announced())
            .map(|(vip, _)| *vip)
            .collect();
        self.reconcile(netlink, &want);
        for vip in decided.keys() {
            self.metrics
                .set_vip_announced(*vip, Some(self.routed.contains(vip)));
        }
    }

    /// Withdraws every VIP (a graceful stop: before anything else stops).
    pub(crate) fn withdraw_all(&mut self, netlink: &mut Netlink) {
        self.stopping = true;
        self.reconcile(netlink, &BTreeSet::new());
        for vip in self.states.keys() {
            self.metrics
                .set_vip_announced(*vip, Some(self.routed.contains(vip)));
        }
    }

    fn reconcile(&mut self, netlink: &mut Netlink, want: &BTreeSet<IpAddr>) {
        for vip in want.difference(&self.routed.clone()) {
            match netlink.add_vip_route(self.table, self.lo, *vip) {
                Ok(()) => {
                    self.routed.insert(*vip);
                }
                Err(e) => log_route_error("adding", *vip, &e),
            }
        }
        for vip in self.routed.clone().difference(want) {
            let prefix = if vip.is_ipv4() { 32 } else { 128 };
            match netlink.remove_table_route(self.table, *vip, prefix) {
                Ok(()) => {
                    self.routed.remove(vip);
                }
                Err(e) => log_route_error("removing", *vip, &e),
            }
        }
    }

    /// Puts back routes someone removed from the table behind lbd's back
    /// (and forgets ones that vanished), so the table says what lbd wants.
    pub(crate) fn audit(&mut self, netlink: &mut Netlink) {
        let present: BTreeSet<IpAddr> = match netlink.routes_in_table(self.table) {
            Ok(routes) => routes.into_iter().map(|r| r.destination).collect(),
            Err(e) => {
                tracing::warn!(table = self.table, error = %e, "reading lbd's routing table");
                return;
            }
        };
        let missing: Vec<IpAddr> = self.routed.difference(&present).copied().collect();
        for vip in missing {
            tracing::warn!(vip = %vip, "the VIP's route vanished from lbd's table: adding it again");
            self.routed.remove(&vip);
        }
        let want: BTreeSet<IpAddr> = self
            .states
            .iter()
            .filter(|(_, (s, _))| s.is_announced() && !self.stopping)
            .map(|(vip, _)| *vip)
            .collect();
        self.reconcile(netlink, &want);
    }

    pub(crate) fn status(&self) -> EcmpStatus {
        EcmpStatus {
            enabled: true,
            table: self.table,
            drained: self.drained,
            learned: self.learned(),
            vips: self
                .states
                .iter()
                .map(|(vip, (state, since))| VipAnnouncement {
                    vip: vip.to_string(),
                    announced: self.routed.contains(vip),
                    state: state.to_string(),
                    for_seconds: since.elapsed().as_secs_f64(),
                })
                .collect(),
            history: self.history.iter().cloned().collect(),
            // The controller adds the sharing thread's.
            share: None,
        }
    }
}

fn log_route_error(what: &str, vip: IpAddr, error: &NetlinkError) {
    tracing::error!(vip = %vip, error = %error, "{what} the VIP's route (retried at the next change)");
}
