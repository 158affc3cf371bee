//! Keeps real MACs in step with the kernel's neighbour table: resolves
//! missing or stale entries (the XDP path never refreshes them, since the
//! kernel sends nothing to the reals) and reports MAC changes.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    net::IpAddr,
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::netlink::{MacTracker, Netlink};

use crate::daemon::{Event, Wanted};

/// Routes are looked up again this often (in rounds), in case addressing
/// changed.
const ROUTE_REFRESH_ROUNDS: u32 = 30;

pub struct Resolver {
    /// Interfaces the data path forwards on: a real must be on-link on one.
    on_link: Vec<u32>,
    tracker: MacTracker,
    /// Real -> interface it is on-link on (`None`: not reachable directly).
    routes: HashMap<IpAddr, Option<u32>>,
    warned: HashSet<IpAddr>,
    rounds: u32,
}

impl Resolver {
    pub fn new(on_link: Vec<u32>) -> Self {
        Self {
            on_link,
            tracker: MacTracker::new(),
            routes: HashMap::new(),
            warned: HashSet::new(),
            rounds: 0,
        }
    }

    /// One pass: returns the MAC changes of wanted reals.
    pub fn round(
        &mut self,
        netlink: &mut Netlink,
        wanted: &BTreeSet<IpAddr>,
    ) -> Vec<(IpAddr, Option<[u8; 6]>)> {
        self.rounds += 1;
        if self.rounds.is_multiple_of(ROUTE_REFRESH_ROUNDS) {
            self.routes.clear();
        }
        let mut targets = Vec::new();
        for ip in wanted {
            let route = *self
                .routes
                .entry(*ip)
                .or_insert_with(|| match netlink.route_to(*ip) {
                    Ok(Some(route))
                        if route.gateway.is_none() && self.on_link.contains(&route.ifindex) =>
                    {
                        Some(route.ifindex)
                    }
                    Ok(route) => {
                        if self.warned.insert(*ip) {
                            tracing::warn!(
                                real = %ip,
                                ?route,
                                "real is not on-link on an attached interface; direct routing \
                                 needs it on the same L2 segment: kept out of rotation"
                            );
                        }
                        None
                    }
                    Err(e) => {
                        tracing::warn!(real = %ip, error = %e, "route lookup");
                        None
                    }
                });
            if let Some(ifindex) = route {
                targets.push((ifindex, *ip));
            }
        }
        self.routes.retain(|ip, _| wanted.contains(ip));
        self.tracker.set_wanted(targets);
        let dump = match netlink.neighbours() {
            Ok(dump) => dump,
            Err(e) => {
                tracing::warn!(error = %e, "reading the neighbour table");
                return Vec::new();
            }
        };
        let update = self.tracker.update(&dump);
        for (ifindex, ip) in &update.to_resolve {
            if let Err(e) = netlink.resolve(*ifindex, *ip) {
                tracing::debug!(real = %ip, error = %e, "asking the kernel to resolve");
            }
        }
        update
            .changes
            .into_iter()
            .map(|change| (change.addr, change.new))
            .collect()
    }

    /// Whether some wanted real (on-link) still has no MAC.
    pub fn pending(&self, wanted: &BTreeSet<IpAddr>) -> bool {
        wanted.iter().any(|ip| {
            self.routes.get(ip).is_some_and(Option::is_some) && self.tracker.mac(*ip).is_none()
        })
    }

    /// Rounds until every wanted real has a MAC or `budget` passes: used at
    /// startup so reals are in rotation from the first connection.
    pub fn settle(
        &mut self,
        netlink: &mut Netlink,
        wanted: &BTreeSet<IpAddr>,
        budget: Duration,
    ) -> Vec<(IpAddr, Option<[u8; 6]>)> {
        let deadline = Instant::now() + budget;
        let mut changes = self.round(netlink, wanted);
        while self.pending(wanted) && Instant::now() < deadline {
            std::thread::sleep(PENDING_RECHECK);
            changes.extend(self.round(netlink, wanted));
        }
        changes
    }
}

/// While resolutions are pending, look again this soon: ARP/ND answers on
/// a LAN take well under a millisecond, and a real added with `lbctl` should
/// take connections within tens of milliseconds, not a refresh period.
const PENDING_RECHECK: Duration = Duration::from_millis(5);
/// Quick re-checks after a change before falling back to the refresh period.
const PENDING_ROUNDS: u32 = 40;

/// The neighbour thread: a round every `refresh`, at once when woken (the
/// wanted set changed), and quickly again while resolutions are pending.
/// Ends when the waker's sender is dropped.
pub fn run(
    mut resolver: Resolver,
    mut netlink: Netlink,
    wanted: &Wanted,
    events: &mpsc::Sender<Event>,
    refresh: Duration,
    wake: &mpsc::Receiver<()>,
) {
    let mut quick_rounds = 0;
    loop {
        let wait = if quick_rounds > 0 {
            PENDING_RECHECK
        } else {
            refresh
        };
        match wake.recv_timeout(wait) {
            Ok(()) => quick_rounds = PENDING_ROUNDS,
            Err(mpsc::RecvTimeoutError::Timeout) => quick_rounds = quick_rounds.saturating_sub(1),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let current = wanted.lock().expect("wanted lock").clone();
        for (ip, mac) in resolver.round(&mut netlink, &current) {
            if events.send(Event::Mac(ip, mac)).is_err() {
                return;
            }
        }
        if !resolver.pending(&current) {
            quick_rounds = 0;
        }
    }
}
