//! Startup, the controller thread and shutdown.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::Path,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow};
use aya::programs::XdpMode;
use lb_daemon::{
    admin::{RealHealthStatus, Request, Response, Transition, unix_seconds},
    balancer::{Adopted, Balancer},
    config::{self, Config, SystemEnvironment, XdpModeConfig},
    control::Controller,
    dataplane::{Attachment, Dataplane, DataplaneLimits, Origin, PinDir},
    health::{
        scheduler::{Checker, HealthEvent},
        state::Health,
        tls::TlsConfigs,
    },
    metrics::Metrics,
    netlink::Netlink,
};
use tokio::sync::oneshot;

use crate::{failover, flow_sync, metrics_http, neighbours, server, vips};

/// What the controller thread is asked to do.
pub enum Event {
    Admin(Request, oneshot::Sender<Response>),
    /// SIGHUP.
    Reload,
    /// A real's MAC appeared, changed or went away.
    Mac(IpAddr, Option<[u8; 6]>),
    /// A health-check result.
    Health(HealthEvent),
    /// A Prometheus scrape: the exposition text.
    Scrape(oneshot::Sender<String>),
    /// Age the connection table now (and so rebuild the active-connection
    /// counts): this director just became VRRP master.
    AgeNow,
    Shutdown,
}

/// The reals the neighbour thread must keep resolved, shared with it.
pub type Wanted = Arc<Mutex<BTreeSet<IpAddr>>>;

pub fn run(path: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let (config, text) = config::load(path, &SystemEnvironment).map_err(|e| anyhow!("{e}"))?;
    server::refuse_if_running(&config.daemon.admin_socket)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (admin, metrics_listener) = {
        let _context = runtime.enter();
        (
            server::bind(&config.daemon.admin_socket)?,
            metrics_http::bind(config.daemon.metrics_address)?,
        )
    };
    // Removed however lbd ends (a killed lbd's is removed by the next one).
    let _socket_file = RemoveOnDrop(config.daemon.admin_socket.clone());

    let mut netlink = Netlink::open().context("opening rtnetlink")?;
    let interfaces = interfaces(&mut netlink, &config)?;

    let (mut lb, adopted) = open_data_path(&config)?;
    let previous_vips: BTreeSet<IpAddr> = lb.service_addrs().map(|s| s.vip).collect();
    let ifaces: Vec<(u32, [u8; 6])> = interfaces.iter().map(|(_, i, m)| (*i, *m)).collect();
    lb.dataplane_mut()
        .set_interfaces(&ifaces)
        .context("configuring interfaces")?;

    let on_link: Vec<u32> = ifaces.iter().map(|(i, _)| *i).collect();
    let mut resolver = neighbours::Resolver::new(on_link);
    let macs = initial_macs(&mut resolver, &mut netlink, &config);

    let apply_started = Instant::now();
    let mut controller = Controller::new(
        lb,
        config.clone(),
        text,
        path.to_owned(),
        Box::new(SystemEnvironment),
        macs,
        adopted.macs,
    );
    controller.apply_all().context("programming services")?;
    let apply_ms = apply_started.elapsed().as_secs_f64() * 1e3;

    attach_all(&mut controller, &interfaces, &config)?;
    let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
    let vip_iface = interfaces[0].1;
    let (events, inbox) = mpsc::channel::<Event>();
    let vips = vip_holder(
        &config,
        &mut netlink,
        &interfaces,
        &controller,
        &previous_vips,
        (&metrics, &events),
    )?;
    for ip in controller.unresolved_reals() {
        tracing::warn!(real = %ip, "MAC not resolved yet: out of rotation until it is");
    }
    let reals: usize = controller
        .config()
        .services
        .iter()
        .map(|s| s.reals.len())
        .sum();
    tracing::info!(
        config = %path.display(),
        services = controller.config().services.len(),
        reals,
        apply_ms = format!("{apply_ms:.1}"),
        startup_ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1e3),
        "lbd ready"
    );

    let wanted: Wanted = Arc::new(Mutex::new(controller.reals_to_resolve()));
    let refresh = config.daemon.neighbour_refresh;
    let (waker, wake) = mpsc::channel::<()>();
    let neighbour_thread = spawn_neighbours(resolver, &wanted, &events, refresh, wake)?;
    let server_events = events.clone();
    let server = std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(metrics_http::serve(metrics_listener, server_events.clone()));
                server::serve(admin, server_events).await;
            });
        })?;

    // "The running config was loaded at": startup counts as a load.
    metrics.observe_reload(true, unix_now());
    let (health_runtime, checker) = start_checker(&controller, &events, &metrics)?;
    let mut host = Host {
        netlink,
        vip_iface,
        vips,
        wanted,
        waker,
        checker,
        metrics,
        generation: controller.generation(),
    };
    controller_loop(&mut controller, &inbox, &mut host);

    drop(host);
    drop(events);
    let _ = neighbour_thread.join();
    drop(server);
    health_runtime.shutdown_background();
    tracing::info!("stopped; the data path keeps forwarding (`lbd teardown` removes it)");
    Ok(())
}

