//! The VRRP thread: the state machine driven by sockets, timers, the link
//! state and the controller's commands.

use std::{
    collections::{BTreeSet, VecDeque},
    net::IpAddr,
    os::{fd::AsRawFd, unix::net::UnixDatagram},
    sync::{Arc, Mutex, atomic::Ordering, mpsc},
    time::{Duration, Instant, SystemTime},
};

use lb_daemon::{
    admin::{VrrpStatus, VrrpTransition},
    config::VrrpConfig,
    metrics::Metrics,
    netlink::Netlink,
    vrrp::{
        Action, Advertisement, Router, State,
        announce::Announcer,
        socket::{self, VrrpSocket},
    },
};

use super::{Command, Interface, Shared, SyncFlags};
use crate::vips::host_prefix;

/// How often the link state is read.
const LINK_CHECK: Duration = Duration::from_millis(100);
/// Gratuitous ARPs / NAs after taking over: at once and once more a second
/// later, for hosts that missed the first (keepalived repeats after 5 s).
const ANNOUNCE_AGAIN: Duration = Duration::from_secs(1);
/// Transitions kept for `lbctl vrrp`.
const HISTORY: usize = 16;

/// What the thread starts from.
pub(super) struct Parts {
    pub cfg: VrrpConfig,
    pub iface: Interface,
    pub router: Router,
    pub socket: VrrpSocket,
    pub announcer: Announcer,
    pub netlink: Netlink,
    pub vips: BTreeSet<IpAddr>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Mutex<Shared>>,
    pub sync: Arc<SyncFlags>,
    /// Called on every transition to master.
    pub on_master: Box<dyn Fn() + Send>,
}

/// Runs the router until a `Stop` command.
pub(super) fn run(parts: Parts, inbox: &mpsc::Receiver<Command>, wake: &UnixDatagram) {
    let wait_for_table = parts.cfg.sync.as_ref().map(|s| s.wait_before_preempt);
    let mut vrrp = Vrrp {
        cfg: parts.cfg,
        iface: parts.iface,
        router: parts.router,
        socket: parts.socket,
        announcer: parts.announcer,
        netlink: parts.netlink,
        vips: parts.vips,
        held: BTreeSet::new(),
        metrics: parts.metrics,
        status: parts.status,
        sync: parts.sync,
        on_master: parts.on_master,
        wait_for_table,
        table_deadline: None,
        link_up: true,
        announce_at: VecDeque::new(),
        last_heard: None,
    };
    vrrp.run(inbox, wake);
}

/// The thread's state.
struct Vrrp {
    cfg: VrrpConfig,
    iface: Interface,
    router: Router,
    socket: VrrpSocket,
    announcer: Announcer,
    netlink: Netlink,
    /// VIPs of the running config.
    vips: BTreeSet<IpAddr>,
    /// VIPs on the interface now.
    held: BTreeSet<IpAddr>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<Shared>>,
    sync: Arc<SyncFlags>,
    on_master: Box<dyn Fn() + Send>,
    /// With `[vrrp.sync]`: how long to hold preemption for the peer's table.
    wait_for_table: Option<Duration>,
    table_deadline: Option<Instant>,
    link_up: bool,
    /// When to announce the VIPs (again).
    announce_at: VecDeque<Instant>,
    /// The last valid advertisement: when, from whom, which priority.
    last_heard: Option<(Instant, IpAddr, u8)>,
}

impl Vrrp {
    fn run(&mut self, inbox: &mpsc::Receiver<Command>, wake: &UnixDatagram) {
        self.link_up = self.read_link().unwrap_or(true);
        if self.link_up {
            self.start("started");
        } else {
            self.fault();
        }
        let mut next_link_check = Instant::now() + LINK_CHECK;
        loop {
            let now = Instant::now();
            let mut deadline = next_link_check;
            for t in [
                self.router.next_deadline(),
                self.announce_at.front().copied(),
                self.table_deadline,
            ]
            .into_iter()
            .flatten()
            {
                deadline = deadline.min(t);
            }
            wait(&self.socket, wake, deadline.saturating_duration_since(now));
            while wake.recv(&mut [0; 16]).is_ok() {}
            while let Ok(command) = inbox.try_recv() {
                match command {
                    Command::Vips(vips) => self.set_vips(vips),
                    Command::TableReceived(wait) => {
                        if wait == self.sync.wait.load(Ordering::Relaxed) {
                            self.release_hold("the peer's table arrived");
                        }
                    }
                    Command::Stop => {
                        let actions = self.router.shutdown(Instant::now());
                        self.perform(&actions, "lbd stopping (sent priority 0)");
                        return;
                    }
                }
            }
            self.receive();
            let now = Instant::now();
            if now >= next_link_check {
                next_link_check = now + LINK_CHECK;
                self.check_link();
            }
            if self.table_deadline.is_some_and(|t| now >= t) {
                tracing::warn!(
                    "VRRP: the peer's connection table did not arrive in time; \
                     preempting anyway (flows the peer holds may move)"
                );
                self.release_hold("waited long enough for the peer's table");
            }
            let reason = self.timer_reason(now);
            let actions = self.router.on_timer(now);
            self.perform(&actions, &reason);
            while self.announce_at.front().is_some_and(|t| now >= *t) {
                self.announce_at.pop_front();
                if self.router.state() == State::Master {
                    self.announce();
                }
            }
        }
    }

