//! The VRRP thread: the state machine driven by sockets, timers, the link
//! state and the controller's commands.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    os::{fd::AsRawFd, unix::net::UnixDatagram},
    sync::{Arc, Mutex, atomic::Ordering, mpsc},
    time::{Duration, Instant, SystemTime},
};

use crate::{
    admin::{Transition, VrrpStatus, unix_seconds},
    config::VrrpConfig,
    metrics::Metrics,
    netlink::Netlink,
    vrrp::{
        Action, Advertisement, Router, State,
        announce::Announcer,
        socket::{self, VrrpSocket},
    },
};

use super::{Command, Interface, Shared, SyncFlags, echo::EchoProbe, handover, handover::Handover};
use crate::daemon::vips;

/// How often the link state is read.
const LINK_CHECK: Duration = Duration::from_millis(100);
/// Gratuitous ARPs / NAs after taking over: at once and once more a second
/// later, for hosts that missed the first (keepalived repeats after 5 s).
const ANNOUNCE_AGAIN: Duration = Duration::from_secs(1);
/// How long a new master waits for the echo reply of a previous master
/// that went silent before it stops handing it packets (see `echo.rs`).
const ECHO_WAIT: Duration = Duration::from_millis(150);
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
    /// Called on every change of role (master or not) and whenever the
    /// handover changes.
    pub on_role: Box<dyn Fn(bool, Handover) + Send>,
}

/// Runs the router until a `Stop` command.
pub(super) fn run(parts: Parts, inbox: &mpsc::Receiver<Command>, wake: &UnixDatagram) {
    let parts_v6 = parts.cfg.family == crate::config::VrrpFamily::Ipv6;
    let mut vrrp = Vrrp {
        wait_for_table: parts.cfg.sync.as_ref().map(|s| s.wait_before_preempt),
        p: parts,
        held: BTreeSet::new(),
        table_deadline: None,
        link_up: true,
        announce_again: None,
        last_heard: None,
        last_master: None,
        peer_mac: None,
        told_backup_mac: None,
        echo: EchoProbe::open(parts_v6)
            .inspect_err(
                |e| tracing::warn!(error = %e, "VRRP: no ICMP socket to ask a silent master"),
            )
            .ok(),
        echo_pending: None,
    };
    vrrp.run(inbox, wake);
}