/// The neighbour thread (its rtnetlink socket is opened here, so a failure
/// stops startup instead of leaving a silent thread).
fn spawn_neighbours(
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
fn start_checker(
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
    checker.set_damping(controller.damping());
    checker.set_targets(controller.health_targets());
    Ok((runtime, checker))
}

/// Probes in flight at most.
const MAX_CONCURRENT_PROBES: usize = 1000;
/// How often reals in slow start get their next, larger weight, and
/// drained reals are checked for removal.
const RAMP_STEP: Duration = Duration::from_secs(1);

/// What the controller loop drives outside the controller: VIP addresses,
/// the neighbour thread's wanted set, the health checker, the metrics.
struct Host {
    netlink: Netlink,
    vip_iface: u32,
    vips: Vips,
    wanted: Wanted,
    waker: mpsc::Sender<()>,
    checker: Checker,
    metrics: Arc<Metrics>,
    /// The controller's config generation this was last synced with.
    generation: u64,
}

impl Host {
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
        }
        let keep = controller
            .config()
            .services
            .iter()
            .flat_map(|s| s.reals.iter().map(move |r| (s.addr.to_string(), r.name())))
            .collect();
        self.metrics.retain_reals(&keep);
        self.checker.set_damping(controller.damping());
        self.checker.set_targets(controller.health_targets());
    }
}

/// Who holds the VIPs on the interface.
enum Vips {
    /// No `[vrrp]`: lbd itself, always (these are held now).
    Direct(BTreeSet<IpAddr>),
    /// The VRRP thread, while master.
    Vrrp(failover::Failover),
}

