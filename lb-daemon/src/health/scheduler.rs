//! Who is checked when: one tokio task per checked real, each probing at
//! its own `interval` (or `fast_interval` while a transition is pending or
//! a probe is unanswered, with up to `fall` probes in flight, see
//! [`state`](super::state)), with a semaphore bounding the probes in
//! flight. Each real's first probe is delayed by a fixed offset in
//! `[0, interval)` derived from a hash of its key, so 10,000 reals added at
//! once are spread over the interval instead of probed together, and the
//! spread is the same after every restart.
//!
//! Every probe result is passed to the callback given to [`Checker::new`]
//! as a [`HealthEvent`], with the transition it caused (if any): the
//! daemon changes the data path on transitions and counts every probe for
//! its metrics.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use tokio::{
    runtime::Handle,
    sync::{Notify, Semaphore},
    task::AbortHandle,
};

pub use crate::balancer::model::RealKey;

use super::{
    damping::{Damping, DampingState},
    probe::{ProbeFailure, probe},
    spec::{CheckKind, CheckSpec},
    state::{Health, HealthState, History, HistoryEntry, Pacer, Transition, period},
    tls::TlsConfigs,
};

/// A real to check.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub key: RealKey,
    /// The real's address (the check's `port` overrides the port).
    pub addr: SocketAddr,
    pub spec: CheckSpec,
    /// Its health until the checks say otherwise (only for a new key).
    pub initial: Health,
    /// Flap damping of its service (`None`: a flapping real is not held
    /// down). A change applies at once, without restarting its probes.
    pub damping: Option<Damping>,
}

/// The result of one probe, or a change of health without a probe.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthEvent {
    pub key: RealKey,
    /// The health changed (this is what the data path acts on).
    pub transition: Option<Transition>,
    /// The health now (with flap damping applied).
    pub health: Health,
    /// The probe's result. Changes that come without a probe (the real's
    /// check became `none`, damping was turned off) carry `Ok(ZERO)`.
    pub result: Result<Duration, ProbeFailure>,
    /// Why the health changed, for the log and `lbctl` (with a transition).
    pub reason: Option<String>,
    /// How long the probe took, failed or not (zero for events that came
    /// without a probe).
    pub took: Duration,
}

/// Receives every [`HealthEvent`], on the runtime's worker threads (or on
/// the thread calling [`Checker::set_targets`]).
/// It must not block and must not call back into the checker.
pub type EventSink = Box<dyn Fn(HealthEvent) + Send + Sync>;

/// The last probe of a real.
#[derive(Clone, Debug, PartialEq)]
pub struct LastProbe {
    pub at: SystemTime,
    pub result: Result<Duration, ProbeFailure>,
}

/// A real's state as `lbctl` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetStatus {
    pub key: RealKey,
    pub addr: SocketAddr,
    /// The check, in words ([`CheckKind::describe`]).
    pub check: String,
    /// The health the data path uses (damping applied).
    pub health: Health,
    /// The health by the checks alone (rise/fall).
    pub checks: Health,
    /// Probes in the streak under way toward a transition.
    pub streak: u32,
    /// Flap damping holds the real down for this much longer.
    pub held_for: Option<Duration>,
    /// The flap-damping penalty now (0 without damping).
    pub penalty: f64,
    pub last: Option<LastProbe>,
    /// The last transitions, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Probes started early because the data path saw the real's
    /// handshakes fail ([`ProbeTrigger::probe_now`]).
    pub early_probes: u64,
}

/// Runs the checks of a set of reals.
pub struct Checker {
    ctx: Arc<Context>,
    targets: Arc<Mutex<HashMap<RealKey, Slot>>>,
}

/// Asks for a real to be probed now, from any thread (see
/// [`Checker::trigger`]).
#[derive(Clone)]
pub struct ProbeTrigger {
    targets: Arc<Mutex<HashMap<RealKey, Slot>>>,
}

