//! Director failover: the VRRP thread.
//!
//! It runs the [`Router`] state machine with real sockets and clocks: sends
//! and receives advertisements, holds the VIPs on the interface only while
//! master (announcing them with gratuitous ARP / unsolicited neighbour
//! advertisements when it takes over), gives them up as backup, and sends a
//! priority-0 advertisement on a graceful stop so the backup takes over at
//! once. It has a thread of its own because advertisements every 100 ms
//! must not wait behind a slow controller (a connection-table walk takes a
//! second per million flows).
//!
//! A link that goes down (no carrier, or set down) puts the router in
//! `fault`: VIPs released, no advertisements, like keepalived's FAULT
//! state. When the link returns the router starts again as backup.

use std::{
    collections::{BTreeSet, VecDeque},
    net::IpAddr,
    os::{fd::AsRawFd, unix::net::UnixDatagram},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, bail};
use lb_daemon::{
    admin::{SyncStatus, VrrpStatus, VrrpTransition},
    config::{VrrpConfig, VrrpFamily},
    metrics::Metrics,
    netlink::Netlink,
    vrrp::{
        Action, Advertisement, Router, State,
        announce::Announcer,
        socket::{self, VrrpSocket},
        state,
    },
};

use crate::vips::host_prefix;

/// How often the link state is read.
const LINK_CHECK: Duration = Duration::from_millis(100);
/// Gratuitous ARPs / NAs after taking over: at once and once more a second
/// later, for hosts that missed the first (keepalived repeats after 5 s).
const ANNOUNCE_AGAIN: Duration = Duration::from_secs(1);
/// Transitions kept for `lbctl vrrp`.
const HISTORY: usize = 16;

/// What the controller tells the VRRP thread.
enum Command {
    /// The VIPs of the running config.
    Vips(BTreeSet<IpAddr>),
    /// The peer's connection table has arrived for this wait (see
    /// [`SyncFlags::wait`]): preemption may proceed.
    TableReceived(u64),
    /// Graceful stop: priority 0, VIPs released.
    Stop,
}

/// State shared with the sync thread.
#[derive(Default)]
pub struct SyncFlags {
    /// This director is master (it sends its flows to the peer).
    pub is_master: AtomicBool,
    /// This director waits for the peer's whole table before preempting.
    pub want_table: AtomicBool,
    /// Counts the waits for the table (each start, each link up), so that
    /// a table that arrived for an earlier wait does not end this one.
    pub wait: AtomicU64,
}

/// The status `lbctl vrrp` shows, and when the current state began.
pub struct Shared {
    pub status: VrrpStatus,
    entered: Instant,
}

/// The interface VRRP runs on.
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
}

/// Lets the sync thread tell the VRRP thread that the peer's table is here.
pub struct TableNotifier {
    commands: mpsc::Sender<Command>,
    wake: UnixDatagram,
}

impl TableNotifier {
    /// The table asked for during wait `wait` is complete.
    pub fn table_received(&self, wait: u64) {
        let _ = self.commands.send(Command::TableReceived(wait));
        let _ = self.wake.send(&[1]);
    }
}

