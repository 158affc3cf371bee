//! Director failover: the VRRP thread (`thread.rs`) and the controller's
//! handle on it (here).
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
    collections::BTreeSet,
    net::IpAddr,
    os::unix::net::UnixDatagram,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64},
        mpsc,
    },
    time::{Duration, Instant},
};

use crate::{
    admin::{SyncStatus, VrrpStatus},
    config::{VrrpConfig, VrrpFamily},
    metrics::Metrics,
    netlink::Netlink,
    vrrp::{Router, State, announce::Announcer, socket::VrrpSocket, state},
};
use anyhow::{Context, bail};

use crate::daemon::vips;

mod echo;
mod handover;
mod thread;

pub use handover::Handover;

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

/// What the VRRP thread shares with the rest of lbd.
pub struct Hooks {
    /// Flags shared with the sync thread.
    pub sync: Arc<SyncFlags>,
    /// The sync thread's counters, for `lbctl vrrp`.
    pub sync_status: Option<Arc<Mutex<SyncStatus>>>,
    /// Called on every change of role: whether this director is master
    /// now, and where packets of flows it does not know go ([`Handover`]).
    pub on_role: Box<dyn Fn(bool, Handover) + Send>,
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
    sync: Option<crate::daemon::flow_sync::SyncHandle>,
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
        hooks: Hooks,
    ) -> anyhow::Result<Self> {
        let Hooks {
            sync,
            sync_status,
            on_role,
        } = hooks;
        let mut netlink = Netlink::open().context("opening rtnetlink for VRRP")?;
        // Backup until proven master: none of them may stay.
        let left: BTreeSet<IpAddr> = stale.union(&vips).copied().collect();
        vips::sync(&mut netlink, iface.index, &left, &BTreeSet::new());
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
        metrics.set_vrrp_state(cfg.vrid, State::Initialize, false);
        let parts = thread::Parts {
            cfg: cfg.clone(),
            iface,
            router,
            socket,
            announcer,
            netlink,
            vips,
            metrics,
            status: status.clone(),
            sync,
            on_role,
        };
        let thread = std::thread::Builder::new()
            .name("vrrp".into())
            .spawn(move || thread::run(parts, &inbox, &wake_rx))?;
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
    pub fn set_sync(&mut self, sync: crate::daemon::flow_sync::SyncHandle) {
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

impl Failover {
    /// A graceful stop: the flows of the last moments go to the peer, then
    /// priority 0 makes it take over after its skew time; the VIPs are
    /// released and the VRRP and sync threads end.
    pub fn stop(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if let Some(sync) = &self.sync {
            sync.flush(Duration::from_millis(500));
        }
        self.send(Command::Stop);
        let _ = thread.join();
        if let Some(sync) = self.sync.take() {
            sync.stop();
        }
    }
}

impl Drop for Failover {
    /// Only on an error path (startup failed after the VRRP thread began):
    /// [`Failover::stop`] is the documented way, called in the daemon's
    /// shutdown order.
    fn drop(&mut self) {
        self.stop_threads();
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
            VrrpFamily::Ipv4 => IpAddr::from(crate::vrrp::packet::VRRP_MCAST_V4),
            VrrpFamily::Ipv6 => IpAddr::from(crate::vrrp::packet::VRRP_MCAST_V6),
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
