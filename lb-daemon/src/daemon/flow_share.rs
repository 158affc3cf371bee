//! The flow-sharing thread (`[ecmp.sync]`): every director tells every
//! other director about the flows it opens, completes and closes, so that a
//! flow the router moves to another director (one joins, is drained, or
//! dies) stays on its real.
//!
//! Incremental: the data path writes a record into the `SHARE_EVENTS` ring
//! buffer when it opens a flow, completes a handshake or sees a FIN/RST
//! (`xdp-ebpf/src/share.rs`); this thread wakes on the ring's descriptor,
//! turns the records into [`FlowRecord`]s (addresses, not slots), and sends
//! them to every peer in the authenticated datagrams of the VRRP sync
//! ([`crate::sync::wire`]). A record waits at most [`Options::linger`] for
//! others to share its datagram. Nothing re-reads the whole table for that.
//!
//! Received records are written as *learned* flows (`FLOW_F_LEARNED`),
//! never over a flow this director forwards ([`crate::sync::learn`]). A
//! learned flow counts in no real's connections here; the data path counts
//! it (and clears the flag) when it forwards a packet of it, and the ageing
//! repair skips learned flows, so each director's active/inactive counts
//! are the flows it carries, and a real's load over the whole site is the
//! sum over directors.
//!
//! Peers' copies must not age out while a flow lives: every
//! [`Options::refresh`] (and once at start, which also covers flows opened
//! while this lbd was down) the thread reads both tables and sends its
//! *own* flows, not the learned ones, so each flow is refreshed by the
//! director that carries it and nothing is re-broadcast N² times. The
//! refresh goes out in slices between ring reads, so new flows are not held
//! up behind it.
//!
//! At start it asks each peer for its whole table (`DumpRequest`), again
//! every [`REQUEST_AGAIN`] until a complete one arrived (`DumpEnd` counts
//! the records); [`ShareHandle::learned`] says when every peer's has. A
//! dump holds the peer's own and learned flows and travels under a sender
//! id of its own, so its datagrams stay consecutive whatever else is sent
//! meanwhile (that is how the receiver checks it is complete).

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::{
        fd::{AsFd, AsRawFd},
        unix::net::UnixDatagram,
    },
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use lb_common::{FLOW_F_LEARNED, FlowEvent, FlowValue, map_names as names};

use crate::{
    admin::{SharePeerStatus, ShareStatus, unix_seconds},
    balancer::monotonic_now_ns,
    config::ShareConfig,
    dataplane::{FlowTable, PinDir},
    metrics::Metrics,
    sync::{
        Header, Key, Message, ReplayGuard, Sequencer, SyncSocket, decode, encode, encode_flows,
        learn::LearnTables,
        table::{Index, PinnedTables},
        wire::{FlowRecord, RECORDS_PER_DATAGRAM_V4, WireError, unix_ms_now},
    },
};

use super::flow_sync::dump_records;

/// Receive buffer: larger than any valid datagram, so a cut one is seen.
const RECV_BUFFER: usize = 2048;
/// A peer that has not sent its whole table is asked again this often.
pub const REQUEST_AGAIN: Duration = Duration::from_secs(2);
/// A peer's requests within this long after its dump ended are ignored
/// (sent while it was on its way).
const DUMP_GAP: Duration = Duration::from_secs(1);
/// The slot index is re-read before use when older than this.
const INDEX_AGE: Duration = Duration::from_millis(500);
/// Records of a refresh or dump sent per slice (8 full IPv4 datagrams),
/// with ring reads and received datagrams handled between slices.
const SLICE_RECORDS: usize = 8 * RECORDS_PER_DATAGRAM_V4;
/// Pause between slices: about 200,000 records a second, what a receiver
/// writes into its tables (about a lookup per record, 1.5 to 3 µs here)
/// with room to spare for the reports of new flows. Faster, and a whole table
/// would overflow the receiver's socket buffer (the VRRP sync writes a
/// datagram with one batch call and can be sent 3 million a second).
const SLICE_GAP: Duration = Duration::from_millis(2);
/// Datagrams of a peer counted while its table is awaited, at most (about
/// 50 million flows' worth); beyond, the count starts again.
const MAX_COUNTED_DATAGRAMS: usize = 1 << 20;
/// The data path's drop counter is read this often.
const DROPPED_EVERY: Duration = Duration::from_secs(1);
/// Records read from the ring per pass at most (then datagrams are sent
/// and the socket is read before the next pass).
const RING_PASS: usize = 4096;