/// The controller's handle on the VRRP thread.
pub struct Failover {
    commands: mpsc::Sender<Command>,
    wake: UnixDatagram,
    status: Arc<Mutex<Shared>>,
    sync_status: Option<Arc<Mutex<SyncStatus>>>,
    /// The sync thread, flushed before a graceful stop.
    sync: Option<crate::flow_sync::SyncHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Failover {
    /// Removes `stale` VIPs a previous lbd may have left on the interface
    /// (a starting director is backup until it hears nobody), opens the
    /// sockets and starts the thread.
    pub fn start(
        cfg: &VrrpConfig,
        iface: Interface,
        vips: BTreeSet<IpAddr>,
        stale: &BTreeSet<IpAddr>,
        metrics: Arc<Metrics>,
        sync: Arc<SyncFlags>,
        sync_status: Option<Arc<Mutex<SyncStatus>>>,
    ) -> anyhow::Result<Self> {
        let mut netlink = Netlink::open().context("opening rtnetlink for VRRP")?;
        for ip in stale.union(&vips) {
            if let Err(e) = netlink.remove_address(iface.index, *ip, host_prefix(*ip)) {
                tracing::warn!(vip = %ip, error = %e, "releasing a VIP at start");
            }
        }
        let local = match cfg.source_address {
            Some(ip) => ip,
            None => source_address(&mut netlink, iface.index, cfg.family, &vips)
                .with_context(|| format!("VRRP on {}", iface.name))?,
        };
        let socket = open_socket(&iface, local, &cfg.unicast_peers)
            .with_context(|| format!("opening the VRRP socket on {} from {local}", iface.name))?;
        let announcer = Announcer::open(&iface.name, iface.index, iface.mac)
            .with_context(|| format!("opening the ARP/NA socket on {}", iface.name))?;
        let mut router_cfg = state::Config::new(cfg.priority, local);
        router_cfg.advert_interval_cs = cfg.advert_interval_cs();
        router_cfg.preempt = cfg.preempt;
        router_cfg.preempt_delay = cfg.preempt_delay;
        let router = Router::new(router_cfg).context("VRRP settings")?;
        let (wake, wake_rx) = UnixDatagram::pair().context("VRRP wake-up socket")?;
        // Never block the controller on a full wake-up socket: one queued
        // byte is enough to wake the thread.
        wake.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let (commands, inbox) = mpsc::channel();
        let status = Arc::new(Mutex::new(Shared {
            entered: Instant::now(),
            status: VrrpStatus {
                enabled: true,
                vrid: cfg.vrid,
                interface: iface.name.clone(),
                family: cfg.family.name().into(),
                state: State::Initialize.as_str().into(),
                priority: cfg.priority,
                advert_interval_ms: cfg.advert_interval.as_millis() as u64,
                local_address: Some(local.to_string()),
                peers: peers(cfg),
                ..VrrpStatus::default()
            },
        }));
        metrics.set_vrrp_state(cfg.vrid, State::Initialize.as_str(), false);
        let wait_for_table = cfg.sync.as_ref().map(|s| s.wait_before_preempt);
        let mut vrrp = Vrrp {
            cfg: cfg.clone(),
            iface,
            router,
            socket,
            announcer,
            netlink,
            vips,
            held: BTreeSet::new(),
            metrics,
            status: status.clone(),
            sync,
            wait_for_table,
            table_deadline: None,
            link_up: true,
            announce_at: VecDeque::new(),
            last_heard: None,
        };
        let thread = std::thread::Builder::new()
            .name("vrrp".into())
            .spawn(move || vrrp.run(&inbox, &wake_rx))?;
        Ok(Self {
            commands,
            wake,
            status,
            sync_status,
            sync: None,
            thread: Some(thread),
        })
    }

    /// The VIPs of the running config (held only while master).
    pub fn set_vips(&self, vips: BTreeSet<IpAddr>) {
        self.send(Command::Vips(vips));
    }

    /// The sync thread, to flush before a graceful stop.
    pub fn set_sync(&mut self, sync: crate::flow_sync::SyncHandle) {
        self.sync = Some(sync);
    }

    /// For the sync thread.
    pub fn table_notifier(&self) -> anyhow::Result<TableNotifier> {
        Ok(TableNotifier {
            commands: self.commands.clone(),
            wake: self.wake.try_clone()?,
        })
    }

    /// What `lbctl vrrp` shows.
    pub fn status(&self) -> VrrpStatus {
        let shared = self.status.lock().expect("vrrp status lock");
        let mut status = shared.status.clone();
        status.in_state_seconds = shared.entered.elapsed().as_secs_f64();
        drop(shared);
        status.sync = self
            .sync_status
            .as_ref()
            .map(|s| s.lock().expect("sync status lock").clone());
        status
    }

    fn send(&self, command: Command) {
        let _ = self.commands.send(command);
        let _ = self.wake.send(&[1]);
    }
}

impl Drop for Failover {
    /// A graceful stop: the flows of the last moments go to the peer, then
    /// priority 0 makes it take over after its skew time.
    fn drop(&mut self) {
        if let Some(sync) = &self.sync {
            sync.flush(Duration::from_millis(500));
        }
        self.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens the VRRP socket. An IPv6 link-local address is unusable while
/// duplicate address detection runs (about a second after the link comes
/// up): wait for it rather than fail.
fn open_socket(iface: &Interface, local: IpAddr, peers: &[IpAddr]) -> std::io::Result<VrrpSocket> {
    let deadline = Instant::now() + TENTATIVE_WAIT;
    loop {
        match VrrpSocket::open(&iface.name, iface.index, local, peers) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrNotAvailable
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

/// How long `open_socket` waits for a tentative address.
const TENTATIVE_WAIT: Duration = Duration::from_secs(5);

/// "224.0.0.18", or the unicast peers.
fn peers(cfg: &VrrpConfig) -> Vec<String> {
    if cfg.unicast_peers.is_empty() {
        let group = match cfg.family {
            VrrpFamily::Ipv4 => IpAddr::from(lb_daemon::vrrp::packet::VRRP_MCAST_V4),
            VrrpFamily::Ipv6 => IpAddr::from(lb_daemon::vrrp::packet::VRRP_MCAST_V6),
        };
        vec![format!("{group} (multicast)")]
    } else {
        cfg.unicast_peers.iter().map(ToString::to_string).collect()
    }
}

/// The interface's own address of the family (link-local for IPv6, as RFC
/// 5798 requires), never a VIP.
fn source_address(
    netlink: &mut Netlink,
    ifindex: u32,
    family: VrrpFamily,
    vips: &BTreeSet<IpAddr>,
) -> anyhow::Result<IpAddr> {
    let addresses = netlink.addresses(ifindex)?;
    let found = addresses.iter().map(|(ip, _)| *ip).find(|ip| {
        family.contains(*ip)
            && !vips.contains(ip)
            && match ip {
                IpAddr::V4(_) => true,
                IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
            }
    });
    match found {
        Some(ip) => Ok(ip),
        None => bail!(
            "the interface has no {} address to send advertisements from (set \
             vrrp.source_address)",
            match family {
                VrrpFamily::Ipv4 => "IPv4",
                VrrpFamily::Ipv6 => "IPv6 link-local",
            }
        ),
    }
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
            // With unicast peers, only they may take part in the election
            // (keepalived's check_unicast_src, always on here).
            if unicast && !self.cfg.unicast_peers.contains(&received.src) {
                self.update(|s| s.advertisements_rejected += 1);
                tracing::debug!(from = %received.src, "VRRP advertisement from outside unicast_peers");
                continue;
            }
            match socket::check(&received, self.cfg.vrid, unicast) {
                Ok(adv) => {
                    self.update(|s| s.advertisements_received += 1);
                    self.last_heard = Some((Instant::now(), received.src, adv.priority));
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
