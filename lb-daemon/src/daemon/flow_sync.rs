//! The connection-table sync thread (`[vrrp.sync]`).
//!
//! Master: every `interval`, reads its connection table (in batches) and
//! sends the peer each flow that is new or changed since the last round (a
//! live flow's last-seen stamp moves about once a second, so live flows are
//! re-sent about once a second and the peer's copies do not age out), and
//! everything every [`FULL_RESYNC`] (datagrams lost on the way, or a
//! peer's table emptied behind our back, heal within that). Answers a
//! `DumpRequest` with the whole table and `DumpEnd` (at most one dump per
//! [`DUMP_GAP`]).
//! Backup: writes the flows it receives into its own table; while the VRRP
//! thread waits for the table (startup, link back up), asks the master for
//! a dump and tells the VRRP thread when a complete one has arrived (as
//! many records as `DumpEnd` announces), so a returning higher-priority
//! director preempts only once it knows every flow.
//! Hand-overs: a master that becomes backup sends one last round of
//! changes, and on a graceful stop lbd flushes a round before sending
//! priority 0; a master adds received flows it does not have (never
//! overwriting its own), so those last flows, or the other side's after a
//! split brain, are kept.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::{fd::AsRawFd, unix::net::UnixDatagram},
    sync::{Arc, Mutex, atomic::Ordering, mpsc},
    time::{Duration, Instant},
};

use crate::{
    admin::SyncStatus,
    balancer::monotonic_now_ns,
    config::SyncConfig,
    dataplane::PinDir,
    metrics::Metrics,
    sync::{
        Header, Key, Message, ReplayGuard, Sequencer, SyncSocket, decode, encode, encode_flows,
        table::{Index, PinnedTables},
        wire::{FlowRecord, WireError, unix_ms_now},
    },
};
use anyhow::Context;
use lb_common::{FlowKey, FlowValue};

use crate::daemon::failover::{SyncFlags, TableNotifier};

/// Receive buffer: larger than any valid datagram, so a cut one is seen.
const RECV_BUFFER: usize = 2048;
/// Every flow is sent again this often, changed or not.
const FULL_RESYNC: Duration = Duration::from_secs(10);
/// A master sends at most one whole-table dump this often.
const DUMP_GAP: Duration = Duration::from_secs(1);
/// A backup waiting for the table asks again after this long.
const REQUEST_AGAIN: Duration = Duration::from_secs(2);
/// The slot index is re-read before applying flows when older than this.
const INDEX_AGE: Duration = Duration::from_millis(500);
/// Datagrams sent back to back before a millisecond's pause.
const PACE_DATAGRAMS: usize = 64;
/// Rejected datagrams are logged at most this often.
const REJECT_LOG_GAP: Duration = Duration::from_secs(10);

/// What the sync thread is asked to do.
enum SyncCommand {
    /// Send the flows new since the last round now, then answer.
    Flush(mpsc::Sender<()>),
    Stop,
}

/// The controller's handle on the sync thread.
pub struct SyncHandle {
    commands: mpsc::Sender<SyncCommand>,
    wake: UnixDatagram,
    thread: std::thread::JoinHandle<()>,
}

impl SyncHandle {
    /// A master sends the flows new since its last round now, waiting at
    /// most `limit` (lbd is about to stop: the backup should have them
    /// before it takes over).
    pub fn flush(&self, limit: Duration) {
        let (done, wait) = mpsc::channel();
        if self.commands.send(SyncCommand::Flush(done)).is_ok() {
            let _ = self.wake.send(&[1]);
            let _ = wait.recv_timeout(limit);
        }
    }
}

impl SyncHandle {
    /// Ends the sync thread (after a [`SyncHandle::flush`], if wanted).
    pub fn stop(self) {
        if self.commands.send(SyncCommand::Stop).is_ok() {
            let _ = self.wake.send(&[1]);
            let _ = self.thread.join();
        }
    }
}