/// The thread's state.
struct Vrrp {
    p: Parts,
    /// VIPs on the interface now.
    held: BTreeSet<IpAddr>,
    /// With `[vrrp.sync]`: how long to hold preemption for the peer's table.
    wait_for_table: Option<Duration>,
    table_deadline: Option<Instant>,
    link_up: bool,
    /// When to announce the VIPs once more after taking over.
    announce_again: Option<Instant>,
    /// The last valid advertisement: when, from whom, which priority.
    last_heard: Option<(Instant, IpAddr, u8)>,
    /// The last director heard advertising (priority 0 included): when,
    /// and its address. The one to hand over from when taking over.
    last_master: Option<(Instant, IpAddr)>,
    /// Its MAC, once the kernel has resolved it.
    peer_mac: Option<[u8; 6]>,
    /// The master's MAC the controller was last given as backup.
    told_backup_mac: Option<[u8; 6]>,
    /// Asks a previous master that went silent whether it is there.
    echo: Option<EchoProbe>,
    /// An echo sent: until when to wait, to whom, and its MAC.
    echo_pending: Option<(Instant, IpAddr, [u8; 6])>,
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
                self.p.router.next_deadline(),
                self.announce_again,
                self.table_deadline,
                self.echo_pending.map(|(until, _, _)| until),
            ]
            .into_iter()
            .flatten()
            {
                deadline = deadline.min(t);
            }
            let mut fds = vec![self.p.socket.as_raw_fd(), wake.as_raw_fd()];
            fds.extend(self.echo.as_ref().map(EchoProbe::fd));
            crate::daemon::poll::wait_readable(&fds, deadline.saturating_duration_since(now));
            self.check_echo();
            while wake.recv(&mut [0; 16]).is_ok() {}
            while let Ok(command) = inbox.try_recv() {
                match command {
                    Command::Vips(vips) => self.set_vips(vips),
                    Command::TableReceived(wait) => {
                        if wait == self.p.sync.wait.load(Ordering::Relaxed) {
                            self.release_hold("the peer's table arrived");
                        }
                    }
                    Command::Stop => {
                        let actions = self.p.router.shutdown(Instant::now());
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
                self.tell_backup_handover();
            }
            if self.table_deadline.is_some_and(|t| now >= t) {
                tracing::warn!(
                    "VRRP: the peer's connection table did not arrive in time; \
                     preempting anyway (flows the peer holds may move)"
                );
                self.release_hold("waited long enough for the peer's table");
            }
            let reason = self.timer_reason(now);
            let actions = self.p.router.on_timer(now);
            self.perform(&actions, &reason);
            if self.announce_again.is_some_and(|t| now >= t) {
                self.announce_again = None;
                if self.p.router.state() == State::Master {
                    self.announce();
                }
            }
        }
    }

    /// Why the timer makes us master: the master went silent, or we
    /// preempt a lower-priority one we still hear.
    fn timer_reason(&self, now: Instant) -> String {
        let master_down = self.p.router.master_down_interval();
        match self.last_heard {
            Some((at, from, priority))
                if now.duration_since(at) < master_down && priority < self.p.cfg.priority =>
            {
                format!(
                    "preempting {from} (priority {priority} < ours {})",
                    self.p.cfg.priority
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
            self.p.router.set_preempt_hold(true);
            self.p.sync.wait.fetch_add(1, Ordering::Relaxed);
            self.p.sync.want_table.store(true, Ordering::Relaxed);
            self.table_deadline = Some(Instant::now() + wait);
            self.update(|s| s.preempt_held = true);
        }
        let now = Instant::now();
        // After a fault the link-up event starts it, else the startup event.
        let actions = if self.p.router.state() == State::Fault {
            self.p.router.link_up(now)
        } else {
            self.p.router.start(now)
        };
        self.perform(&actions, reason);
    }

    fn release_hold(&mut self, why: &str) {
        if self.table_deadline.take().is_some() {
            tracing::info!(why, "VRRP: preemption allowed");
        }
        self.p.router.set_preempt_hold(false);
        self.p.sync.want_table.store(false, Ordering::Relaxed);
        self.update(|s| s.preempt_held = false);
    }

    /// Reads every queued advertisement.
    fn receive(&mut self) {
        let unicast = !self.p.cfg.unicast_peers.is_empty();
        loop {
            let received = match self.p.socket.recv() {
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
            match socket::check(&received, self.p.cfg.vrid, unicast) {
                Ok(adv) => {
                    self.update(|s| s.advertisements_received += 1);
                    // A stopping master's priority 0 is no one to preempt.
                    self.last_heard =
                        (adv.priority > 0).then(|| (Instant::now(), received.src, adv.priority));
                    if self.last_master.is_none_or(|(_, ip)| ip != received.src) {
                        // Adverts are multicast: no neighbour entry comes of
                        // them. Have the kernel learn its MAC for a handover.
                        let _ = self.p.netlink.resolve(self.p.iface.index, received.src);
                        self.peer_mac = None;
                    }
                    self.last_master = Some((Instant::now(), received.src));
                    let before = self.p.router.state();
                    let actions = self.p.router.on_advertisement(
                        Instant::now(),
                        adv.priority,
                        adv.max_advert_int_cs,
                        received.src,
                    );
                    let reason = match (before, adv.priority) {
                        (_, 0) => format!("{} is stopping (priority 0)", received.src),
                        (State::Master, p) => format!(
                            "advertisement from {} with priority {p} (ours {})",
                            received.src, self.p.cfg.priority
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
                    self.p.sync.is_master.store(true, Ordering::Relaxed);
                    self.hold_vips();
                    self.announce();
                    self.announce_again = Some(Instant::now() + ANNOUNCE_AGAIN);
                    self.transition(State::Master, reason);
                    let handover = self.handover_from_previous();
                    (self.p.on_role)(true, handover);
                }
                Action::BecomeBackup => {
                    self.p.sync.is_master.store(false, Ordering::Relaxed);
                    self.release_vips();
                    self.transition(State::Backup, reason);
                    self.told_backup_mac = None;
                    self.tell_backup_handover();
                }
                Action::BecomeInitialize => {
                    self.p.sync.is_master.store(false, Ordering::Relaxed);
                    self.release_vips();
                    self.transition(State::Initialize, reason);
                    (self.p.on_role)(false, Handover::Off);
                }
                Action::BecomeFault => {
                    self.p.sync.is_master.store(false, Ordering::Relaxed);
                    self.release_vips();
                    self.transition(State::Fault, reason);
                    (self.p.on_role)(false, Handover::Off);
                }
            }
        }
        let master = self.p.router.master_addr().map(|a| a.to_string());
        self.update(|s| s.master = master);
    }

    /// The MAC of the last director heard advertising, from the kernel's
    /// neighbour table (asked again until it is there).
    fn peer_mac(&mut self) -> Option<[u8; 6]> {
        if self.peer_mac.is_none() {
            let (_, ip) = self.last_master?;
            self.peer_mac = self
                .p
                .netlink
                .neighbour(self.p.iface.index, ip)
                .ok()
                .flatten()
                .and_then(|n| n.usable_mac());
        }
        self.peer_mac
    }

    /// Having just become master: the previous master gets the packets of
    /// flows this director does not know, for a while.
    fn handover_from_previous(&mut self) -> Handover {
        let Some((at, ip)) = self.last_master else {
            return Handover::Off;
        };
        let window = handover::window(at.elapsed(), self.p.router.master_down_interval() / 2);
        let Some(mac) = self.peer_mac() else {
            tracing::warn!(%ip, "VRRP: the previous master's MAC is unknown: no handover");
            return Handover::Off;
        };
        tracing::info!(
            %ip,
            window_ms = window.as_millis() as u64,
            "VRRP: packets of flows this director does not know go to the previous master"
        );
        if window == handover::WENT_SILENT
            && let Some(echo) = &mut self.echo
        {
            match echo.send(ip, self.p.iface.index) {
                Ok(()) => self.echo_pending = Some((Instant::now() + ECHO_WAIT, ip, mac)),
                Err(e) => tracing::debug!(error = %e, "VRRP: echo to the previous master"),
            }
        }
        Handover::ToPreviousMaster { mac, window }
    }

    /// A silent previous master that answers the echo is up (its `lbd`
    /// died, its data path forwards): it gets the whole hand-over window.
    /// One that does not answer in time is cut off: nothing more goes to it.
    fn check_echo(&mut self) {
        let Some((until, ip, mac)) = self.echo_pending else {
            return;
        };
        if self.p.router.state() != State::Master {
            self.echo_pending = None;
            return;
        }
        let answered = self.echo.as_ref().is_some_and(|e| e.answered_by(ip));
        if answered {
            self.echo_pending = None;
            tracing::info!(%ip, "VRRP: the silent previous master answers: it keeps the hand-over");
            (self.p.on_role)(
                true,
                Handover::ToPreviousMaster {
                    mac,
                    window: handover::HANDED_OVER,
                },
            );
        } else if Instant::now() >= until {
            self.echo_pending = None;
            tracing::info!(%ip, "VRRP: the silent previous master does not answer: hand-over ended");
            (self.p.on_role)(true, Handover::Off);
        }
    }

    /// As backup: the master gets the packets of flows this director does
    /// not know. Told once its MAC is known (and again if it changes).
    fn tell_backup_handover(&mut self) {
        if self.p.router.state() != State::Backup {
            return;
        }
        let mac = self.peer_mac();
        if mac.is_some() && mac != self.told_backup_mac {
            self.told_backup_mac = mac;
            if let Some(mac) = mac {
                tracing::info!(
                    master = %crate::config::format_mac(mac),
                    "VRRP: as backup, packets of flows this director does not know go to the master"
                );
                (self.p.on_role)(false, Handover::ToMaster { mac });
            }
        }
    }

    fn advertise(&mut self, priority: u8) {
        let adv = Advertisement {
            vrid: self.p.cfg.vrid,
            priority,
            max_advert_int_cs: self.p.cfg.advert_interval_cs(),
            addresses: self
                .p
                .vips
                .iter()
                .copied()
                .filter(|ip| self.p.cfg.family.contains(*ip))
                .collect(),
        };
        match self.p.socket.send(&adv) {
            Ok(()) => self.update(|s| s.advertisements_sent += 1),
            // Link going down: the link check turns it into a fault.
            Err(e) => tracing::debug!(error = %e, "sending a VRRP advertisement"),
        }
    }

    fn transition(&mut self, to: State, reason: &str) {
        let name = to.as_str().to_uppercase();
        if matches!(to, State::Master | State::Fault) {
            tracing::warn!(vrid = self.p.cfg.vrid, reason, "VRRP: now {name}");
        } else {
            tracing::info!(vrid = self.p.cfg.vrid, reason, "VRRP: now {name}");
        }
        self.p.metrics.set_vrrp_state(self.p.cfg.vrid, to, true);
        let at = unix_seconds(SystemTime::now());
        let mut shared = self.p.status.lock().expect("vrrp status lock");
        shared.entered = Instant::now();
        let status = &mut shared.status;
        status.state = to.as_str().into();
        status.history.push(Transition {
            at,
            to: to.as_str().into(),
            reason: reason.into(),
        });
        if status.history.len() > HISTORY {
            status.history.remove(0);
        }
    }

    /// The controller sends the VIPs on every config change (a weight, a
    /// drain...): only a different set costs netlink calls.
    fn set_vips(&mut self, vips: BTreeSet<IpAddr>) {
        if vips == self.p.vips {
            return;
        }
        self.p.vips = vips;
        if self.p.router.state() == State::Master {
            let added: Vec<IpAddr> = self.p.vips.difference(&self.held).copied().collect();
            self.hold_vips();
            if let Err(e) = self.p.announcer.announce(&added) {
                tracing::warn!(error = %e, "announcing new VIPs");
            }
        }
    }

    /// Adds the VIPs (and removes ones no longer configured).
    fn hold_vips(&mut self) {
        let index = self.p.iface.index;
        self.held = vips::sync(&mut self.p.netlink, index, &self.held, &self.p.vips);
    }

    fn release_vips(&mut self) {
        let index = self.p.iface.index;
        self.held = vips::sync(&mut self.p.netlink, index, &self.held, &BTreeSet::new());
    }

    /// Gratuitous ARP / unsolicited NA for every held VIP: clients and
    /// routers point the VIPs at this director's MAC now.
    fn announce(&mut self) {
        let held: Vec<IpAddr> = self.held.iter().copied().collect();
        if let Err(e) = self.p.announcer.announce(&held) {
            tracing::warn!(error = %e, "announcing the VIPs");
        }
    }

    fn read_link(&mut self) -> Option<bool> {
        match self.p.netlink.link_is_up(self.p.iface.index) {
            Ok(up) => Some(up),
            Err(e) => {
                tracing::warn!(interface = %self.p.iface.name, error = %e, "reading the link state");
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
            tracing::info!(interface = %self.p.iface.name, "link up: VRRP starts as backup");
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
        self.p.sync.want_table.store(false, Ordering::Relaxed);
        let actions = self.p.router.link_down(Instant::now());
        let reason = format!("link {} down", self.p.iface.name);
        self.perform(&actions, &reason);
    }

    fn update(&self, f: impl FnOnce(&mut VrrpStatus)) {
        f(&mut self.p.status.lock().expect("vrrp status lock").status);
    }
}
