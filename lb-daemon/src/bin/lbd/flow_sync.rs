//! The connection-table sync thread (`[vrrp.sync]`).
//!
//! Master: every `interval`, walks its connection table and sends the peer
//! each flow that is new or changed since the last round (a live flow's
//! last-seen stamp moves about once a second, so live flows are re-sent
//! about once a second and the peer's copies do not age out); answers a
//! `DumpRequest` with the whole table and `DumpEnd`.
//! Backup: writes the flows it receives into its own table; while the VRRP
//! thread waits for the table (startup, link back up), asks the master for a
//! dump each round and tells the VRRP thread when `DumpEnd` arrives, so a
//! returning higher-priority director preempts only once it knows every
//! flow.
//!
//! Cost: the master's walk is two syscalls per flow per round (about a
//! second per million flows), on this thread only.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;
use lb_common::{FlowKey, FlowValue};
use lb_daemon::{
    admin::SyncStatus,
    balancer::monotonic_now_ns,
    config::SyncConfig,
    dataplane::PinDir,
    metrics::Metrics,
    sync::{
        Key, Message, ReplayGuard, Sequencer, SyncSocket, decode, encode, encode_flows,
        table::{Applied, Index, PinnedTables, Unknown},
        wire::{FlowRecord, WireError, unix_ms_now},
    },
};

use crate::failover::{SyncFlags, TableNotifier};

/// Receive buffer: larger than any valid datagram, so a cut one is seen.
const RECV_BUFFER: usize = 2048;

