//! The daemon behind `lbd`: [`run`] starts every part, wires them together
//! and stops them in a fixed order when its [`Shutdown`] fires. `lbd`'s
//! `main` only parses arguments, sets up logging and turns signals into
//! [`Trigger`] calls; a test can run a whole daemon in-process the same way.
//!
//! The parts, each on its own thread so that none waits behind another:
//!
//! | thread | module | what it does |
//! |---|---|---|
//! | controller (the caller's) | [`controller_loop`] | owns the [`Controller`] (config, maps); answers every admin request, scrape, MAC change and health transition in turn; ages the connection table |
//! | `admin` | [`admin_server`], [`metrics_http`] | the admin socket for `lbctl`, and `GET /metrics` and the status page ([`status_page`]), on a small tokio runtime; hands each request to the controller |
//! | `neighbours` | [`neighbours`] | keeps real MACs in step with the kernel's neighbour table |
//! | `health` | `crate::health` | the checker's probes; transitions go to the controller |
//! | `table` | [`table_thread`] | walks of the whole connection table: ageing passes and `lbctl flows` |
//! | `vrrp`, `sync` | [`failover`], [`flow_sync`] | with `[vrrp]`: director failover and connection-table sync |
//! | `share` | [`flow_share`] | with `[ecmp.sync]`: flows shared with every other director |
//! | `datapath-log` | [`event_log`] | the data path's rare events (when `log_events` is on) into the log |
//!
//! They talk to the controller through one channel of [`Event`]s.

mod admin_server;
mod announcer;
mod controller_loop;
mod event_log;
mod evidence;
mod failover;
pub mod flow_share;
mod flow_sync;
mod metrics_http;
mod neighbours;
mod notify;
mod poll;
mod startup;
pub mod status_page;
mod table_thread;
pub mod teardown;
mod vips;

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    time::Instant,
};

use anyhow::{Context, anyhow};
use tokio::sync::oneshot;

use crate::{
    admin::{Request, Response},
    ageing::AgeingPlan,
    balancer::AgeingContext,
    config::{self, Config, ConfigErrors, SystemEnvironment},
    control::Controller,
    dataplane::DataplaneError,
    health::scheduler::HealthEvent,
    metrics::Metrics,
    netlink::Netlink,
};

use controller_loop::{Host, controller_loop, unix_now};
use startup::{RemoveOnDrop, Vips};

/// What the controller thread is asked to do.
pub(crate) enum Event {
    Admin(Request, oneshot::Sender<Response>),
    /// SIGHUP.
    Reload,
    /// A real's MAC appeared, changed or went away.
    Mac(IpAddr, Option<[u8; 6]>),
    /// A health-check result.
    Health(HealthEvent),
    /// A Prometheus scrape: the exposition text.
    Scrape(oneshot::Sender<String>),
    /// `GET /api/status` for the status page: its JSON (history samples
    /// after `since` only, when given), or why the maps could not be read.
    StatusPage {
        since: Option<f64>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// This director's VRRP role (master or not) and where packets of flows
    /// it does not know go.
    Role {
        master: bool,
        handover: failover::Handover,
    },
    /// The table thread finished the walk of an ageing pass (boxed: a plan
    /// is large next to the other events).
    Aged(Result<Box<AgeingPlan>, DataplaneError>, AgeingContext),
    Shutdown,
}

/// The reals the neighbour thread must keep resolved, shared with it.
pub(crate) type Wanted = Arc<Mutex<BTreeSet<IpAddr>>>;

/// A config file as the daemon runs it: the typed config, the text it came
/// from (lbctl edits keep its comments) and its path (reloads read it again).
pub struct DaemonConfig {
    pub path: PathBuf,
    pub config: Config,
    pub text: String,
}

impl DaemonConfig {
    /// Reads and validates `path`; the errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let (config, text) = config::load(path, &SystemEnvironment)?;
        Ok(Self {
            path: path.to_owned(),
            config,
            text,
        })
    }
}

/// What the owner of a running daemon asks of it.
enum Signal {
    Reload,
    Stop,
}

/// The owner's side of [`Shutdown`]: `lbd` calls it from its signal handlers
/// (SIGHUP, SIGTERM/SIGINT), a test directly. Dropping every trigger stops
/// the daemon too.
#[derive(Clone)]
pub struct Trigger(tokio::sync::mpsc::UnboundedSender<Signal>);

impl Trigger {
    /// Re-read the config file (like `lbctl reload`, errors are logged).
    pub fn reload(&self) {
        let _ = self.0.send(Signal::Reload);
    }