/// Timers of the sharing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// A full send of this director's own flows this often (and at start),
    /// so that peers' copies of live flows do not age out. Must be well
    /// below the shortest flow timeout (`tcp_syn`, 60 s by default).
    pub refresh: Duration,
    /// A report waits at most this long for others to fill its datagram.
    pub linger: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(30),
            linger: Duration::from_millis(1),
        }
    }
}

enum Command {
    /// Send what the ring holds now, then answer.
    Flush(mpsc::Sender<()>),
    /// Send every own flow to every peer now (as every `refresh`).
    Refresh,
    Stop,
}

/// The daemon's handle on the sharing thread.
pub struct ShareHandle {
    commands: mpsc::Sender<Command>,
    wake: UnixDatagram,
    thread: std::thread::JoinHandle<()>,
    status: Arc<Mutex<ShareStatus>>,
    learned: Arc<AtomicBool>,
}

impl ShareHandle {
    /// Whether every peer has sent its whole table since the start (a peer
    /// that is down never does: combine with a bounded delay).
    #[must_use]
    pub fn learned(&self) -> bool {
        self.learned.load(Ordering::Relaxed)
    }

    /// The flag behind [`ShareHandle::learned`], for a thread that only
    /// reads it.
    #[must_use]
    pub fn learned_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.learned)
    }

    /// Counters for `lbctl` and the status page.
    #[must_use]
    pub fn status(&self) -> ShareStatus {
        self.status.lock().expect("share status").clone()
    }

    /// Sends the reports the ring holds now to every peer, waiting at most
    /// `limit` (lbd is about to stop or withdraw).
    pub fn flush(&self, limit: Duration) {
        let (done, wait) = mpsc::channel();
        if self.commands.send(Command::Flush(done)).is_ok() {
            let _ = self.wake.send(&[1]);
            let _ = wait.recv_timeout(limit);
        }
    }

    /// Sends every flow this director carries to every peer now, as it
    /// does every [`Options::refresh`] (e.g. before it starts to announce
    /// its VIPs again after a drain).
    pub fn refresh(&self) {
        if self.commands.send(Command::Refresh).is_ok() {
            let _ = self.wake.send(&[1]);
        }
    }

    /// Ends the thread (after a [`ShareHandle::flush`], if wanted). The
    /// data path goes on reporting into the ring; a restarted lbd sends
    /// what it finds there.
    pub fn stop(self) {
        if self.commands.send(Command::Stop).is_ok() {
            let _ = self.wake.send(&[1]);
            let _ = self.thread.join();
        }
    }
}

/// Starts the sharing thread with the default [`Options`]. The data path
/// must be pinned under `pins`, and its reports switched on
/// (`Dataplane::set_share_flows`).
pub fn start(
    cfg: &ShareConfig,
    pins: &PinDir,
    metrics: Arc<Metrics>,
) -> anyhow::Result<ShareHandle> {
    start_with(cfg, pins, metrics, Options::default())
}