    /// Why the timer makes us master: the master went silent, or we
    /// preempt a lower-priority one we still hear.
    fn timer_reason(&self, now: Instant) -> String {
        let master_down = self.router.master_down_interval();
        match self.last_heard {
            Some((at, from, priority))
                if now.duration_since(at) < master_down && priority < self.cfg.priority =>
            {
                format!(
                    "preempting {from} (priority {priority} < ours {})",
                    self.cfg.priority
                )
            }
            _ => format!(
                "no advertisement from the master for {} ms",
                master_down.as_millis()
            ),
        }
    }

    fn start(&mut self, reason: &str) {
        if let Some(wait) = self.wait_for_table {
            self.router.set_preempt_hold(true);
            self.sync.wait.fetch_add(1, Ordering::Relaxed);
            self.sync.want_table.store(true, Ordering::Relaxed);
            self.table_deadline = Some(Instant::now() + wait);
            self.update(|s| s.preempt_held = true);
        }
        let actions = self.router.start(Instant::now());
        self.perform(&actions, reason);
    }

    fn release_hold(&mut self, why: &str) {
        if self.table_deadline.take().is_some() {
            tracing::info!(why, "VRRP: preemption allowed");
        }
        self.router.set_preempt_hold(false);
        self.sync.want_table.store(false, Ordering::Relaxed);
        self.update(|s| s.preempt_held = false);
    }