/// Starts the sync thread; it runs until [`SyncHandle::stop`].
pub fn start(
    cfg: &SyncConfig,
    pins: &PinDir,
    flags: Arc<SyncFlags>,
    notifier: TableNotifier,
    status: Arc<Mutex<SyncStatus>>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<SyncHandle> {
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
    let (wake, wake_rx) = UnixDatagram::pair().context("sync wake-up socket")?;
    wake.set_nonblocking(true)?;
    wake_rx.set_nonblocking(true)?;
    let (commands, inbox) = mpsc::channel();
    let mut sync = FlowSync {
        peer: SocketAddr::new(cfg.peer, cfg.port),
        interval: cfg.interval,
        key,
        sequencer,
        guard,
        socket,
        tables,
        index: Index::default(),
        index_read: None,
        refreshed_this_pass: false,
        sent: HashMap::new(),
        flags,
        notifier,
        status,
        metrics,
        last_dump: None,
        request: None,
        satisfied: None,
        rejected_unlogged: 0,
        last_reject_log: None,
    };
    let thread = std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || sync.run(&inbox, &wake_rx))?;
    Ok(SyncHandle {
        commands,
        wake,
        thread,
    })
}

/// A dump this backup asked for.
struct Request {
    /// The VRRP thread's wait it is for.
    wait: u64,
    sent_at: Instant,
    /// Flow records per datagram received since, by (sender, sequence).
    datagrams: HashMap<(u64, u64), u64>,
}

/// The records of the dump that ends with `end`: the datagrams numbered
/// just below it, going down until `records_sent` are counted; `None` if
/// one is missing.
pub(super) fn dump_records(
    datagrams: &HashMap<(u64, u64), u64>,
    end: &Header,
    records_sent: u64,
) -> Option<u64> {
    let mut total = 0;
    let mut seq = end.seq;
    while total < records_sent {
        seq = seq.checked_sub(1)?;
        total += datagrams.get(&(end.sender, seq))?;
    }
    Some(total)
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
    index_read: Option<Instant>,
    refreshed_this_pass: bool,
    /// What the peer was last sent of each flow: (real slot, state,
    /// last-seen stamp).
    sent: HashMap<FlowKey, (u32, u32, u64)>,
    flags: Arc<SyncFlags>,
    notifier: TableNotifier,
    status: Arc<Mutex<SyncStatus>>,
    metrics: Arc<Metrics>,
    last_dump: Option<Instant>,
    request: Option<Request>,
    /// The wait a complete table was delivered for.
    satisfied: Option<u64>,
    rejected_unlogged: u64,
    last_reject_log: Option<Instant>,
}

impl FlowSync {
    fn run(&mut self, inbox: &mpsc::Receiver<SyncCommand>, wake: &UnixDatagram) {
        let mut next_round = Instant::now();
        let mut next_full = Instant::now() + FULL_RESYNC;
        let mut was_master = false;
        loop {
            crate::daemon::poll::wait_readable(
                &[self.socket.as_raw_fd(), wake.as_raw_fd()],
                next_round.saturating_duration_since(Instant::now()),
            );
            while wake.recv(&mut [0; 16]).is_ok() {}
            while let Ok(command) = inbox.try_recv() {
                match command {
                    SyncCommand::Flush(done) => {
                        if self.flags.is_master.load(Ordering::Relaxed) {
                            self.send_changes();
                        }
                        let _ = done.send(());
                    }
                    SyncCommand::Stop => return,
                }
            }
            self.receive();
            let now = Instant::now();
            if now < next_round {
                continue;
            }
            next_round = now + self.interval;
            let is_master = self.flags.is_master.load(Ordering::Relaxed);
            if is_master && (!was_master || now >= next_full) {
                // A new term, or time for everything again: the peer's copy
                // is not known to be complete.
                self.sent.clear();
                next_full = now + FULL_RESYNC;
            }
            if is_master || was_master {
                // Also once more just after losing mastership: the flows
                // opened since the last round go to the new master.
                self.send_changes();
            }
            if !is_master {
                self.ask_for_table(now);
            }
            was_master = is_master;
        }
    }