impl ProbeTrigger {
    /// Evidence against `key` (its clients retransmit SYNs): its next probe
    /// starts now, unless one is in flight. The probe's result counts like
    /// any other: evidence alone never takes a real down. False for a real
    /// not checked.
    #[must_use = "false: the real is not checked"]
    pub fn probe_now(&self, key: &RealKey) -> bool {
        let map = lock(&self.targets);
        match map.get(key) {
            Some(slot) if slot.task.is_some() => {
                slot.kick.notify_one();
                true
            }
            _ => false,
        }
    }
}

/// What the probe tasks share.
struct Context {
    runtime: Handle,
    semaphore: Semaphore,
    tls: TlsConfigs,
    sink: EventSink,
}

struct Slot {
    addr: SocketAddr,
    spec: CheckSpec,
    shared: Arc<Mutex<Shared>>,
    task: Option<AbortHandle>,
    /// Wakes the probe task for an early probe.
    kick: Arc<Notify>,
}

/// A real's state, updated by its task and read by `states`.
struct Shared {
    /// Bumped when the task is replaced or removed: a task that finds a
    /// different number stops without touching the state.
    generation: u64,
    state: HealthState,
    /// `state`'s health with damping applied.
    health: Health,
    damping: Option<DampingState>,
    history: History,
    last: Option<LastProbe>,
    /// The real's flap damping (its service's), read at every probe.
    damping_config: Option<Damping>,
    /// Probes brought forward by evidence.
    early_probes: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Checker {
    /// A checker whose probes run on `runtime`, at most `max_concurrent` at
    /// a time, reporting to `sink`.
    pub fn new(
        runtime: Handle,
        max_concurrent: usize,
        tls: TlsConfigs,
        sink: impl Fn(HealthEvent) + Send + Sync + 'static,
    ) -> Self {
        Self {
            ctx: Arc::new(Context {
                runtime,
                semaphore: Semaphore::new(max_concurrent.clamp(1, Semaphore::MAX_PERMITS)),
                tls,
                sink: Box::new(sink),
            }),
            targets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A handle that asks for early probes from another thread.
    #[must_use]
    pub fn trigger(&self) -> ProbeTrigger {
        ProbeTrigger {
            targets: self.targets.clone(),
        }
    }

    /// Replaces the set of checked reals. A real whose address and check
    /// are unchanged keeps its state and schedule; a changed one restarts
    /// its probing (keeping its health); a new one starts with `initial`;
    /// a missing one stops (an event already under way may still arrive).
    /// Reals with `CheckKind::None` are not probed and are up. A real whose
    /// flap damping changed starts its damping afresh (a held real is
    /// released if its checks pass) without restarting its probes.
    pub fn set_targets(&self, targets: Vec<Target>) {
        let mut events = Vec::new();
        {
            let mut map = lock(&self.targets);
            let mut seen = HashSet::with_capacity(targets.len());
            for target in targets {
                seen.insert(target.key);
                if let Some(slot) = map.get_mut(&target.key) {
                    if let Some(event) = lock(&slot.shared).set_damping(&target.key, target.damping)
                    {
                        events.push(event);
                    }
                    if slot.addr == target.addr && slot.spec == target.spec {
                        continue;
                    }
                    if let Some(task) = slot.task.take() {
                        task.abort();
                    }
                    let generation = {
                        let mut shared = lock(&slot.shared);
                        shared.generation += 1;
                        shared.state.reset_streaks();
                        shared.generation
                    };
                    slot.addr = target.addr;
                    slot.spec = target.spec;
                    self.start(&target.key, slot, generation, &mut events);
                } else {
                    let mut slot = Slot {
                        addr: target.addr,
                        spec: target.spec,
                        shared: Arc::new(Mutex::new(Shared::new(target.initial, target.damping))),
                        task: None,
                        kick: Arc::new(Notify::new()),
                    };
                    self.start(&target.key, &mut slot, 0, &mut events);
                    map.insert(target.key, slot);
                }
            }
            map.retain(|key, slot| {
                if seen.contains(key) {
                    return true;
                }
                if let Some(task) = slot.task.take() {
                    task.abort();
                }
                lock(&slot.shared).generation += 1;
                false
            });
        }
        for event in events {
            (self.ctx.sink)(event);
        }
    }

    fn start(
        &self,
        key: &RealKey,
        slot: &mut Slot,
        generation: u64,
        events: &mut Vec<HealthEvent>,
    ) {
        if slot.spec.kind == CheckKind::None {
            let mut shared = lock(&slot.shared);
            shared.state.force(Health::Up);
            shared.damping = None;
            if let Some(event) = shared.reevaluate(
                key,
                Instant::now(),
                SystemTime::now(),
                "no health check configured",
            ) {
                events.push(event);
            }
            return;
        }
        let task = self.ctx.runtime.spawn(run(
            self.ctx.clone(),
            *key,
            slot.addr,
            slot.spec.clone(),
            (slot.shared.clone(), slot.kick.clone()),
            generation,
        ));
        slot.task = Some(task.abort_handle());
    }

    /// The health of one real, if it is checked.
    #[must_use]
    pub fn health(&self, key: &RealKey) -> Option<Health> {
        let map = lock(&self.targets);
        map.get(key).map(|slot| lock(&slot.shared).health)
    }

    /// The number of reals (checked or `none`).
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.targets).len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every real's state, sorted by key.
    #[must_use]
    pub fn states(&self) -> Vec<TargetStatus> {
        let now = Instant::now();
        let map = lock(&self.targets);
        let mut out: Vec<TargetStatus> = map
            .iter()
            .map(|(key, slot)| {
                let shared = lock(&slot.shared);
                TargetStatus {
                    key: *key,
                    addr: slot.addr,
                    check: slot.spec.kind.describe(),
                    health: shared.health,
                    checks: shared.state.health(),
                    streak: shared.state.streak(),
                    held_for: shared.damping.as_ref().and_then(|d| d.held_until(now)),
                    penalty: shared.damping.as_ref().map_or(0.0, |d| d.penalty(now)),
                    last: shared.last.clone(),
                    history: shared.history.to_vec(),
                    early_probes: shared.early_probes,
                }
            })
            .collect();
        out.sort_by_key(|a| a.key);
        out
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        let map = lock(&self.targets);
        for slot in map.values() {
            if let Some(task) = &slot.task {
                task.abort();
            }
        }
    }
}

impl Shared {
    fn new(initial: Health, damping: Option<Damping>) -> Self {
        Self {
            generation: 0,
            state: HealthState::new(initial),
            health: initial,
            damping: None,
            history: History::default(),
            last: None,
            damping_config: damping,
            early_probes: 0,
        }
    }

    /// Sets the real's flap damping. A change starts it afresh: without
    /// damping, or with new parameters, a real held down by the old ones is
    /// released if its checks pass (the event says so).
    fn set_damping(&mut self, key: &RealKey, damping: Option<Damping>) -> Option<HealthEvent> {
        if self.damping_config == damping {
            return None;
        }
        self.damping_config = damping;
        self.damping = None;
        let why = if damping.is_some() {
            "flap damping changed"
        } else {
            "flap damping turned off"
        };
        self.reevaluate(key, Instant::now(), SystemTime::now(), why)
    }

    /// Takes a probe result: the event to report and the period until the
    /// next probe. Flap damping is the real's own (`damping_config`).
    fn apply(
        &mut self,
        key: &RealKey,
        spec: &CheckSpec,
        result: Result<Duration, ProbeFailure>,
        now: Instant,
        wall: SystemTime,
    ) -> (HealthEvent, Duration) {
        let raw = self.state.record(result.is_ok(), spec.rise, spec.fall);
        match self.damping_config {
            Some(config) => {
                let state = self
                    .damping
                    .get_or_insert_with(|| DampingState::new(config));
                if *state.config() != config {
                    *state = DampingState::new(config);
                }
                if raw.is_some_and(|t| t.to == Health::Down) {
                    state.on_flap(now);
                }
            }
            None => self.damping = None,
        }
        let held = self.damping.as_mut().is_some_and(|d| d.is_held(now));
        let want = if self.state.health() == Health::Up && !held {
            Health::Up
        } else {
            Health::Down
        };
        let mut transition = None;
        let mut reason = None;
        if want != self.health {
            let mut why = match (&result, want) {
                (Err(failure), Health::Down) => failure.to_string(),
                (_, Health::Down) => "held down by flap damping".to_owned(),
                (_, Health::Up) if raw.is_none() => "flap damping hold ended".to_owned(),
                (_, Health::Up) if spec.rise <= 1 => "check passed".to_owned(),
                (_, Health::Up) => format!("{} consecutive checks passed", spec.rise),
            };
            if want == Health::Down
                && let Some(left) = self.damping.as_ref().and_then(|d| d.held_until(now))
            {
                let _ = write!(
                    why,
                    " (flapping: held down for {})",
                    crate::config::format_duration(left)
                );
            }
            let t = Transition {
                from: self.health,
                to: want,
            };
            self.note(t, wall, why.clone());
            transition = Some(t);
            reason = Some(why);
        }
        self.last = Some(LastProbe {
            at: wall,
            result: result.clone(),
        });
        let next = if held && self.state.health() == Health::Up {
            spec.interval
        } else {
            period(&self.state, spec)
        };
        (
            HealthEvent {
                key: *key,
                transition,
                health: self.health,
                result,
                reason,
                took: Duration::ZERO,
            },
            next,
        )
    }

    /// Brings `health` in line with the state after a change that came
    /// without a probe.
    fn reevaluate(
        &mut self,
        key: &RealKey,
        now: Instant,
        wall: SystemTime,
        why: &str,
    ) -> Option<HealthEvent> {
        let held = self.damping.as_mut().is_some_and(|d| d.is_held(now));
        let want = if self.state.health() == Health::Up && !held {
            Health::Up
        } else {
            Health::Down
        };
        if want == self.health {
            return None;
        }
        let t = Transition {
            from: self.health,
            to: want,
        };
        self.note(t, wall, why.to_owned());
        Some(HealthEvent {
            key: *key,
            transition: Some(t),
            health: want,
            result: Ok(Duration::ZERO),
            reason: Some(why.to_owned()),
            took: Duration::ZERO,
        })
    }

    fn note(&mut self, transition: Transition, at: SystemTime, reason: String) {
        self.health = transition.to;
        self.history.push(HistoryEntry {
            at,
            transition,
            reason,
        });
    }
}

/// The offset of a real's first probe in `[0, interval)`: a hash of its
/// key (FNV-1a, then a mixer), the same on every run.
#[must_use]
pub fn first_offset(key: &RealKey, interval: Duration) -> Duration {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    // Of the key's text, as when keys were strings: offsets stay as they were.
    let (service, real) = (key.service.to_string(), key.real.to_string());
    for byte in service
        .bytes()
        .chain(std::iter::once(0))
        .chain(real.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finalizer: FNV's low bits alone are poorly spread.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(hash % nanos)
}

/// A probe's result, how long it took and when it ended.
type Outcome = (
    Result<Duration, ProbeFailure>,
    Duration,
    tokio::time::Instant,
);

/// Sleeps until `due`, or forever.
async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The probe loop of one real: starts its probes when its [`Pacer`] says
/// (several may be in flight) and takes their results in order.
async fn run(
    ctx: Arc<Context>,
    key: RealKey,
    addr: SocketAddr,
    spec: CheckSpec,
    (shared, kick): (Arc<Mutex<Shared>>, Arc<Notify>),
    generation: u64,
) {
    let first = tokio::time::Instant::now() + first_offset(&key, spec.interval);
    let mut pacer: Pacer<tokio::time::Instant, Outcome> = Pacer::new(first);
    // Dropped with this task (the real's check changed or it was removed):
    // its probes are aborted too.
    let mut probes = tokio::task::JoinSet::new();
    loop {
        let due = {
            let shared = lock(&shared);
            if shared.generation != generation {
                return;
            }
            pacer.due(&shared.state, &spec)
        };
        tokio::select! {
            () = kick.notified() => {
                if pacer.hurry(tokio::time::Instant::now()) {
                    lock(&shared).early_probes += 1;
                }
            }
            () = sleep_until(due) => {
                let Some(due) = due else { continue };
                let seq = pacer.start(due, tokio::time::Instant::now(), &spec);
                let (ctx, spec) = (ctx.clone(), spec.clone());
                probes.spawn(async move {
                    let Ok(permit) = ctx.semaphore.acquire().await else {
                        return (seq, None);
                    };
                    let started = tokio::time::Instant::now();
                    let result = probe(&spec, addr, &ctx.tls).await;
                    drop(permit);
                    let finished = tokio::time::Instant::now();
                    (seq, Some((result, finished - started, finished)))
                });
            }
            Some(joined) = probes.join_next() => {
                let Ok((seq, Some(outcome))) = joined else {
                    return;
                };
                for (result, took, finished) in pacer.finish(seq, outcome) {
                    let mut event = {
                        let mut shared = lock(&shared);
                        if shared.generation != generation {
                            return;
                        }
                        let ok = result.is_ok();
                        let (event, _) = shared.apply(
                            &key,
                            &spec,
                            result,
                            finished.into_std(),
                            SystemTime::now(),
                        );
                        if ok && !shared.state.pending() {
                            pacer.calm();
                        }
                        event
                    };
                    event.took = took;
                    (ctx.sink)(event);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{probe::FailureReason, spec::CheckSpec};

    fn key(i: usize) -> RealKey {
        let service = crate::admin::parse_service("10.0.0.1:80/tcp").unwrap();
        let real = format!("192.168.{}.{}:80", i / 250, i % 250);
        RealKey::new(service, real.parse().unwrap())
    }

    #[test]
    fn offsets_are_spread_and_stable() {
        let interval = Duration::from_secs(1);
        let mut buckets = [0_u32; 10];
        for i in 0..10_000 {
            let offset = first_offset(&key(i), interval);
            assert!(offset < interval);
            assert_eq!(offset, first_offset(&key(i), interval));
            buckets[(offset.as_millis() / 100) as usize] += 1;
        }
        // 1000 per 100 ms bucket expected.
        assert!(
            buckets.iter().all(|&b| (850..1150).contains(&b)),
            "{buckets:?}"
        );
        assert_eq!(first_offset(&key(1), Duration::ZERO), Duration::ZERO);
    }

    fn fail() -> Result<Duration, ProbeFailure> {
        Err(ProbeFailure::new(
            FailureReason::Refused,
            "connect: connection refused",
        ))
    }

    #[test]
    fn apply_reports_transitions_with_reasons() {
        let spec = CheckSpec {
            rise: 2,
            fall: 2,
            ..CheckSpec::default()
        };
        let k = key(1);
        let mut s = Shared::new(Health::Up, None);
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        let (e, next) = s.apply(&k, &spec, fail(), t0, wall);
        assert_eq!(e.transition, None);
        assert_eq!(next, spec.fast_interval);
        let (e, next) = s.apply(&k, &spec, fail(), t0, wall);
        assert_eq!(
            e.transition,
            Some(Transition {
                from: Health::Up,
                to: Health::Down
            })
        );
        assert_eq!(e.reason.as_deref(), Some("connect: connection refused"));
        assert_eq!(next, spec.interval);
        s.apply(&k, &spec, Ok(Duration::ZERO), t0, wall);
        let (e, _) = s.apply(&k, &spec, Ok(Duration::ZERO), t0, wall);
        assert_eq!(e.health, Health::Up);
        assert_eq!(e.reason.as_deref(), Some("2 consecutive checks passed"));
        assert_eq!(s.history.len(), 2);
    }

    #[test]
    fn damping_holds_a_flapping_real_down() {
        let spec = CheckSpec {
            rise: 1,
            fall: 1,
            ..CheckSpec::default()
        };
        let k = key(1);
        let mut s = Shared::new(Health::Up, Some(Damping::default()));
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        let mut ups = 0;
        for i in 0..6 {
            let at = t0 + Duration::from_secs(i);
            let (e, _) = s.apply(&k, &spec, fail(), at, wall);
            assert_eq!(e.health, Health::Down);
            let (e, _) = s.apply(&k, &spec, Ok(Duration::ZERO), at, wall);
            if e.health == Health::Up {
                ups += 1;
            }
        }
        // Up after the first two flaps, held down from the third.
        assert_eq!(ups, 2);
        assert_eq!(s.state.health(), Health::Up);
        assert_eq!(s.health, Health::Down);
        let held = s
            .damping
            .as_ref()
            .unwrap()
            .held_until(t0 + Duration::from_secs(5));
        assert!(held.is_some());
        assert!(
            s.history
                .iter()
                .any(|h| h.reason.contains("flapping: held down for"))
        );
        // Passing checks after the hold bring it up.
        let later = t0 + Duration::from_mins(10);
        let (e, _) = s.apply(&k, &spec, Ok(Duration::ZERO), later, wall);
        assert_eq!(e.health, Health::Up);
        assert_eq!(e.reason.as_deref(), Some("flap damping hold ended"));
    }

    /// A real of each of two services, flapping (down after a failed
    /// probe, up after a passing one, once a second for ten seconds):
    /// the one whose service has damping ends held down with its checks
    /// passing; the other follows its checks.
    #[test]
    fn each_real_is_damped_by_its_own_service() {
        let spec = CheckSpec {
            rise: 1,
            fall: 1,
            ..CheckSpec::default()
        };
        let target = |i, damping| Target {
            key: key(i),
            addr: key(i).real,
            spec: spec.clone(),
            initial: Health::Up,
            damping,
        };
        let damped = target(1, Some(Damping::default()));
        let undamped = target(2, None);
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        let mut ups = Vec::new();
        for t in [&damped, &undamped] {
            let mut s = Shared::new(t.initial, t.damping);
            let mut up = 0;
            for i in 0..10 {
                let at = t0 + Duration::from_secs(i);
                s.apply(&t.key, &t.spec, fail(), at, wall);
                let (e, _) = s.apply(&t.key, &t.spec, Ok(Duration::ZERO), at, wall);
                up += u32::from(e.health == Health::Up);
            }
            assert_eq!(s.state.health(), Health::Up, "its checks pass");
            ups.push((up, s.health));
        }
        assert_eq!(ups[0], (2, Health::Down), "held down from the third flap");
        assert_eq!(ups[1], (10, Health::Up), "no damping: never held");
    }

    /// Damping changed by a reload (or lbctl): turned off, a held real
    /// whose checks pass comes up at once; a new setting starts afresh.
    #[test]
    fn a_damping_change_applies_to_the_real_at_once() {
        let spec = CheckSpec {
            rise: 1,
            fall: 1,
            ..CheckSpec::default()
        };
        let k = key(1);
        let mut s = Shared::new(Health::Up, Some(Damping::default()));
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        for _ in 0..3 {
            s.apply(&k, &spec, fail(), now, wall);
            s.apply(&k, &spec, Ok(Duration::ZERO), now, wall);
        }
        assert_eq!(s.health, Health::Down, "held");
        assert_eq!(s.set_damping(&k, Some(Damping::default())), None);
        let e = s.set_damping(&k, None).expect("released");
        assert_eq!(e.health, Health::Up);
        assert_eq!(e.reason.as_deref(), Some("flap damping turned off"));
        let stricter = Damping {
            suppress: 900.0,
            reuse: 500.0,
            ..Damping::default()
        };
        assert_eq!(s.set_damping(&k, Some(stricter)), None, "nothing held yet");
        s.apply(&k, &spec, fail(), now, wall);
        let (e, _) = s.apply(&k, &spec, Ok(Duration::ZERO), now, wall);
        assert_eq!(
            e.health,
            Health::Down,
            "held after one flap by the new setting"
        );
    }
}