    /// Stop: [`run`] returns once every part has stopped.
    pub fn stop(&self) {
        let _ = self.0.send(Signal::Stop);
    }
}

/// The daemon's side: [`run`] watches it. Requests sent before the daemon is
/// up wait in it.
pub struct Shutdown(tokio::sync::mpsc::UnboundedReceiver<Signal>);

/// A connected [`Trigger`] and [`Shutdown`].
#[must_use]
pub fn shutdown_channel() -> (Trigger, Shutdown) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (Trigger(tx), Shutdown(rx))
}

/// Runs the daemon until `shutdown` fires.
///
/// Startup: the admin socket and the metrics address are bound first (a
/// second lbd on the same socket is refused), then the data path is loaded
/// or adopted from the pins, programmed and attached, and the VIPs are held
/// (or the VRRP thread started); only then are requests served.
///
/// Shutdown, in this order: (1) the admin socket and `/metrics` stop
/// answering and the controller finishes the event at hand; (2) with
/// `[vrrp]`, the last flows go to the peer, a priority-0 advertisement
/// hands over at once and the VIPs are released, and the VRRP and sync
/// threads end; (3) the health checker stops; (4) the table thread
/// finishes the walk at hand; (5) the neighbour thread ends; (6) the admin
/// socket file is removed, the event reader ends. The data path stays
/// attached and forwarding (pinned); `lbd teardown` removes it. With
/// `[ecmp]`, (2) withdraws every VIP from the router first; with
/// `[ecmp.sync]` the flow-sharing thread goes on for [`WITHDRAW_GRACE`]
/// (while the router moves the traffic away), sends what is pending and
/// ends.
pub fn run(config: DaemonConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let started = Instant::now();
    let DaemonConfig { path, config, text } = config;
    admin_server::refuse_if_running(&config.daemon.admin_socket)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (admin, metrics_listener) = {
        let _context = runtime.enter();
        (
            admin_server::bind(&config.daemon.admin_socket)?,
            metrics_http::bind(config.daemon.metrics_address)?,
        )
    };
    // Removed however run ends (a killed lbd's is removed by the next one).
    let socket_file = RemoveOnDrop(config.daemon.admin_socket.clone());

    let mut netlink = Netlink::open().context("opening rtnetlink")?;
    let interfaces = startup::interfaces(&mut netlink, &config)?;

    let (mut lb, adopted) = startup::open_data_path(&config)?;
    let previous_vips: BTreeSet<IpAddr> = lb.service_addrs().map(|s| s.vip).collect();
    let ifaces: Vec<(u32, [u8; 6])> = interfaces.iter().map(|(_, i, m)| (*i, *m)).collect();
    lb.dataplane_mut()
        .set_interfaces(&ifaces)
        .context("configuring interfaces")?;
    let event_log = event_log::EventLog::start(lb.dataplane_mut(), config.dataplane.log_events)?;

    let on_link: Vec<u32> = ifaces.iter().map(|(i, _)| *i).collect();
    let mut resolver = neighbours::Resolver::new(on_link);
    let macs = startup::initial_macs(&mut resolver, &mut netlink, &config);

    let apply_started = Instant::now();
    let mut controller = Controller::new(
        lb,
        config.clone(),
        text,
        path.clone(),
        Box::new(SystemEnvironment),
        macs,
        adopted.macs,
    );
    controller.apply_all().context("programming services")?;
    let apply_ms = apply_started.elapsed().as_secs_f64() * 1e3;

    startup::attach_all(&mut controller, &interfaces, &config)?;
    let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
    let share = startup::start_share(&mut controller, &config, &metrics)?;
    let vip_iface = interfaces[0].1;
    let (events, inbox) = mpsc::channel::<Event>();
    let vips = startup::vip_holder(
        &config,
        &mut netlink,
        &interfaces,
        &controller,
        &previous_vips,
        (&metrics, &events),
        share.as_ref(),
    )?;
    log_ready(&controller, &path, apply_ms, started);

    let wanted: Wanted = Arc::new(Mutex::new(controller.reals_to_resolve()));
    let refresh = config.daemon.neighbour_refresh;
    let (waker, wake) = mpsc::channel::<()>();
    let neighbour_thread = startup::spawn_neighbours(resolver, &wanted, &events, refresh, wake)?;
    let server_events = events.clone();
    let admin_thread = std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(metrics_http::serve(metrics_listener, server_events.clone()));
                admin_server::serve(admin, shutdown, server_events).await;
            });
            // Dropping the runtime here ends the metrics server and any
            // admin connection still waiting for an answer.
        })?;

    // "The running config was loaded at": startup counts as a load.
    metrics.observe_reload(true, unix_now());
    let (health_runtime, checker) = startup::start_checker(&controller, &events, &metrics)?;
    let table = startup::start_table(&controller, &events)?;
    let evidence = startup::start_evidence(&controller, &checker)?;
    let mut host = Host {
        table,
        netlink,
        vip_iface,
        vips,
        wanted,
        waker,
        checker,
        metrics,
        generation: controller.generation(),
        page: status_page::StatusPage::new(),
        notify: notify::Notifier::from_env(),
        evidence,
        share,
    };
    // The admin thread serves the socket and the controller answers from
    // the next line on: now systemd may consider lbd started.
    host.notify.ready(&controller);
    controller_loop(&mut controller, &inbox, &mut host);
    Parts {
        admin_thread,
        host,
        health_runtime,
        neighbour_thread,
        events,
        event_log,
        socket_file,
    }
    .stop();
    Ok(())
}