/// Holds the VIPs now (no `[vrrp]`), or starts the VRRP thread that holds
/// them while master.
fn vip_holder(
    config: &Config,
    netlink: &mut Netlink,
    interfaces: &[(String, u32, [u8; 6])],
    controller: &Controller,
    previous_vips: &BTreeSet<IpAddr>,
    (metrics, events): (&Arc<Metrics>, &mpsc::Sender<Event>),
) -> anyhow::Result<Vips> {
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
    vrrp: &lb_daemon::config::VrrpConfig,
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
        Arc::new(Mutex::new(lb_daemon::admin::SyncStatus {
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
            // Flows written by the sync are not in the least-connection
            // counts until an ageing pass rebuilds them: run one on taking
            // over.
            on_master: {
                let events = events.clone();
                Box::new(move || {
                    let _ = events.send(Event::AgeNow);
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

/// Serves events one at a time until shutdown; between them ages the
/// connection table, steps slow starts and finishes drains.
fn controller_loop(controller: &mut Controller, inbox: &mpsc::Receiver<Event>, host: &mut Host) {
    let mut next_ageing = Instant::now() + controller.config().timeouts.ageing_interval;
    let mut next_ramp = Instant::now() + RAMP_STEP;
    loop {
        let timeout = next_ageing
            .min(next_ramp)
            .saturating_duration_since(Instant::now());
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
                    age(controller);
                    next_ageing = Instant::now() + controller.config().timeouts.ageing_interval;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        host.sync(controller);
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

/// What `lbctl health` shows.
fn health_report(checker: &Checker) -> Vec<RealHealthStatus> {
    let mut states = checker.states();
    states.sort_by(|a, b| (&a.key.service, &a.key.real).cmp(&(&b.key.service, &b.key.real)));
    states
        .into_iter()
        .map(|s| RealHealthStatus {
            service: s.key.service,
            real: s.key.real,
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
        })
        .collect()
}

fn log_reload(result: Result<lb_daemon::config::ConfigDiff, lb_daemon::control::ControlError>) {
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
fn observe_health(metrics: &Metrics, event: &HealthEvent) {
    let (service, real) = (&event.key.service, &event.key.real);
    // Events without a probe (a check set to `none`) carry no duration.
    if !event.took.is_zero() {
        let failure = event.result.as_ref().err().map(|f| f.reason.label());
        metrics.observe_probe(service, real, event.took, failure);
    }
    if let Some(t) = event.transition {
        metrics.observe_transition(service, real, t.to.label());
    }
}

fn unix_now() -> f64 {
    unix_seconds(std::time::SystemTime::now())
}

fn age(controller: &mut Controller) {
    match controller.age() {
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
fn handle(controller: &mut Controller, host: &Host, event: Event) -> bool {
    match event {
        Event::Shutdown => return false,
        // The checker keeps the health states.
        Event::Admin(Request::Health, reply) => {
            let _ = reply.send(Response::success(health_report(&host.checker)));
        }
        Event::Admin(Request::Vrrp, reply) => {
            let status = match &host.vips {
                Vips::Vrrp(failover) => failover.status(),
                Vips::Direct(_) => lb_daemon::admin::VrrpStatus::default(),
            };
            let _ = reply.send(Response::success(status));
        }
        Event::Admin(request, reply) => {
            let reload = request == Request::Reload;
            let summary = format!("{request:?}");
            let is_read = matches!(
                request,
                Request::Status | Request::Flows { .. } | Request::Trace { .. }
            );
            let response = controller.handle(request);
            if reload {
                host.metrics.observe_reload(response.ok, unix_now());
            }
            if !is_read {
                match &response.error {
                    None => tracing::info!(request = %summary, "lbctl change applied"),
                    Some(e) => {
                        tracing::warn!(request = %summary, error = %e, "lbctl change refused");
                    }
                }
            }
            let _ = reply.send(response);
        }
        Event::AgeNow => age(controller),
        Event::Reload => {
            let result = controller.reload();
            host.metrics.observe_reload(result.is_ok(), unix_now());
            log_reload(result);
        }
        Event::Scrape(reply) => {
            let text = match controller.snapshot() {
                Ok(snapshot) => host.metrics.render(&snapshot),
                Err(e) => format!("# lbd could not read its maps: {e}\n"),
            };
            let _ = reply.send(text);
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

/// Index and MAC of every configured interface.
fn interfaces(
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
fn open_data_path(config: &Config) -> anyhow::Result<(Balancer, Adopted)> {
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
fn attach_all(
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
fn initial_macs(
    resolver: &mut neighbours::Resolver,
    netlink: &mut Netlink,
    config: &Config,
) -> std::collections::BTreeMap<IpAddr, [u8; 6]> {
    let mut macs = std::collections::BTreeMap::new();
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
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn limits(config: &Config) -> DataplaneLimits {
    DataplaneLimits {
        conntrack_size: config.dataplane.conntrack_size,
        max_reals: config.dataplane.max_reals,
        max_services: config.dataplane.max_services,
        ..DataplaneLimits::default()
    }
}