/// [`start`] with other timers (tests, benchmarks).
pub fn start_with(
    cfg: &ShareConfig,
    pins: &PinDir,
    metrics: Arc<Metrics>,
    options: Options,
) -> anyhow::Result<ShareHandle> {
    let key = Key::new(cfg.key.as_bytes()).context("ecmp.sync.key")?;
    let listen = cfg.listen.unwrap_or(match cfg.peers.first() {
        Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    let socket = SyncSocket::bind(SocketAddr::new(listen, cfg.port)).with_context(|| {
        format!(
            "binding the flow-sharing socket on {listen} port {}",
            cfg.port
        )
    })?;
    let ring = open_ring(pins).context("opening the flow-sharing ring buffer")?;
    let dropped = open_dropped(pins).context("opening the flow-sharing drop counter")?;
    let tables = PinnedTables::open(pins).context("opening the pinned maps for sharing")?;
    let flows = FlowTable::open(pins).context("opening the connection tables for sharing")?;
    let learn = LearnTables::open(pins).context("opening the connection tables for sharing")?;
    let random = || Sequencer::random().map_err(|_| anyhow::anyhow!("no random sender id"));
    let sequencer = random()?;
    let dump_sequencer = random()?;
    // Two ids per peer (flows and dumps), and room for their restarts.
    let guard = ReplayGuard::with_capacity(sequencer.sender(), 4 * cfg.peers.len() + 2);
    let peers: Vec<Peer> = cfg
        .peers
        .iter()
        .map(|ip| Peer::new(SocketAddr::new(*ip, cfg.port)))
        .collect();
    let status = Arc::new(Mutex::new(ShareStatus {
        listen: SocketAddr::new(listen, cfg.port).to_string(),
        peers: peers
            .iter()
            .map(|p| SharePeerStatus {
                peer: p.label.clone(),
                ..SharePeerStatus::default()
            })
            .collect(),
        ..ShareStatus::default()
    }));
    let learned = Arc::new(AtomicBool::new(false));
    let (wake, wake_rx) = UnixDatagram::pair().context("sharing wake-up socket")?;
    wake.set_nonblocking(true)?;
    wake_rx.set_nonblocking(true)?;
    let (commands, inbox) = mpsc::channel();
    let mut share = FlowShare {
        options,
        peers,
        key,
        sequencer,
        dump_sequencer,
        guard,
        socket,
        ring,
        dropped,
        tables,
        flows,
        learn,
        index: Index::default(),
        index_read: None,
        pending: Vec::new(),
        pending_since: None,
        jobs: VecDeque::new(),
        next_slice: Instant::now(),
        status: status.clone(),
        learned: learned.clone(),
        metrics,
    };
    let thread = std::thread::Builder::new()
        .name("share".into())
        .spawn(move || share.run(&inbox, &wake_rx))?;
    Ok(ShareHandle {
        commands,
        wake,
        thread,
        status,
        learned,
    })
}

fn open_ring(pins: &PinDir) -> anyhow::Result<RingBuf<MapData>> {
    let data = MapData::from_pin(pins.map(names::SHARE_EVENTS))?;
    Ok(RingBuf::try_from(Map::from_map_data(data)?)?)
}

fn open_dropped(pins: &PinDir) -> anyhow::Result<PerCpuArray<MapData, u64>> {
    let data = MapData::from_pin(pins.map(names::SHARE_DROPPED))?;
    Ok(PerCpuArray::try_from(Map::from_map_data(data)?)?)
}

/// One other director.
struct Peer {
    addr: SocketAddr,
    /// `addr` as text, the metrics' `peer` label.
    label: String,
    /// Its whole table has arrived since the start.
    table_received: bool,
    /// The dump asked for and not yet complete.
    request: Option<Request>,
    last_dump_sent: Option<Instant>,
}

impl Peer {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            label: addr.to_string(),
            table_received: false,
            request: None,
            last_dump_sent: None,
        }
    }
}

/// A whole table asked of a peer.
struct Request {
    sent_at: Instant,
    /// Records per datagram received since, by (sender, sequence).
    datagrams: HashMap<(u64, u64), u64>,
}

/// Records waiting to go out in slices.
struct Job {
    /// `None`: every peer (a refresh); `Some(i)`: a dump for peer `i`.
    dump_for: Option<usize>,
    records: Vec<FlowRecord>,
    sent: usize,
}

