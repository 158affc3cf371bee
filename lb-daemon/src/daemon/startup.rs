//! Starting the parts of the daemon: the data path (loaded or adopted,
//! attached), the first MACs, the health checker, the neighbour thread and
//! whoever holds the VIPs (lbd itself, or the VRRP and sync threads).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use anyhow::{Context, anyhow};
use aya::programs::XdpMode;

use crate::{
    admin::SyncStatus,
    balancer::{Adopted, Balancer},
    config::{Config, VrrpConfig, XdpModeConfig},
    control::Controller,
    dataplane::{Attachment, Dataplane, DataplaneLimits, FlowTable, Origin, PinDir},
    health::{scheduler::Checker, tls::TlsConfigs},
    metrics::Metrics,
    netlink::Netlink,
};

use super::{
    Event, Wanted, controller_loop::observe_health, failover, flow_share, flow_sync, neighbours,
    table_thread::TableThread, vips,
};

/// The neighbour thread (its rtnetlink socket is opened here, so a failure
/// stops startup instead of leaving a silent thread).
pub(super) fn spawn_neighbours(
    resolver: neighbours::Resolver,
    wanted: &Wanted,
    events: &mpsc::Sender<Event>,
    refresh: Duration,
    wake: mpsc::Receiver<()>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let netlink = Netlink::open().context("opening rtnetlink")?;
    let events = events.clone();
    let wanted = wanted.clone();
    Ok(std::thread::Builder::new()
        .name("neighbours".into())
        .spawn(move || {
            neighbours::run(resolver, netlink, &wanted, &events, refresh, &wake);
        })?)
}

/// The health checker, on its own small runtime (one worker keeps 10,000
/// reals at a 1 s interval under a quarter of a core). Every probe feeds
/// the metrics right there; only transitions go to the controller loop
/// (10,000 probe results a second would swamp it).
pub(super) fn start_checker(
    controller: &Controller,
    events: &mpsc::Sender<Event>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(tokio::runtime::Runtime, Checker)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("health")
        .enable_all()
        .build()?;
    let events = events.clone();
    let metrics = metrics.clone();
    let checker = Checker::new(
        runtime.handle().clone(),
        MAX_CONCURRENT_PROBES,
        TlsConfigs::new().context("TLS roots for https checks")?,
        move |event| {
            observe_health(&metrics, &event);
            if event.transition.is_some() {
                // Fails only when lbd is stopping.
                let _ = events.send(Event::Health(event));
            }
        },
    );
    checker.set_targets(controller.health_targets());
    Ok((runtime, checker))
}

/// The thread that has reals probed at once when their clients retransmit
/// SYNs (see `evidence`).
pub(super) fn start_evidence(
    controller: &Controller,
    checker: &Checker,
) -> anyhow::Result<super::evidence::Evidence> {
    let reader = controller
        .balancer()
        .dataplane()
        .syn_retransmit_reader()
        .context("the retransmitted-SYN counts")?;
    Ok(super::evidence::Evidence::start(
        reader,
        checker.trigger(),
        controller.real_slots_in_use(),
    )?)
}

/// Probes in flight at most.
const MAX_CONCURRENT_PROBES: usize = 1000;

/// Who holds the VIPs on the interface.
pub(super) enum Vips {
    /// No `[vrrp]`: lbd itself, always (these are held now).
    Direct(BTreeSet<IpAddr>),
    /// The VRRP thread, while master.
    Vrrp(failover::Failover),
    /// `[ecmp]`: not held but announced as routes (boxed: it is large next
    /// to the others).
    Ecmp(Box<super::announcer::Announcer>),
}

/// Holds the VIPs now (no `[vrrp]`), or starts the VRRP thread that holds
/// them while master.
pub(super) fn vip_holder(
    config: &Config,
    netlink: &mut Netlink,
    interfaces: &[(String, u32, [u8; 6])],
    controller: &Controller,
    previous_vips: &BTreeSet<IpAddr>,
    (metrics, events): (&Arc<Metrics>, &mpsc::Sender<Event>),
    share: Option<&flow_share::ShareHandle>,
) -> anyhow::Result<Vips> {
    if let Some(ecmp) = &config.ecmp {
        // Held by a previous lbd without [ecmp]: the router, not ARP,
        // brings the clients' packets now.
        vips::sync(netlink, interfaces[0].1, previous_vips, &BTreeSet::new());
        let mut announcer = super::announcer::Announcer::start(
            ecmp,
            netlink,
            // With [ecmp.sync]: every peer's table has arrived.
            share.map(flow_share::ShareHandle::learned_flag),
            Arc::clone(metrics),
        )?;
        // Drained before a restart (recorded in the adopted pinned maps):
        // maintenance is not over because lbd restarted.
        if controller
            .balancer()
            .dataplane()
            .director_drained()
            .unwrap_or(false)
        {
            tracing::warn!(
                "this director was drained (lbctl director drain) before lbd restarted: \
                 its VIPs stay withdrawn until lbctl director undrain"
            );
            announcer.set_drained(true);
        }
        return Ok(Vips::Ecmp(Box::new(announcer)));
    }
    Ok(match &config.vrrp {
        None => Vips::Direct(vips::sync(
            netlink,
            interfaces[0].1,
            previous_vips,
            &controller.vips(),
        )),
        Some(vrrp) => Vips::Vrrp(start_failover(
            vrrp,
            interfaces,
            controller,
            previous_vips,
            metrics,
            events,
        )?),
    })
}