/// Starts the sync thread; it runs until lbd exits.
pub fn start(
    cfg: &SyncConfig,
    pins: &PinDir,
    flags: Arc<SyncFlags>,
    notifier: TableNotifier,
    status: Arc<Mutex<SyncStatus>>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let key = Key::new(cfg.key.as_bytes()).context("vrrp.sync.key")?;
    let listen = cfg.listen.unwrap_or(match cfg.peer {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let socket = SyncSocket::bind(SocketAddr::new(listen, cfg.port))
        .with_context(|| format!("binding the sync socket on {listen} port {}", cfg.port))?;
    let tables = PinnedTables::open(pins).context("opening the pinned maps for sync")?;
    let sequencer = Sequencer::random().map_err(|_| anyhow::anyhow!("no random sender id"))?;
    let guard = ReplayGuard::new(sequencer.sender());
    let mut sync = FlowSync {
        peer: SocketAddr::new(cfg.peer, cfg.port),
        interval: cfg.interval,
        key,
        sequencer,
        guard,
        socket,
        tables,
        index: Index::default(),
        sent: HashMap::new(),
        flags,
        notifier,
        status,
        metrics,
    };
    std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || sync.run())?;
    Ok(())
}

struct FlowSync {
    peer: SocketAddr,
    interval: Duration,
    key: Key,
    sequencer: Sequencer,
    guard: ReplayGuard,
    socket: SyncSocket,
    tables: PinnedTables,
    index: Index,
    /// What the peer was last sent of each flow: (real slot, state,
    /// last-seen stamp).
    sent: HashMap<FlowKey, (u32, u32, u64)>,
    flags: Arc<SyncFlags>,
    notifier: TableNotifier,
    status: Arc<Mutex<SyncStatus>>,
    metrics: Arc<Metrics>,
}

impl FlowSync {
    fn run(&mut self) {
        let mut next_round = Instant::now();
        let mut was_master = false;
        loop {
            wait(
                &self.socket,
                next_round.saturating_duration_since(Instant::now()),
            );
            self.receive();
            if Instant::now() < next_round {
                continue;
            }
            next_round = Instant::now() + self.interval;
            let is_master = self.flags.is_master.load(Ordering::Relaxed);
            if is_master {
                if !was_master {
                    // A new term: the peer's copy is unknown, send it all.
                    self.sent.clear();
                }
                if let Err(e) = self.send_changes() {
                    tracing::warn!(error = %e, "sync: reading the connection table");
                }
            } else if self.flags.want_table.load(Ordering::Relaxed) {
                self.send(&Message::DumpRequest);
            }
            was_master = is_master;
        }
    }

    fn receive(&mut self) {
        let mut buf = [0u8; RECV_BUFFER];
        loop {
            let (len, from) = match self.socket.recv(&mut buf) {
                Ok(Some(got)) => got,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "sync receive");
                    return;
                }
            };
            let decoded = decode(&self.key, &buf[..len], unix_ms_now())
                .and_then(|(header, message)| self.guard.check(&header).map(|()| message));
            match decoded {
                Ok(message) => self.handle(message),
                Err(e) => {
                    tracing::warn!(from = %from, error = %e, "sync datagram rejected");
                    self.metrics.count_sync_rejected(reject_label(&e));
                    let mut status = self.status.lock().expect("sync status");
                    status.datagrams_rejected += 1;
                    status.last_rejection = Some(format!("from {from}: {e}"));
                }
            }
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Flows { records } => self.apply(&records),
            Message::DumpRequest => {
                if self.flags.is_master.load(Ordering::Relaxed) {
                    self.send_dump();
                }
            }
            Message::DumpEnd { records_sent } => {
                if self.flags.want_table.swap(false, Ordering::Relaxed) {
                    tracing::info!(flows = records_sent, "sync: the master's table has arrived");
                    self.notifier.table_received();
                }
                self.status.lock().expect("sync status").table_received = true;
            }
        }
    }

    /// Writes received flows, unless this director is master (then its own
    /// data path owns the table).
    fn apply(&mut self, records: &[FlowRecord]) {
        let count = records.len() as u64;
        self.metrics.count_sync("received", count);
        self.status.lock().expect("sync status").flows_received += count;
        if self.flags.is_master.load(Ordering::Relaxed) {
            return;
        }
        let now = monotonic_now_ns();
        let (mut applied, mut unknown) = (0, 0);
        let mut refreshed = false;
        for record in records {
            let mut result = self.tables.apply(&self.index, record, now);
            if matches!(result, Ok(Applied::Unknown(_))) && !refreshed {
                // The config may have changed since the index was read.
                refreshed = true;
                self.refresh_index();
                result = self.tables.apply(&self.index, record, now);
            }
            match result {
                Ok(Applied::Inserted | Applied::Updated) => applied += 1,
                Ok(Applied::Unknown(what)) => {
                    unknown += 1;
                    tracing::debug!(
                        client = %record.client,
                        vip = %record.vip,
                        real = %record.real,
                        unknown = match what {
                            Unknown::Service => "service",
                            Unknown::Real => "real",
                        },
                        "sync: flow for a service or real this director does not have"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "sync: writing a flow"),
            }
        }
        self.metrics.count_sync("applied", applied);
        let mut status = self.status.lock().expect("sync status");
        status.flows_applied += applied;
        status.flows_unknown += unknown;
    }

    fn refresh_index(&mut self) {
        match self.tables.index() {
            Ok(index) => self.index = index,
            Err(e) => tracing::warn!(error = %e, "sync: reading services and reals"),
        }
    }

    /// The flows that are new or changed since the last round.
    fn send_changes(&mut self) -> anyhow::Result<()> {
        let flows = self.tables.flows()?;
        self.refresh_index();
        let now = monotonic_now_ns();
        let mut records = Vec::new();
        let mut present = HashMap::with_capacity(flows.len());
        for (key, value) in &flows {
            let stamp = (value.real, value.state, value.last_seen_ns);
            if self.sent.get(key) != Some(&stamp)
                && let Some(record) = self.index.record(key, value, now)
            {
                records.push(record);
            }
            present.insert(*key, stamp);
        }
        self.sent = present;
        self.send_records(&records);
        Ok(())
    }

    fn send_dump(&mut self) {
        let flows: Vec<(FlowKey, FlowValue)> = match self.tables.flows() {
            Ok(flows) => flows,
            Err(e) => {
                tracing::warn!(error = %e, "sync: reading the connection table for a dump");
                return;
            }
        };
        self.refresh_index();
        let now = monotonic_now_ns();
        let records: Vec<FlowRecord> = flows
            .iter()
            .filter_map(|(k, v)| self.index.record(k, v, now))
            .collect();
        self.send_records(&records);
        self.send(&Message::DumpEnd {
            records_sent: records.len() as u64,
        });
        tracing::info!(flows = records.len(), peer = %self.peer, "sync: sent the whole table");
    }

    fn send_records(&mut self, records: &[FlowRecord]) {
        if records.is_empty() {
            return;
        }
        for datagram in encode_flows(&self.key, &mut self.sequencer, unix_ms_now(), records) {
            self.transmit(&datagram);
        }
        let count = records.len() as u64;
        self.metrics.count_sync("sent", count);
        self.status.lock().expect("sync status").flows_sent += count;
    }

    fn send(&mut self, message: &Message) {
        let header = self.sequencer.next_header(unix_ms_now());
        let datagram = encode(&self.key, &header, message);
        self.transmit(&datagram);
    }

    fn transmit(&self, datagram: &[u8]) {
        if let Err(e) = self.socket.send_to(datagram, self.peer) {
            // The peer may be down: that is what failover is for.
            tracing::debug!(peer = %self.peer, error = %e, "sync send");
        }
    }
}

/// A short label for `lb_sync_rejected_total{reason}`.
fn reject_label(error: &WireError) -> &'static str {
    match error {
        WireError::BadTag => "authentication",
        WireError::Replay { .. } | WireError::Reflected => "replay",
        WireError::Stale { .. } | WireError::FromFuture { .. } => "clock",
        _ => "malformed",
    }
}

fn wait(socket: &SyncSocket, timeout: Duration) {
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for the whole call.
    unsafe {
        libc::poll(&raw mut fd, 1, ms);
    }
}