struct FlowShare {
    options: Options,
    peers: Vec<Peer>,
    key: Key,
    sequencer: Sequencer,
    /// Dumps only: their datagrams and `DumpEnd` are consecutive.
    dump_sequencer: Sequencer,
    guard: ReplayGuard,
    socket: SyncSocket,
    ring: RingBuf<MapData>,
    dropped: PerCpuArray<MapData, u64>,
    tables: PinnedTables,
    flows: FlowTable,
    learn: LearnTables,
    index: Index,
    index_read: Option<Instant>,
    /// Reports read from the ring, not sent yet.
    pending: Vec<FlowRecord>,
    pending_since: Option<Instant>,
    jobs: VecDeque<Job>,
    /// When the next slice of the first job may go.
    next_slice: Instant,
    status: Arc<Mutex<ShareStatus>>,
    learned: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl FlowShare {
    fn run(&mut self, inbox: &mpsc::Receiver<Command>, wake: &UnixDatagram) {
        let now = Instant::now();
        let mut next_refresh = now;
        let mut next_dropped = now;
        self.learned.store(self.peers.is_empty(), Ordering::Relaxed);
        loop {
            let now = Instant::now();
            let mut deadline = next_refresh.min(next_dropped);
            if let Some(since) = self.pending_since {
                deadline = deadline.min(since + self.options.linger);
            }
            if !self.jobs.is_empty() {
                deadline = deadline.min(self.next_slice);
            }
            for peer in &self.peers {
                if !peer.table_received {
                    let asked = peer.request.as_ref().map(|r| r.sent_at + REQUEST_AGAIN);
                    deadline = deadline.min(asked.unwrap_or(now));
                }
            }
            crate::daemon::poll::wait_readable(
                &[
                    self.socket.as_raw_fd(),
                    self.ring.as_fd().as_raw_fd(),
                    wake.as_raw_fd(),
                ],
                deadline.saturating_duration_since(now),
            );
            while wake.recv(&mut [0; 16]).is_ok() {}
            while let Ok(command) = inbox.try_recv() {
                match command {
                    Command::Flush(done) => {
                        self.read_ring();
                        self.send_pending(true);
                        let _ = done.send(());
                    }
                    Command::Refresh => self.queue_refresh(),
                    Command::Stop => return,
                }
            }
            self.read_ring();
            self.send_pending(false);
            self.receive();
            let now = Instant::now();
            self.ask_for_tables(now);
            if now >= next_refresh {
                next_refresh = now + self.options.refresh;
                self.queue_refresh();
            }
            if now >= next_dropped {
                next_dropped = now + DROPPED_EVERY;
                self.read_dropped();
            }
            self.send_slice();
        }
    }

    /// The slot index, re-read when older than [`INDEX_AGE`] or `force`d.
    fn fresh_index(&mut self, force: bool) {
        if !force && self.index_read.is_some_and(|t| t.elapsed() < INDEX_AGE) {
            return;
        }
        match self.tables.index() {
            Ok(index) => {
                self.index = index;
                self.index_read = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "sharing: reading services and reals"),
        }
    }

    /// Moves the ring's reports into `pending` (up to [`RING_PASS`]).
    fn read_ring(&mut self) {
        let mut events = Vec::new();
        while events.len() < RING_PASS {
            let Some(item) = self.ring.next() else { break };
            if item.len() >= size_of::<FlowEvent>() {
                // SAFETY: the data path writes whole `FlowEvent`s (plain
                // integers); the item may not be aligned for it.
                events.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<FlowEvent>()) });
            }
        }
        if events.is_empty() {
            return;
        }
        self.metrics.share().count_ringbuf_read(events.len() as u64);
        self.status.lock().expect("share status").ringbuf_read += events.len() as u64;
        self.fresh_index(false);
        let now = monotonic_now_ns();
        let mut refreshed = false;
        for event in &events {
            let value = FlowValue {
                real: event.real,
                state: event.state,
                service: 0,
                flags: 0,
                last_seen_ns: now,
            };
            let mut record = self.index.record(&event.key, &value, now);
            if record.is_none() && !refreshed {
                // A real added since the index was read.
                refreshed = true;
                self.fresh_index(true);
                record = self.index.record(&event.key, &value, now);
            }
            if let Some(record) = record.filter(FlowRecord::is_encodable) {
                self.pending.push(record);
            }
        }
        if self.pending_since.is_none() && !self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
        }
    }

    /// Sends the pending reports: full datagrams at once, the rest when
    /// the oldest has waited [`Options::linger`] (or `all`).
    fn send_pending(&mut self, all: bool) {
        let Some(since) = self.pending_since else {
            return;
        };
        let waited = if all { Duration::MAX } else { since.elapsed() };
        let count = send_now(self.pending.len(), waited, self.options.linger);
        if count == 0 {
            return;
        }
        let records: Vec<FlowRecord> = self.pending.drain(..count).collect();
        self.send_to_all(&records);
        self.pending_since = (!self.pending.is_empty()).then(Instant::now);
    }

    fn send_to_all(&mut self, records: &[FlowRecord]) {
        let datagrams = encode_flows(&self.key, &mut self.sequencer, unix_ms_now(), records);
        for i in 0..self.peers.len() {
            self.transmit(i, &datagrams, records.len() as u64);
        }
    }

    /// Sends `datagrams` (holding `records`) to peer `i` and counts them.
    fn transmit(&self, i: usize, datagrams: &[Vec<u8>], records: u64) {
        let peer = &self.peers[i];
        for datagram in datagrams {
            if let Err(e) = self.socket.send_to(datagram, peer.addr) {
                // The peer may be down; a full send buffer loses this one
                // (the next refresh repairs it).
                tracing::debug!(peer = %peer.addr, error = %e, "sharing: send");
            }
        }
        let share = self.metrics.share();
        share.count_records(&peer.label, "sent", records);
        share.count_datagrams(&peer.label, "sent", datagrams.len() as u64);
        let mut status = self.status.lock().expect("share status");
        status.peers[i].records_sent += records;
        status.peers[i].datagrams_sent += datagrams.len() as u64;
    }

    fn send_message(&mut self, i: usize, message: &Message, dump: bool) {
        let sequencer = if dump {
            &mut self.dump_sequencer
        } else {
            &mut self.sequencer
        };
        let header = sequencer.next_header(unix_ms_now());
        let datagram = encode(&self.key, &header, message);
        self.transmit(i, &[datagram], 0);
    }

    /// Asks every peer whose table has not arrived, every
    /// [`REQUEST_AGAIN`].
    fn ask_for_tables(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let peer = &self.peers[i];
            let due = !peer.table_received
                && peer
                    .request
                    .as_ref()
                    .is_none_or(|r| now.duration_since(r.sent_at) >= REQUEST_AGAIN);
            if due {
                // What arrived for the previous request stays: a large
                // table takes longer than REQUEST_AGAIN to come (the peer
                // ignores requests while it sends one).
                let mut datagrams = self.peers[i]
                    .request
                    .take()
                    .map(|r| r.datagrams)
                    .unwrap_or_default();
                if datagrams.len() > MAX_COUNTED_DATAGRAMS {
                    datagrams.clear();
                }
                self.peers[i].request = Some(Request {
                    sent_at: now,
                    datagrams,
                });
                self.send_message(i, &Message::DumpRequest, false);
            }
        }
    }

    /// This director's own flows of both tables, for every peer.
    fn queue_refresh(&mut self) {
        if self.peers.is_empty() || self.jobs.iter().any(|j| j.dump_for.is_none()) {
            return;
        }
        let records = self.table_records(false);
        {
            let mut status = self.status.lock().expect("share status");
            status.refreshes += 1;
            status.last_refresh_flows = records.len() as u64;
        }
        self.jobs.push_back(Job {
            dump_for: None,
            records,
            sent: 0,
        });
    }

    /// Both tables as records: own flows only, or learned ones too.
    fn table_records(&mut self, with_learned: bool) -> Vec<FlowRecord> {
        let read = self
            .flows
            .flows()
            .and_then(|main| Ok((main, self.flows.half_open_flows()?)));
        let (main, half) = match read {
            Ok(tables) => tables,
            Err(e) => {
                tracing::warn!(error = %e, "sharing: reading the connection tables");
                return Vec::new();
            }
        };
        self.fresh_index(true);
        let now = monotonic_now_ns();
        main.iter()
            .chain(half.iter())
            .filter(|(_, v)| with_learned || v.flags & FLOW_F_LEARNED == 0)
            .filter_map(|(k, v)| self.index.record(k, v, now))
            .filter(FlowRecord::is_encodable)
            .collect()
    }

    /// One slice of the first queued job, when its time has come. A dump
    /// goes slower by the number of peers: all of them may be sending
    /// theirs to the same director (it asks all at once).
    fn send_slice(&mut self) {
        let now = Instant::now();
        if now < self.next_slice {
            return;
        }
        let Some(job) = self.jobs.front_mut() else {
            return;
        };
        let gap = match job.dump_for {
            None => SLICE_GAP,
            Some(_) => SLICE_GAP * u32::try_from(self.peers.len()).unwrap_or(u32::MAX),
        };
        self.next_slice = now + gap;
        let end = (job.sent + SLICE_RECORDS).min(job.records.len());
        let slice: Vec<FlowRecord> = job.records[job.sent..end].to_vec();
        job.sent = end;
        let done = job.sent == job.records.len();
        let dump_for = job.dump_for;
        let total = job.records.len() as u64;
        match dump_for {
            None => self.send_to_all(&slice),
            Some(i) => {
                let datagrams =
                    encode_flows(&self.key, &mut self.dump_sequencer, unix_ms_now(), &slice);
                self.transmit(i, &datagrams, slice.len() as u64);
            }
        }
        if done {
            self.jobs.pop_front();
            if let Some(i) = dump_for {
                self.send_message(
                    i,
                    &Message::DumpEnd {
                        records_sent: total,
                    },
                    true,
                );
                // Requests sent before this one arrived are answered.
                self.peers[i].last_dump_sent = Some(Instant::now());
                tracing::info!(peer = %self.peers[i].addr, flows = total, "sharing: sent the whole table");
            }
        }
    }

    fn receive(&mut self) {
        let mut buf = [0u8; RECV_BUFFER];
        loop {
            let (len, from) = match self.socket.recv(&mut buf) {
                Ok(Some(got)) => got,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "sharing: receive");
                    return;
                }
            };
            let peer = self.peers.iter().position(|p| p.addr.ip() == from.ip());
            let decoded =
                decode(&self.key, &buf[..len], unix_ms_now()).and_then(|(header, message)| {
                    self.guard.check(&header).map(|()| (header, message))
                });
            match decoded {
                Ok((header, message)) => self.handle(peer, &header, message),
                Err(e) => self.rejected(peer, from, &e),
            }
        }
    }

    fn rejected(&mut self, peer: Option<usize>, from: SocketAddr, error: &WireError) {
        self.metrics.share().count_rejected(reject_label(error));
        let mut status = self.status.lock().expect("share status");
        match peer {
            Some(i) => status.peers[i].datagrams_rejected += 1,
            None => status.datagrams_rejected_other += 1,
        }
        status.last_rejection = Some(format!("from {from}: {error}"));
        tracing::debug!(from = %from, error = %error, "sharing: datagram rejected");
    }

    fn handle(&mut self, peer: Option<usize>, header: &Header, message: Message) {
        if let Some(i) = peer {
            self.metrics
                .share()
                .count_datagrams(&self.peers[i].label, "received", 1);
            self.status.lock().expect("share status").peers[i].datagrams_received += 1;
        }
        match message {
            Message::Flows { records } => {
                if let Some(request) = peer.and_then(|i| self.peers[i].request.as_mut()) {
                    request
                        .datagrams
                        .insert((header.sender, header.seq), records.len() as u64);
                }
                self.apply(peer, &records);
            }
            Message::DumpRequest => {
                let Some(i) = peer else {
                    tracing::debug!("sharing: a whole-table request from a non-peer address");
                    return;
                };
                let now = Instant::now();
                let recent = self.peers[i]
                    .last_dump_sent
                    .is_some_and(|t| now.duration_since(t) < DUMP_GAP);
                let queued = self.jobs.iter().any(|j| j.dump_for == Some(i));
                if !recent && !queued {
                    let records = self.table_records(true);
                    self.jobs.push_back(Job {
                        dump_for: Some(i),
                        records,
                        sent: 0,
                    });
                }
            }
            Message::DumpEnd { records_sent } => {
                if let Some(i) = peer {
                    self.dump_ended(i, header, records_sent);
                }
            }
        }
    }

    fn dump_ended(&mut self, i: usize, end: &Header, records_sent: u64) {
        let Some(request) = self.peers[i].request.take() else {
            return;
        };
        if dump_records(&request.datagrams, end, records_sent) != Some(records_sent) {
            tracing::warn!(
                peer = %self.peers[i].addr,
                sent = records_sent,
                "sharing: a peer's table arrived incomplete (datagrams lost); asking again"
            );
            return;
        }
        if !self.peers[i].table_received {
            tracing::info!(peer = %self.peers[i].addr, flows = records_sent, "sharing: a peer's whole table has arrived");
        }
        self.peers[i].table_received = true;
        {
            let mut status = self.status.lock().expect("share status");
            status.peers[i].last_full_table = Some(unix_seconds(std::time::SystemTime::now()));
            status.peers[i].last_full_table_flows = records_sent;
        }
        if self.peers.iter().all(|p| p.table_received) {
            self.learned.store(true, Ordering::Relaxed);
            self.status.lock().expect("share status").learned = true;
        }
    }

    fn apply(&mut self, peer: Option<usize>, records: &[FlowRecord]) {
        let count = records.len() as u64;
        self.fresh_index(false);
        let now = monotonic_now_ns();
        let mut result = self.learn.apply(&self.index, records, now);
        if result.as_ref().is_ok_and(|r| r.unknown() > 0)
            && self
                .index_read
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(50))
        {
            // Perhaps a service or real added since the index was read.
            self.fresh_index(true);
            result = self.learn.apply(&self.index, records, now);
        }
        let applied = match result {
            Ok(applied) => applied,
            Err(e) => {
                tracing::warn!(error = %e, "sharing: writing received flows");
                return;
            }
        };
        let mut status = self.status.lock().expect("share status");
        status.flows_unknown += applied.unknown();
        if let Some(i) = peer {
            let label = &self.peers[i].label;
            self.metrics.share().count_records(label, "received", count);
            self.metrics
                .share()
                .count_records(label, "applied", applied.written);
            status.peers[i].records_received += count;
            status.peers[i].records_applied += applied.written;
        }
    }

    fn read_dropped(&mut self) {
        let Ok(per_cpu) = self.dropped.get(&0, 0) else {
            return;
        };
        let total: u64 = per_cpu.iter().sum();
        self.metrics.share().set_ringbuf_dropped(total);
        self.status.lock().expect("share status").ringbuf_dropped = total;
    }
}