/// Starts the VRRP thread on `vrrp.interface` (default: the first one).
fn start_failover(
    vrrp: &VrrpConfig,
    interfaces: &[(String, u32, [u8; 6])],
    controller: &Controller,
    previous_vips: &BTreeSet<IpAddr>,
    metrics: &Arc<Metrics>,
    events: &mpsc::Sender<Event>,
) -> anyhow::Result<failover::Failover> {
    let sync_flags = &Arc::new(failover::SyncFlags::default());
    let name = vrrp.interface.as_ref().unwrap_or(&interfaces[0].0);
    let (name, index, mac) = interfaces
        .iter()
        .find(|(n, _, _)| n == name)
        .cloned()
        .ok_or_else(|| anyhow!("vrrp.interface {name} is not attached"))?;
    let sync_status = vrrp.sync.as_ref().map(|s| {
        Arc::new(Mutex::new(SyncStatus {
            peer: std::net::SocketAddr::new(s.peer, s.port).to_string(),
            ..Default::default()
        }))
    });
    if index != interfaces[0].1 {
        // Held there by a previous lbd without [vrrp]: a backup must not
        // answer for them anywhere.
        let mut netlink = Netlink::open().context("opening rtnetlink")?;
        vips::sync(
            &mut netlink,
            interfaces[0].1,
            previous_vips,
            &BTreeSet::new(),
        );
    }
    let mut failover = failover::Failover::start(
        vrrp,
        failover::Interface { name, index, mac },
        controller.vips(),
        previous_vips,
        metrics.clone(),
        failover::Hooks {
            sync: sync_flags.clone(),
            sync_status: sync_status.clone(),
            // The controller sets the handover (see `failover::Handover`)
            // and, on taking over, runs an ageing pass: flows written by the
            // sync are not in the least-connection counts until one
            // rebuilds them.
            on_role: {
                let events = events.clone();
                Box::new(move |master, handover| {
                    let _ = events.send(Event::Role { master, handover });
                })
            },
        },
    )?;
    if let (Some(sync), Some(status), Some(pins)) = (
        &vrrp.sync,
        sync_status,
        controller.balancer().dataplane().pins(),
    ) {
        let handle = flow_sync::start(
            sync,
            pins,
            sync_flags.clone(),
            failover.table_notifier()?,
            status,
            metrics.clone(),
        )?;
        failover.set_sync(handle);
        tracing::info!(peer = %sync.peer, port = sync.port, "connection-table sync started");
    }
    tracing::info!(
        vrid = vrrp.vrid,
        priority = vrrp.priority,
        interval_ms = vrrp.advert_interval.as_millis() as u64,
        "VRRP started: VIPs are held only while master"
    );
    Ok(failover)
}