/// Logs the reals still without a MAC and the start-up figures.
fn log_ready(controller: &Controller, path: &Path, apply_ms: f64, started: Instant) {
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
}

/// How long a stop waits for the last flow reports to go out.
const SHARE_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_millis(200);
/// After withdrawing the VIPs at a graceful stop, the sharing goes on this
/// long: BIRD and the router take a few milliseconds to move the traffic
/// (measured: 10-130 ms to leave the router's route), and flows opened
/// meanwhile must reach the peers.
const WITHDRAW_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// What [`run`] stops once the controller loop has ended.
struct Parts {
    admin_thread: std::thread::JoinHandle<()>,
    host: Host,
    health_runtime: tokio::runtime::Runtime,
    neighbour_thread: std::thread::JoinHandle<()>,
    events: mpsc::Sender<Event>,
    event_log: event_log::EventLog,
    socket_file: RemoveOnDrop,
}

impl Parts {
    /// The shutdown order documented on [`run`].
    fn stop(self) {
        tracing::info!("stopping");
        self.host.notify.stopping();
        let Self {
            admin_thread,
            host,
            health_runtime,
            neighbour_thread,
            events,
            event_log,
            socket_file,
        } = self;
        // (1) The admin thread has left its loop (it sent the stop).
        let _ = admin_thread.join();
        let Host {
            vips,
            waker,
            checker,
            table,
            mut netlink,
            evidence,
            share,
            ..
        } = host;
        // (2) Hand over to the peer director, or withdraw the VIPs from
        // the router (the data path keeps forwarding what still arrives).
        let withdrew = match vips {
            Vips::Vrrp(failover) => {
                failover.stop();
                false
            }
            Vips::Ecmp(mut announcer) => {
                announcer.withdraw_all(&mut netlink);
                true
            }
            Vips::Direct(_) => false,
        };
        // (2a) With [ecmp.sync]: the flows opened until the router has
        // moved away (a few ms after the withdrawal) go to the other
        // directors too, then the last of them.
        if let Some(share) = share {
            if withdrew {
                std::thread::sleep(WITHDRAW_GRACE);
            }
            share.flush(SHARE_FLUSH_LIMIT);
            share.stop();
        }
        // (3) No more probes (nor evidence asking for them).
        evidence.stop();
        drop(checker);
        health_runtime.shutdown_background();
        // (4) The table thread finishes the walk at hand.
        table.stop();
        // (5) The neighbour thread ends when its waker goes.
        drop(waker);
        drop(events);
        let _ = neighbour_thread.join();
        // (6)
        event_log.stop();
        drop(socket_file);
        tracing::info!("stopped; the data path keeps forwarding (`lbd teardown` removes it)");
    }
}

/// Validates `path` for `lbd check-config`: a one-line summary, or every
/// error as `FILE:LINE: FIELD: what`.
pub fn check_config(path: &Path) -> Result<String, ConfigErrors> {
    let (cfg, _) = config::load(path, &SystemEnvironment)?;
    Ok(format!(
        "{}: ok ({} services, {} reals)",
        path.display(),
        cfg.services.len(),
        cfg.services.iter().map(|s| s.reals.len()).sum::<usize>()
    ))
}

/// `DaemonConfig::load` for callers that want `anyhow`.
pub fn load(path: &Path) -> anyhow::Result<DaemonConfig> {
    DaemonConfig::load(path).map_err(|e| anyhow!("{e}"))
}