    /// Reads every queued advertisement.
    fn receive(&mut self) {
        let unicast = !self.cfg.unicast_peers.is_empty();
        loop {
            let received = match self.socket.recv() {
                Ok(Some(r)) => r,
                Ok(None) => return,
                // One malformed datagram was consumed: read on.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    self.update(|s| s.advertisements_rejected += 1);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "VRRP receive");
                    return;
                }
            };
            if !self.link_up {
                continue;
            }
            match socket::check(&received, self.cfg.vrid, unicast) {
                Ok(adv) => {
                    self.update(|s| s.advertisements_received += 1);
                    // A stopping master's priority 0 is no one to preempt.
                    self.last_heard =
                        (adv.priority > 0).then(|| (Instant::now(), received.src, adv.priority));
                    let before = self.router.state();
                    let actions = self.router.on_advertisement(
                        Instant::now(),
                        adv.priority,
                        adv.max_advert_int_cs,
                        received.src,
                    );
                    let reason = match (before, adv.priority) {
                        (_, 0) => format!("{} is stopping (priority 0)", received.src),
                        (State::Master, p) => format!(
                            "advertisement from {} with priority {p} (ours {})",
                            received.src, self.cfg.priority
                        ),
                        (_, p) => format!("{} advertises priority {p}", received.src),
                    };
                    self.perform(&actions, &reason);
                }
                Err(socket::Rejected::OtherVrid(_)) => {}
                Err(e) => {
                    self.update(|s| s.advertisements_rejected += 1);
                    tracing::debug!(from = %received.src, error = %e, "VRRP advertisement dropped");
                }
            }
        }
    }

    fn perform(&mut self, actions: &[Action], reason: &str) {
        for action in actions {
            match *action {
                Action::SendAdvertisement { priority } => self.advertise(priority),
                Action::BecomeMaster => {
                    self.sync.is_master.store(true, Ordering::Relaxed);
                    self.hold_vips();
                    self.announce_at.clear();
                    self.announce();
                    self.announce_at.push_back(Instant::now() + ANNOUNCE_AGAIN);
                    self.transition("master", reason);
                    (self.on_master)();
                }
                Action::BecomeBackup => {
                    self.sync.is_master.store(false, Ordering::Relaxed);
                    self.release_vips();
                    self.transition("backup", reason);
                }
                Action::BecomeInitialize => {
                    self.sync.is_master.store(false, Ordering::Relaxed);
                    self.release_vips();
                    let to = if self.link_up { "initialize" } else { "fault" };
                    self.transition(to, reason);
                }
            }
        }
        let master = self.router.master_addr().map(|a| a.to_string());
        self.update(|s| s.master = master);
    }

    fn advertise(&mut self, priority: u8) {
        let adv = Advertisement {
            vrid: self.cfg.vrid,
            priority,
            max_advert_int_cs: self.cfg.advert_interval_cs(),
            addresses: self
                .vips
                .iter()
                .copied()
                .filter(|ip| self.cfg.family.contains(*ip))
                .collect(),
        };
        match self.socket.send(&adv) {
            Ok(()) => self.update(|s| s.advertisements_sent += 1),
            // Link going down: the link check turns it into a fault.
            Err(e) => tracing::debug!(error = %e, "sending a VRRP advertisement"),
        }
    }

    fn transition(&mut self, to: &str, reason: &str) {
        let is_master = to == "master";
        if is_master || to == "fault" {
            tracing::warn!(
                vrid = self.cfg.vrid,
                reason,
                "VRRP: now {}",
                to.to_uppercase()
            );
        } else {
            tracing::info!(
                vrid = self.cfg.vrid,
                reason,
                "VRRP: now {}",
                to.to_uppercase()
            );
        }
        self.metrics.set_vrrp_state(self.cfg.vrid, to, true);
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut shared = self.status.lock().expect("vrrp status lock");
        shared.entered = Instant::now();
        let status = &mut shared.status;
        status.state = to.into();
        status.history.push(VrrpTransition {
            at,
            to: to.into(),
            reason: reason.into(),
        });
        if status.history.len() > HISTORY {
            status.history.remove(0);
        }
    }

    fn set_vips(&mut self, vips: BTreeSet<IpAddr>) {
        self.vips = vips;
        if self.router.state() == State::Master {
            let added: Vec<IpAddr> = self.vips.difference(&self.held).copied().collect();
            self.hold_vips();
            if let Err(e) = self.announcer.announce(&added) {
                tracing::warn!(error = %e, "announcing new VIPs");
            }
        }
    }

    /// Adds the VIPs (and removes ones no longer configured).
    fn hold_vips(&mut self) {
        for ip in self.vips.clone() {
            match self
                .netlink
                .add_address(self.iface.index, ip, host_prefix(ip))
            {
                Ok(()) => {
                    self.held.insert(ip);
                }
                Err(e) => tracing::error!(vip = %ip, error = %e, "adding VIP address"),
            }
        }
        let gone: Vec<IpAddr> = self.held.difference(&self.vips).copied().collect();
        for ip in gone {
            self.remove_vip(ip);
        }
    }

    fn release_vips(&mut self) {
        for ip in self.held.clone() {
            self.remove_vip(ip);
        }
    }

    fn remove_vip(&mut self, ip: IpAddr) {
        match self
            .netlink
            .remove_address(self.iface.index, ip, host_prefix(ip))
        {
            Ok(()) => {
                self.held.remove(&ip);
            }
            Err(e) => tracing::error!(vip = %ip, error = %e, "removing VIP address"),
        }
    }

    /// Gratuitous ARP / unsolicited NA for every held VIP: clients and
    /// routers point the VIPs at this director's MAC now.
    fn announce(&mut self) {
        let held: Vec<IpAddr> = self.held.iter().copied().collect();
        if let Err(e) = self.announcer.announce(&held) {
            tracing::warn!(error = %e, "announcing the VIPs");
        }
    }

    fn read_link(&mut self) -> Option<bool> {
        match self.netlink.link_is_up(self.iface.index) {
            Ok(up) => Some(up),
            Err(e) => {
                tracing::warn!(interface = %self.iface.name, error = %e, "reading the link state");
                None
            }
        }
    }

    fn check_link(&mut self) {
        let Some(up) = self.read_link() else { return };
        if up == self.link_up {
            return;
        }
        self.link_up = up;
        if up {
            tracing::info!(interface = %self.iface.name, "link up: VRRP starts as backup");
            self.start("link up");
        } else {
            self.fault();
        }
    }

    /// Link down: stop advertising and release the VIPs (the peer takes
    /// over when our advertisements stop).
    fn fault(&mut self) {
        self.link_up = false;
        // No table to wait for while the link is down; link up starts a
        // new wait.
        self.table_deadline = None;
        self.sync.want_table.store(false, Ordering::Relaxed);
        let mut actions = self.router.shutdown(Instant::now());
        // No priority 0: the link cannot carry it.
        actions.retain(|a| !matches!(a, Action::SendAdvertisement { .. }));
        if actions.is_empty() {
            // Never started: record the state all the same.
            actions.push(Action::BecomeInitialize);
        }
        let reason = format!("link {} down", self.iface.name);
        self.perform(&actions, &reason);
    }

    fn update(&self, f: impl FnOnce(&mut VrrpStatus)) {
        f(&mut self.status.lock().expect("vrrp status lock").status);
    }
}

/// Sleeps until the VRRP socket or the wake-up socket is readable, or
/// `timeout` passes.
fn wait(socket: &VrrpSocket, wake: &UnixDatagram, timeout: Duration) {
    let mut fds = [
        libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // Round up: waking a little early would only loop once more.
    let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: `fds` is a valid array of two pollfd for the whole call.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
}