/// With `[ecmp]` and `[ecmp.sync]`: switches the data path's flow reports
/// on and starts the sharing thread. Otherwise switches them off (a
/// previous lbd may have left them on; the ring would only fill up).
pub(super) fn start_share(
    controller: &mut Controller,
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<flow_share::ShareHandle>> {
    let share = config.ecmp.as_ref().and_then(|e| e.sync.as_ref());
    let dp = controller.balancer_mut().dataplane_mut();
    dp.set_share_flows(share.is_some())
        .context("switching the data path's flow reports")?;
    let Some(share) = share else {
        return Ok(None);
    };
    let pins = dp
        .pins()
        .context("flow sharing needs the pinned data path")?;
    let handle = flow_share::start(share, pins, metrics.clone())?;
    tracing::info!(
        peers = ?share.peers,
        port = share.port,
        "flow sharing started: asking every peer for its table"
    );
    Ok(Some(handle))
}

/// Index and MAC of every configured interface.
pub(super) fn interfaces(
    netlink: &mut Netlink,
    config: &Config,
) -> anyhow::Result<Vec<(String, u32, [u8; 6])>> {
    let mut interfaces = Vec::new();
    for name in &config.dataplane.interfaces {
        let index = netlink
            .link_index(name)
            .with_context(|| format!("interface {name}"))?;
        let mac = netlink
            .link_mac(index)
            .with_context(|| format!("MAC of interface {name}"))?;
        interfaces.push((name.clone(), index, mac));
    }
    Ok(interfaces)
}

/// Loads the data path pinned, adopting what a previous lbd left.
pub(super) fn open_data_path(config: &Config) -> anyhow::Result<(Balancer, Adopted)> {
    let pins = PinDir::new(&config.daemon.pin_path);
    let dp = Dataplane::open_pinned(limits(config), &pins).context("loading the data path")?;
    let (lb, adopted) = match dp.origin() {
        Origin::Adopted => Balancer::adopt(dp).context("adopting the pinned data path")?,
        Origin::Fresh => (Balancer::new(dp), Adopted::default()),
    };
    if adopted.services > 0 || adopted.reals > 0 {
        tracing::info!(
            pin_path = %pins.root().display(),
            services = adopted.services,
            reals = adopted.reals,
            retired = adopted.retired,
            "adopted the pinned data path of a previous lbd: established flows keep their reals"
        );
    }
    Ok((lb, adopted))
}

/// Attaches the program to every configured interface (or swaps it into
/// the pinned links of a previous lbd).
pub(super) fn attach_all(
    controller: &mut Controller,
    interfaces: &[(String, u32, [u8; 6])],
    config: &Config,
) -> anyhow::Result<()> {
    if let Some(pins) = controller.balancer().dataplane().pins().cloned() {
        for name in pins.pinned_links() {
            if !config.dataplane.interfaces.contains(&name) {
                match pins.unpin_link(&name) {
                    Ok(()) => tracing::info!(interface = %name, "detached (no longer configured)"),
                    Err(e) => tracing::warn!(interface = %name, error = %e, "detaching"),
                }
            }
        }
    }
    let mode = match config.dataplane.xdp_mode {
        XdpModeConfig::Driver => XdpMode::Driver,
        XdpModeConfig::Generic => XdpMode::Skb,
    };
    for (name, _, _) in interfaces {
        let attachment = controller
            .balancer_mut()
            .dataplane_mut()
            .attach_pinned(name, mode, config.dataplane.xdp_fallback)
            .with_context(|| format!("attaching to {name}"))?;
        match attachment {
            Attachment::Attached(mode) => tracing::info!(interface = %name, ?mode, "attached"),
            Attachment::FellBack => {
                tracing::warn!(interface = %name, "attached in generic mode (driver mode refused)");
            }
            Attachment::Replaced => {
                tracing::info!(interface = %name, "replaced the program in the pinned link");
            }
        }
    }
    Ok(())
}

/// MACs the neighbour table confirms now for the configured reals, waiting
/// up to half a second for fresh resolutions. (MACs adopted from pinned maps
/// only keep established flows going; new connections wait for these.)
pub(super) fn initial_macs(
    resolver: &mut neighbours::Resolver,
    netlink: &mut Netlink,
    config: &Config,
) -> BTreeMap<IpAddr, [u8; 6]> {
    let mut macs = BTreeMap::new();
    let wanted = config.addresses_to_resolve();
    for (ip, mac) in resolver.settle(netlink, &wanted, Duration::from_millis(500)) {
        match mac {
            Some(mac) => {
                macs.insert(ip, mac);
            }
            None => {
                macs.remove(&ip);
            }
        }
    }
    macs
}

/// Removes a file when dropped.
pub(super) struct RemoveOnDrop(pub(super) std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) fn limits(config: &Config) -> DataplaneLimits {
    DataplaneLimits {
        conntrack_size: config.dataplane.conntrack_size,
        max_reals: config.dataplane.max_reals,
        max_services: config.dataplane.max_services,
        ..DataplaneLimits::default()
    }
}

/// The table thread, with its first ageing pass under way (it also counts
/// the flows `lbctl status` shows).
pub(super) fn start_table(
    controller: &Controller,
    events: &mpsc::Sender<Event>,
) -> anyhow::Result<TableThread> {
    let pins = controller
        .balancer()
        .dataplane()
        .pins()
        .context("the data path is not pinned")?;
    let table = FlowTable::open(pins).context("opening the connection table")?;
    let mut table = TableThread::start(table, events.clone())?;
    let (timeouts, context) = controller.ageing_job();
    table.age(timeouts, context);
    Ok(table)
}