/// How many of `pending` reports to send now, the oldest having waited
/// `waited`: all once it has waited `linger`, else only those that fill
/// whole datagrams (IPv4 ones; IPv6 records take more room, so a
/// datagram's worth of them goes out as two).
fn send_now(pending: usize, waited: Duration, linger: Duration) -> usize {
    if waited >= linger {
        pending
    } else {
        pending / RECORDS_PER_DATAGRAM_V4 * RECORDS_PER_DATAGRAM_V4
    }
}

/// A short label for `lb_share_rejected_total{reason}`.
fn reject_label(error: &WireError) -> &'static str {
    match error {
        WireError::BadTag => "authentication",
        WireError::Replay { .. } | WireError::Reflected => "replay",
        WireError::Stale { .. } | WireError::FromFuture { .. } => "clock",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_go_out_in_full_datagrams_or_after_the_linger() {
        let ms = Duration::from_millis;
        let per = RECORDS_PER_DATAGRAM_V4;
        assert_eq!(send_now(0, ms(5), ms(1)), 0);
        // A lone report waits for company, but not longer than the linger.
        assert_eq!(send_now(1, ms(0), ms(1)), 0);
        assert_eq!(send_now(1, ms(1), ms(1)), 1);
        // Full datagrams leave at once; the rest waits.
        assert_eq!(send_now(per, ms(0), ms(1)), per);
        assert_eq!(send_now(2 * per + 7, ms(0), ms(1)), 2 * per);
        assert_eq!(send_now(2 * per + 7, ms(2), ms(1)), 2 * per + 7);
        // No linger: everything at once.
        assert_eq!(send_now(3, ms(0), ms(0)), 3);
    }
}