    /// While the VRRP thread waits for the table: a `DumpRequest`, again
    /// every [`REQUEST_AGAIN`] until a complete dump arrived.
    fn ask_for_table(&mut self, now: Instant) {
        let wait = self.flags.wait.load(Ordering::Relaxed);
        if !self.flags.want_table.load(Ordering::Relaxed) || self.satisfied == Some(wait) {
            self.request = None;
            return;
        }
        if self
            .request
            .as_ref()
            .is_some_and(|r| now.duration_since(r.sent_at) < REQUEST_AGAIN)
        {
            return;
        }
        self.request = Some(Request {
            wait,
            sent_at: now,
            datagrams: HashMap::new(),
        });
        self.send(&Message::DumpRequest);
    }

    fn receive(&mut self) {
        self.refreshed_this_pass = false;
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
            let decoded =
                decode(&self.key, &buf[..len], unix_ms_now()).and_then(|(header, message)| {
                    self.guard.check(&header).map(|()| (header, message))
                });
            match decoded {
                Ok((header, message)) => self.handle(&header, message),
                Err(e) => self.rejected(from, &e),
            }
        }
    }

    /// Counts a rejected datagram; logs it, at most every
    /// [`REJECT_LOG_GAP`] (anyone can send datagrams to the port).
    fn rejected(&mut self, from: SocketAddr, error: &WireError) {
        self.metrics.count_sync_rejected(reject_label(error));
        {
            let mut status = self.status.lock().expect("sync status");
            status.datagrams_rejected += 1;
            status.last_rejection = Some(format!("from {from}: {error}"));
        }
        let now = Instant::now();
        if self
            .last_reject_log
            .is_some_and(|t| now.duration_since(t) < REJECT_LOG_GAP)
        {
            self.rejected_unlogged += 1;
            return;
        }
        tracing::warn!(
            from = %from,
            error = %error,
            more_since_last_report = self.rejected_unlogged,
            "sync datagram rejected"
        );
        self.rejected_unlogged = 0;
        self.last_reject_log = Some(now);
    }

    fn handle(&mut self, header: &Header, message: Message) {
        match message {
            Message::Flows { records } => {
                if let Some(request) = &mut self.request {
                    request
                        .datagrams
                        .insert((header.sender, header.seq), records.len() as u64);
                }
                self.apply(&records);
            }
            Message::DumpRequest => {
                let now = Instant::now();
                let recent = self
                    .last_dump
                    .is_some_and(|t| now.duration_since(t) < DUMP_GAP);
                if self.flags.is_master.load(Ordering::Relaxed) && !recent {
                    self.last_dump = Some(now);
                    self.send_dump();
                }
            }
            Message::DumpEnd { records_sent } => self.dump_ended(header, records_sent),
        }
    }

    /// The dump is complete if its datagrams all arrived: the master sends
    /// them back to back right before `DumpEnd`, so they are the sequence
    /// numbers just below its own, and their records add up to
    /// `records_sent`.
    fn dump_ended(&mut self, end: &Header, records_sent: u64) {
        let Some(request) = &self.request else {
            return;
        };
        let wait = request.wait;
        if wait != self.flags.wait.load(Ordering::Relaxed) {
            // The link flapped since we asked: ask again for this wait.
            self.request = None;
            self.ask_for_table(Instant::now());
            return;
        }
        let received = dump_records(&request.datagrams, end, records_sent);
        if received != Some(records_sent) {
            tracing::warn!(
                sent = records_sent,
                "sync: the master's table arrived incomplete (datagrams lost); asking again"
            );
            self.request = None;
            return;
        }
        self.request = None;
        if self.flags.want_table.load(Ordering::Relaxed) {
            tracing::info!(flows = records_sent, "sync: the master's table has arrived");
            self.satisfied = Some(wait);
            self.notifier.table_received(wait);
        }
        self.status.lock().expect("sync status").table_received = true;
    }

    /// Writes received flows; a master only adds flows it does not have.
    fn apply(&mut self, records: &[FlowRecord]) {
        let count = records.len() as u64;
        self.metrics.count_sync("received", count);
        self.status.lock().expect("sync status").flows_received += count;
        let only_new = self.flags.is_master.load(Ordering::Relaxed);
        if self.index_read.is_none_or(|t| t.elapsed() > INDEX_AGE) {
            self.refresh_index();
        }
        let now = monotonic_now_ns();
        let mut result = self.tables.apply(&self.index, records, now, only_new);
        if result.as_ref().is_ok_and(|r| r.unknown() > 0) && !self.refreshed_this_pass {
            // The config may have changed since the index was read (once
            // per receive pass: a record of a real we really lack would
            // otherwise re-read the index for every datagram).
            self.refreshed_this_pass = true;
            self.refresh_index();
            result = self.tables.apply(&self.index, records, now, only_new);
        }
        match result {
            Ok(applied) => {
                if applied.unknown() > 0 {
                    tracing::debug!(
                        unknown_services = applied.unknown_service,
                        unknown_reals = applied.unknown_real,
                        "sync: flows for services or reals this director does not have"
                    );
                }
                self.metrics.count_sync("applied", applied.written);
                let mut status = self.status.lock().expect("sync status");
                status.flows_applied += applied.written;
                status.flows_unknown += applied.unknown();
            }
            Err(e) => tracing::warn!(error = %e, "sync: writing flows"),
        }
    }

    fn refresh_index(&mut self) {
        match self.tables.index() {
            Ok(index) => {
                self.index = index;
                self.index_read = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "sync: reading services and reals"),
        }
    }

    /// The connection table, with the slot index re-read to name its
    /// reals; `None` (logged) if it cannot be read.
    fn read_flows(&mut self) -> Option<Vec<(FlowKey, FlowValue)>> {
        match self.tables.flows() {
            Ok(flows) => {
                self.refresh_index();
                Some(flows)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sync: reading the connection table");
                None
            }
        }
    }

    /// The flows that are new or changed since the last round.
    fn send_changes(&mut self) {
        let Some(flows) = self.read_flows() else {
            return;
        };
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
    }

    fn send_dump(&mut self) {
        let Some(flows) = self.read_flows() else {
            return;
        };
        let now = monotonic_now_ns();
        // Only what the wire can carry counts: the receiver checks the
        // total.
        let records: Vec<FlowRecord> = flows
            .iter()
            .filter_map(|(k, v)| self.index.record(k, v, now))
            .filter(FlowRecord::is_encodable)
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
        let datagrams = encode_flows(&self.key, &mut self.sequencer, unix_ms_now(), records);
        for (i, datagram) in datagrams.iter().enumerate() {
            // A whole table leaves as thousands of datagrams: pace them so
            // that neither socket buffer overflows (about 3 million
            // records a second).
            if i > 0 && i % PACE_DATAGRAMS == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.transmit(datagram);
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
            // The peer may be down: that is what failover is for. A full
            // send buffer loses this datagram; the full resync repairs it.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(sender: u64, seq: u64) -> Header {
        Header {
            sender,
            seq,
            sent_unix_ms: 0,
        }
    }

    #[test]
    fn a_dump_is_complete_only_with_every_datagram_before_its_end() {
        // A round (seq 3) arrived, then the dump (4, 5, 6), then DumpEnd (7).
        let got: HashMap<(u64, u64), u64> =
            [((9, 3), 10), ((9, 4), 53), ((9, 5), 53), ((9, 6), 4)].into();
        assert_eq!(dump_records(&got, &header(9, 7), 110), Some(110));
        // The round's records do not make up for a lost dump datagram.
        let mut lost = got.clone();
        lost.remove(&(9, 5));
        assert_eq!(dump_records(&lost, &header(9, 7), 110), None);
        // Another sender's datagrams do not count.
        assert_eq!(dump_records(&got, &header(8, 7), 110), None);
        assert_eq!(dump_records(&HashMap::new(), &header(9, 1), 0), Some(0));
        assert_eq!(dump_records(&HashMap::new(), &header(9, 0), 5), None);
    }
}
