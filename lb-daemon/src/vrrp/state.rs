//! The VRRP router state machine of RFC 5798 section 6, without sockets or
//! clocks: the caller feeds events with the current time and carries out the
//! returned [`Action`]s, then sleeps until [`Router::next_deadline`] and calls
//! [`Router::on_timer`].
//!
//! One timer serves both states: in Backup it is the `Master_Down_Timer`, in
//! Master the `Adver_Timer` (they are never armed together).
//!
//! Departures from the RFC text, all as keepalived 2.x does them:
//! - A master that receives an advertisement it beats (lower priority, or
//!   equal priority from a lower address) answers at once with its own
//!   advertisement ("forcing new election") instead of silently discarding
//!   it, so a split brain heals within one packet.
//! - `preempt_delay`: after [`Router::start`], a higher-priority backup does
//!   not preempt a lower-priority master until the delay has passed. The
//!   daemon can also hold preemption with [`Router::set_preempt_hold`] (for
//!   example until the connection table has been synchronised).
//! - Advertisements whose source is our own address (multicast loopback)
//!   are ignored.
//! - A Fault state for a down interface ([`Router::link_down`],
//!   [`Router::link_up`]): nothing is sent or heard until the link returns,
//!   then the router starts again as at startup.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::packet::MAX_ADVER_INT_CS;

/// Priority of the address owner, which becomes master at once.
pub const PRIORITY_OWNER: u8 = 255;
/// Default advertisement interval: 100 ms.
pub const DEFAULT_ADVERT_INTERVAL_CS: u16 = 10;

/// Parameters of one virtual router instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// 1..=254, or 255 for the address owner.
    pub priority: u8,
    /// `Advertisement_Interval` in centiseconds, 1..=4095.
    pub advert_interval_cs: u16,
    /// `Preempt_Mode`: take over from a lower-priority master.
    pub preempt: bool,
    /// No preemption until this long after start.
    pub preempt_delay: Duration,
    /// Our primary address on the interface: the source of our
    /// advertisements, compared with the sender's on equal priority.
    pub local_addr: IpAddr,
}

impl Config {
    /// Defaults: 100 ms interval, preemption on without delay.
    #[must_use]
    pub fn new(priority: u8, local_addr: IpAddr) -> Self {
        Self {
            priority,
            advert_interval_cs: DEFAULT_ADVERT_INTERVAL_CS,
            preempt: true,
            preempt_delay: Duration::ZERO,
            local_addr,
        }
    }
}

/// A rejected [`Config`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("VRRP priority 0 is reserved for the stopping master; use 1..=255")]
    Priority,
    #[error("VRRP advertisement interval {0} cs is outside 1..=4095")]
    Interval(u16),
}

/// The RFC 5798 states, and keepalived's FAULT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// The interface is down.
    Fault,
}

impl State {
    /// Lower-case name, for logs, `lbctl` and metric labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialize => "initialize",
            Self::Backup => "backup",
            Self::Master => "master",
            Self::Fault => "fault",
        }
    }
}

/// What the caller must do, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority (0 when stopping) and our
    /// configured interval.
    SendAdvertisement { priority: u8 },
    /// Entered Master: add the VIPs, send gratuitous ARPs / unsolicited
    /// neighbour advertisements.
    BecomeMaster,
    /// Entered Backup: make sure the VIPs are not held.
    BecomeBackup,
    /// Entered Initialize (stopped): release the VIPs if held.
    BecomeInitialize,
    /// Entered Fault (link down): release the VIPs if held.
    BecomeFault,
}

/// One virtual router.
#[derive(Clone, Debug)]
pub struct Router {
    cfg: Config,
    state: State,
    /// `Master_Adver_Interval` (centiseconds), learned from the master.
    master_adver_interval_cs: u16,
    /// `Master_Down_Timer` (Backup) or `Adver_Timer` (Master).
    timer: Option<Instant>,
    /// No preemption before this instant.
    preempt_after: Option<Instant>,
    preempt_hold: bool,
    /// The current master as far as we know (ourselves when Master).
    master_addr: Option<IpAddr>,
}

impl Router {
    pub fn new(cfg: Config) -> Result<Self, ConfigError> {
        if cfg.priority == 0 {
            return Err(ConfigError::Priority);
        }
        if cfg.advert_interval_cs == 0 || cfg.advert_interval_cs > MAX_ADVER_INT_CS {
            return Err(ConfigError::Interval(cfg.advert_interval_cs));
        }
        Ok(Self {
            master_adver_interval_cs: cfg.advert_interval_cs,
            cfg,
            state: State::Initialize,
            timer: None,
            preempt_after: None,
            preempt_hold: false,
            master_addr: None,
        })
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    #[must_use]
    pub fn state(&self) -> State {
        self.state
    }

    /// `Master_Adver_Interval` in centiseconds.
    #[must_use]
    pub fn master_adver_interval_cs(&self) -> u16 {
        self.master_adver_interval_cs
    }

    /// The current master's address, if known (our own when Master).
    #[must_use]
    pub fn master_addr(&self) -> Option<IpAddr> {
        self.master_addr
    }

    /// `Skew_Time` = ((256 - Priority) * `Master_Adver_Interval`) / 256,
    /// computed in microseconds as keepalived does.
    #[must_use]
    pub fn skew_time(&self) -> Duration {
        let prio = u64::from(self.cfg.priority);
        let interval_us = u64::from(self.master_adver_interval_cs) * 10_000;
        Duration::from_micros((256 - prio) * interval_us / 256)
    }

    /// `Master_Down_Interval` = 3 * `Master_Adver_Interval` + `Skew_Time`.
    #[must_use]
    pub fn master_down_interval(&self) -> Duration {
        cs(self.master_adver_interval_cs) * 3 + self.skew_time()
    }

    /// When [`Router::on_timer`] is next due, if ever.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timer
    }

    /// Hold (or release) preemption of a lower-priority master, whatever
    /// `preempt` says. Releasing takes effect at the next advertisement.
    pub fn set_preempt_hold(&mut self, hold: bool) {
        self.preempt_hold = hold;
    }

    /// Startup event (RFC 5798 6.4.1). A router in Fault starts with
    /// [`Router::link_up`] instead.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::Initialize {
            return Vec::new();
        }
        self.preempt_after = Some(now + self.cfg.preempt_delay);
        if self.cfg.priority == PRIORITY_OWNER {
            self.become_master(now)
        } else {
            self.master_adver_interval_cs = self.cfg.advert_interval_cs;
            self.become_backup(now, None)
        }
    }

    /// Shutdown event (RFC 5798 6.4.2, 6.4.3): a master sends priority 0 so
    /// that the backup takes over after its skew time. In Fault there is
    /// nothing left to stop.
    pub fn shutdown(&mut self, _now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match self.state {
            State::Initialize | State::Fault => return actions,
            State::Master => actions.push(Action::SendAdvertisement { priority: 0 }),
            State::Backup => {}
        }
        self.state = State::Initialize;
        self.timer = None;
        self.master_addr = None;
        actions.push(Action::BecomeInitialize);
        actions
    }

    /// The interface went down: Fault, from any other state (also before
    /// the first start, so the state says why the router is idle). A master
    /// sends no priority 0, the link cannot carry it: the peer takes over
    /// when our advertisements stop.
    pub fn link_down(&mut self, _now: Instant) -> Vec<Action> {
        if self.state == State::Fault {
            return Vec::new();
        }
        self.state = State::Fault;
        self.timer = None;
        self.master_addr = None;
        vec![Action::BecomeFault]
    }

    /// The interface is up again: leaves Fault as the startup event leaves
    /// Initialize (backup, or master at once for the address owner).
    pub fn link_up(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::Fault {
            return Vec::new();
        }
        self.state = State::Initialize;
        self.start(now)
    }

    /// The timer from [`Router::next_deadline`] fired. Early calls are
    /// ignored.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        match self.timer {
            Some(t) if now >= t => {}
            _ => return Vec::new(),
        }
        match self.state {
            State::Initialize | State::Fault => Vec::new(),
            // `Master_Down_Timer` fired (6.4.2).
            State::Backup => self.become_master(now),
            // `Adver_Timer` fired (6.4.3).
            State::Master => {
                self.timer = Some(now + cs(self.cfg.advert_interval_cs));
                vec![self.advertise()]
            }
        }
    }

    /// A valid advertisement for our virtual router arrived (already decoded,
    /// checksum, TTL and VRID checked by the caller).
    pub fn on_advertisement(
        &mut self,
        now: Instant,
        adv_priority: u8,
        adv_interval_cs: u16,
        adv_src: IpAddr,
    ) -> Vec<Action> {
        if adv_src == self.cfg.local_addr {
            return Vec::new();
        }
        let adv_interval_cs = adv_interval_cs.clamp(1, MAX_ADVER_INT_CS);
        match self.state {
            State::Initialize | State::Fault => Vec::new(),
            State::Backup => {
                if adv_priority == 0 {
                    // The master is stopping: take over after `Skew_Time`.
                    self.timer = Some(now + self.skew_time());
                    self.master_addr = None;
                } else if !self.may_preempt(now) || adv_priority >= self.cfg.priority {
                    self.master_adver_interval_cs = adv_interval_cs;
                    self.timer = Some(now + self.master_down_interval());
                    self.master_addr = Some(adv_src);
                }
                // Else: a lower-priority master we will preempt; let the
                // `Master_Down_Timer` run out.
                Vec::new()
            }
            State::Master => {
                if adv_priority == 0 {
                    self.timer = Some(now + cs(self.cfg.advert_interval_cs));
                    vec![self.advertise()]
                } else if self.loses_to(adv_priority, adv_src) {
                    self.master_adver_interval_cs = adv_interval_cs;
                    self.become_backup(now, Some(adv_src))
                } else {
                    // keepalived: "received lower priority advert, forcing
                    // new election".
                    self.timer = Some(now + cs(self.cfg.advert_interval_cs));
                    vec![self.advertise()]
                }
            }
        }
    }

    /// Whether an advertisement from (`prio`, `src`) beats us.
    fn loses_to(&self, prio: u8, src: IpAddr) -> bool {
        prio > self.cfg.priority || (prio == self.cfg.priority && src > self.cfg.local_addr)
    }

    fn may_preempt(&self, now: Instant) -> bool {
        if self.cfg.priority == PRIORITY_OWNER {
            return true;
        }
        self.cfg.preempt && !self.preempt_hold && self.preempt_after.is_none_or(|t| now >= t)
    }

    fn advertise(&self) -> Action {
        Action::SendAdvertisement {
            priority: self.cfg.priority,
        }
    }

    fn become_master(&mut self, now: Instant) -> Vec<Action> {
        self.state = State::Master;
        self.timer = Some(now + cs(self.cfg.advert_interval_cs));
        self.master_addr = Some(self.cfg.local_addr);
        vec![self.advertise(), Action::BecomeMaster]
    }

    fn become_backup(&mut self, now: Instant, master: Option<IpAddr>) -> Vec<Action> {
        self.state = State::Backup;
        self.timer = Some(now + self.master_down_interval());
        self.master_addr = master;
        vec![Action::BecomeBackup]
    }
}

fn cs(centiseconds: u16) -> Duration {
    Duration::from_millis(u64::from(centiseconds) * 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn router(priority: u8, last: u8) -> Router {
        Router::new(Config::new(priority, ip(last))).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Two routers on one simulated link with no delay: runs events in
    /// time order until `until`, delivering each advertisement to the other
    /// router at once.
    struct Link {
        routers: [Router; 2],
        now: Instant,
    }

    impl Link {
        fn new(a: Router, b: Router, t0: Instant) -> Self {
            Self {
                routers: [a, b],
                now: t0,
            }
        }

        fn deliver(&mut self, from: usize, actions: &[Action]) {
            for a in actions {
                if let Action::SendAdvertisement { priority } = *a {
                    let cfg = self.routers[from].config().clone();
                    let to = 1 - from;
                    let more = self.routers[to].on_advertisement(
                        self.now,
                        priority,
                        cfg.advert_interval_cs,
                        cfg.local_addr,
                    );
                    self.deliver(to, &more);
                }
            }
        }

        fn start(&mut self, i: usize) {
            let acts = self.routers[i].start(self.now);
            self.deliver(i, &acts);
        }

        fn run_until(&mut self, until: Instant) {
            loop {
                let next = (0..2)
                    .filter_map(|i| self.routers[i].next_deadline().map(|t| (t, i)))
                    .min();
                match next {
                    Some((t, i)) if t <= until => {
                        self.now = t;
                        let acts = self.routers[i].on_timer(t);
                        self.deliver(i, &acts);
                    }
                    _ => break,
                }
            }
            self.now = until;
        }

        fn states(&self) -> [State; 2] {
            [self.routers[0].state(), self.routers[1].state()]
        }
    }

    #[test]
    fn config_validation() {
        assert_eq!(
            Router::new(Config::new(0, ip(1))).unwrap_err(),
            ConfigError::Priority
        );
        let mut c = Config::new(100, ip(1));
        c.advert_interval_cs = 0;
        assert_eq!(
            Router::new(c.clone()).unwrap_err(),
            ConfigError::Interval(0)
        );
        c.advert_interval_cs = 4096;
        assert_eq!(Router::new(c).unwrap_err(), ConfigError::Interval(4096));
    }

    #[test]
    fn default_timing_numbers() {
        let r = router(100, 1);
        assert_eq!(r.master_adver_interval_cs(), 10);
        // (256 - 100) * 100 ms / 256 = 60.9375 ms.
        assert_eq!(r.skew_time(), Duration::from_micros(60_937));
        assert_eq!(r.master_down_interval(), Duration::from_micros(360_937));
        // Priority 254: skew is ~0.8 ms, so failover in just over 300 ms.
        let r = router(254, 1);
        assert_eq!(r.skew_time(), Duration::from_micros(781));
        assert_eq!(r.master_down_interval(), Duration::from_micros(300_781));
        // keepalived's defaults (1 s, priority 100): 3.609 s.
        let mut c = Config::new(100, ip(1));
        c.advert_interval_cs = 100;
        let r = Router::new(c).unwrap();
        assert_eq!(r.master_down_interval(), Duration::from_micros(3_609_375));
    }

    #[test]
    fn lone_router_becomes_master_after_master_down_interval() {
        let t0 = Instant::now();
        let mut r = router(100, 1);
        assert_eq!(r.state(), State::Initialize);
        assert_eq!(r.next_deadline(), None);
        assert_eq!(r.start(t0), vec![Action::BecomeBackup]);
        assert_eq!(r.state(), State::Backup);
        let down = t0 + r.master_down_interval();
        assert_eq!(r.next_deadline(), Some(down));
        // Early timer calls do nothing.
        assert!(r.on_timer(down.checked_sub(ms(1)).unwrap()).is_empty());
        assert_eq!(
            r.on_timer(down),
            vec![
                Action::SendAdvertisement { priority: 100 },
                Action::BecomeMaster
            ]
        );
        assert_eq!(r.state(), State::Master);
        assert_eq!(r.master_addr(), Some(ip(1)));
        // Then it advertises every 100 ms.
        assert_eq!(r.next_deadline(), Some(down + ms(100)));
        assert_eq!(
            r.on_timer(down + ms(100)),
            vec![Action::SendAdvertisement { priority: 100 }]
        );
        assert_eq!(r.next_deadline(), Some(down + ms(200)));
    }

    #[test]
    fn owner_becomes_master_at_once() {
        let t0 = Instant::now();
        let mut r = router(255, 1);
        assert_eq!(
            r.start(t0),
            vec![
                Action::SendAdvertisement { priority: 255 },
                Action::BecomeMaster
            ]
        );
        assert_eq!(r.next_deadline(), Some(t0 + ms(100)));
    }

    #[test]
    fn backup_stays_backup_while_master_advertises() {
        let t0 = Instant::now();
        let mut r = router(100, 1);
        r.start(t0);
        for k in 1..=20 {
            let t = t0 + ms(100 * k);
            assert!(r.on_advertisement(t, 200, 10, ip(2)).is_empty());
            assert!(r.on_timer(t).is_empty());
        }
        assert_eq!(r.state(), State::Backup);
        assert_eq!(r.master_addr(), Some(ip(2)));
    }

    #[test]
    fn two_routers_higher_priority_wins() {
        let t0 = Instant::now();
        let mut link = Link::new(router(100, 1), router(200, 2), t0);
        link.start(0);
        link.start(1);
        link.run_until(t0 + Duration::from_secs(2));
        assert_eq!(link.states(), [State::Backup, State::Master]);
        assert_eq!(link.routers[0].master_addr(), Some(ip(2)));
    }

    #[test]
    fn higher_priority_latecomer_preempts() {
        let t0 = Instant::now();
        let mut link = Link::new(router(100, 1), router(200, 2), t0);
        link.start(0);
        link.run_until(t0 + Duration::from_secs(1));
        assert_eq!(link.states(), [State::Master, State::Initialize]);
        link.start(1);
        let started = link.now;
        // Within its own master down interval (+ one advert), the
        // higher-priority router has taken over.
        link.run_until(started + link.routers[1].master_down_interval() + ms(1));
        assert_eq!(link.states(), [State::Backup, State::Master]);
    }

    #[test]
    fn no_preempt_keeps_lower_priority_master() {
        let t0 = Instant::now();
        let mut c = Config::new(200, ip(2));
        c.preempt = false;
        let mut link = Link::new(router(100, 1), Router::new(c).unwrap(), t0);
        link.start(0);
        link.run_until(t0 + Duration::from_secs(1));
        link.start(1);
        link.run_until(t0 + Duration::from_secs(5));
        assert_eq!(link.states(), [State::Master, State::Backup]);
    }

    #[test]
    fn preempt_ignores_lower_priority_master() {
        let t0 = Instant::now();
        let mut r = router(200, 2);
        r.start(t0);
        let down = r.next_deadline().unwrap();
        // Lower-priority adverts do not reset the master down timer.
        assert!(r.on_advertisement(t0 + ms(100), 100, 10, ip(1)).is_empty());
        assert!(r.on_advertisement(t0 + ms(200), 100, 10, ip(1)).is_empty());
        assert_eq!(r.next_deadline(), Some(down));
        assert!(r.on_timer(down).contains(&Action::BecomeMaster));
    }

    #[test]
    fn preempt_delay_and_hold() {
        let t0 = Instant::now();
        let mut c = Config::new(200, ip(2));
        c.preempt_delay = Duration::from_secs(2);
        let mut r = Router::new(c).unwrap();
        r.start(t0);
        // Before the delay: lower-priority adverts keep us backup.
        let mut t = t0;
        while t < t0 + ms(1900) {
            t += ms(100);
            r.on_advertisement(t, 100, 10, ip(1));
            assert!(r.on_timer(t).is_empty());
        }
        assert_eq!(r.state(), State::Backup);
        // After it, they are ignored and the timer runs out.
        r.on_advertisement(t0 + ms(2000), 100, 10, ip(1));
        let down = r.next_deadline().unwrap();
        r.on_advertisement(t0 + ms(2100), 100, 10, ip(1));
        assert_eq!(r.next_deadline(), Some(down));

        // A hold blocks preemption whatever the delay.
        let mut r = router(200, 2);
        r.start(t0);
        r.set_preempt_hold(true);
        for k in 1..=30 {
            let t = t0 + ms(100 * k);
            r.on_advertisement(t, 100, 10, ip(1));
            assert!(r.on_timer(t).is_empty());
        }
        r.set_preempt_hold(false);
        r.on_advertisement(t0 + ms(3100), 100, 10, ip(1));
        let down = r.next_deadline().unwrap();
        assert!(r.on_timer(down).contains(&Action::BecomeMaster));
    }

    #[test]
    fn priority_zero_gives_fast_takeover() {
        let t0 = Instant::now();
        let mut link = Link::new(router(100, 1), router(200, 2), t0);
        link.start(0);
        link.start(1);
        link.run_until(t0 + Duration::from_secs(1));
        assert_eq!(link.states(), [State::Backup, State::Master]);

        let stop = link.now;
        let acts = link.routers[1].shutdown(stop);
        assert_eq!(
            acts,
            vec![
                Action::SendAdvertisement { priority: 0 },
                Action::BecomeInitialize
            ]
        );
        link.deliver(1, &acts);
        assert_eq!(link.routers[1].next_deadline(), None);
        let skew = link.routers[0].skew_time();
        assert_eq!(link.routers[0].next_deadline(), Some(stop + skew));
        link.run_until(stop + skew);
        assert_eq!(link.states(), [State::Master, State::Initialize]);
        assert!(skew < ms(61));
    }

    #[test]
    fn master_answers_priority_zero_with_advert() {
        let t0 = Instant::now();
        let mut r = router(255, 1);
        r.start(t0);
        assert_eq!(
            r.on_advertisement(t0 + ms(5), 0, 10, ip(2)),
            vec![Action::SendAdvertisement { priority: 255 }]
        );
        assert_eq!(r.state(), State::Master);
        assert_eq!(r.next_deadline(), Some(t0 + ms(105)));
    }

    #[test]
    fn equal_priority_tie_broken_by_address() {
        let t0 = Instant::now();
        // Equal priority does not preempt a running master (a backup resets
        // its timer on adverts with priority >= its own): whoever's timer
        // fired first stays master.
        let mut link = Link::new(router(100, 1), router(100, 2), t0);
        link.start(0);
        link.start(1);
        link.run_until(t0 + Duration::from_secs(2));
        assert_eq!(link.states(), [State::Master, State::Backup]);

        // Two masters (after a partition): the higher address wins.
        let mut a = router(100, 1);
        let mut b = router(100, 2);
        a.start(t0);
        b.start(t0);
        a.on_timer(a.next_deadline().unwrap());
        b.on_timer(b.next_deadline().unwrap());
        let mut link = Link::new(a, b, t0 + Duration::from_secs(1));
        link.run_until(t0 + Duration::from_secs(2));
        assert_eq!(link.states(), [State::Backup, State::Master]);

        // Directly: a master with the lower address yields on equal
        // priority; with the higher address it answers instead.
        let mut lo = router(100, 1);
        lo.start(t0);
        lo.on_timer(lo.next_deadline().unwrap());
        assert_eq!(lo.state(), State::Master);
        assert_eq!(
            lo.on_advertisement(t0 + ms(500), 100, 10, ip(2)),
            vec![Action::BecomeBackup]
        );
        let mut hi = router(100, 2);
        hi.start(t0);
        hi.on_timer(hi.next_deadline().unwrap());
        assert_eq!(
            hi.on_advertisement(t0 + ms(500), 100, 10, ip(1)),
            vec![Action::SendAdvertisement { priority: 100 }]
        );
        assert_eq!(hi.state(), State::Master);
    }

    #[test]
    fn master_yields_to_higher_priority() {
        let t0 = Instant::now();
        let mut r = router(150, 9);
        r.start(t0);
        r.on_timer(r.next_deadline().unwrap());
        let t = t0 + ms(500);
        assert_eq!(
            r.on_advertisement(t, 151, 20, ip(1)),
            vec![Action::BecomeBackup]
        );
        assert_eq!(r.state(), State::Backup);
        assert_eq!(r.master_addr(), Some(ip(1)));
        // Master down interval is computed from the learned 200 ms.
        assert_eq!(r.master_adver_interval_cs(), 20);
        assert_eq!(r.next_deadline(), Some(t + r.master_down_interval()));
    }

    #[test]
    fn backup_learns_master_interval() {
        let t0 = Instant::now();
        let mut r = router(100, 1);
        r.start(t0);
        r.on_advertisement(t0 + ms(10), 200, 100, ip(2));
        assert_eq!(r.master_adver_interval_cs(), 100);
        // 3 s + (156 * 1 s / 256).
        assert_eq!(r.master_down_interval(), Duration::from_micros(3_609_375));
        assert_eq!(
            r.next_deadline(),
            Some(t0 + ms(10) + Duration::from_micros(3_609_375))
        );
    }

    #[test]
    fn split_brain_heals() {
        // Both became master while partitioned; the first advert that gets
        // through settles it.
        let t0 = Instant::now();
        let mut a = router(100, 1);
        let mut b = router(200, 2);
        a.start(t0);
        b.start(t0);
        a.on_timer(a.next_deadline().unwrap());
        b.on_timer(b.next_deadline().unwrap());
        assert_eq!((a.state(), b.state()), (State::Master, State::Master));
        let mut link = Link::new(a, b, t0 + Duration::from_secs(1));
        // Lower-priority master speaks first: the higher one answers at
        // once, and the lower one steps down.
        let acts = vec![Action::SendAdvertisement { priority: 100 }];
        link.deliver(0, &acts);
        assert_eq!(link.states(), [State::Backup, State::Master]);
        link.run_until(t0 + Duration::from_secs(3));
        assert_eq!(link.states(), [State::Backup, State::Master]);
    }

    #[test]
    fn own_adverts_and_initialize_ignored() {
        let t0 = Instant::now();
        let mut r = router(100, 1);
        assert!(r.on_advertisement(t0, 200, 10, ip(2)).is_empty());
        assert!(r.on_timer(t0).is_empty());
        assert!(r.shutdown(t0).is_empty());
        r.start(t0);
        let down = r.next_deadline();
        assert!(r.on_advertisement(t0 + ms(50), 200, 10, ip(1)).is_empty());
        assert_eq!(r.next_deadline(), down);
        // start twice is a no-op; backup shutdown sends nothing.
        assert!(r.start(t0).is_empty());
        assert_eq!(r.shutdown(t0), vec![Action::BecomeInitialize]);
        assert_eq!(r.state(), State::Initialize);
    }

    #[test]
    fn fault_until_the_link_returns() {
        let t0 = Instant::now();
        // Link down before the first start: Fault, deaf and silent.
        let mut r = router(100, 1);
        assert_eq!(r.link_down(t0), vec![Action::BecomeFault]);
        assert_eq!((r.state(), r.next_deadline()), (State::Fault, None));
        assert!(r.link_down(t0).is_empty());
        assert!(r.start(t0).is_empty());
        assert!(r.on_advertisement(t0, 200, 10, ip(2)).is_empty());
        assert!(r.on_timer(t0 + Duration::from_secs(9)).is_empty());
        assert!(r.shutdown(t0).is_empty());
        assert_eq!(r.state(), State::Fault);
        // Link up: started as at startup.
        let up = t0 + Duration::from_secs(10);
        assert_eq!(r.link_up(up), vec![Action::BecomeBackup]);
        assert_eq!(r.next_deadline(), Some(up + r.master_down_interval()));
        assert!(r.link_up(up).is_empty());
        // From Backup, and an owner comes back as master at once.
        assert_eq!(r.link_down(up + ms(10)), vec![Action::BecomeFault]);
        let mut owner = router(255, 2);
        owner.start(t0);
        assert_eq!(owner.link_down(t0 + ms(10)), vec![Action::BecomeFault]);
        assert_eq!(owner.master_addr(), None);
        assert_eq!(
            owner.link_up(t0 + ms(20)),
            vec![
                Action::SendAdvertisement { priority: 255 },
                Action::BecomeMaster
            ]
        );
    }

    #[test]
    fn master_fault_hands_over_then_preempts_again() {
        let t0 = Instant::now();
        let mut link = Link::new(router(100, 1), router(200, 2), t0);
        link.start(0);
        link.start(1);
        link.run_until(t0 + Duration::from_secs(1));
        assert_eq!(link.states(), [State::Backup, State::Master]);

        // No priority 0 on a dead link: the backup takes over once the
        // master's advertisements stop, not after its skew time.
        let fault = link.now;
        let acts = link.routers[1].link_down(fault);
        assert_eq!(acts, vec![Action::BecomeFault]);
        link.deliver(1, &acts);
        assert_eq!(link.routers[1].next_deadline(), None);
        let takeover = link.routers[0].next_deadline().unwrap();
        assert!(takeover > fault + link.routers[0].skew_time());
        link.run_until(fault + link.routers[0].master_down_interval());
        assert_eq!(link.states(), [State::Master, State::Fault]);

        // Link up: backup first, then it preempts the lower priority.
        let up = link.now + Duration::from_secs(1);
        link.run_until(up);
        let acts = link.routers[1].link_up(up);
        assert_eq!(acts, vec![Action::BecomeBackup]);
        link.deliver(1, &acts);
        link.run_until(up + link.routers[1].master_down_interval() + ms(1));
        assert_eq!(link.states(), [State::Backup, State::Master]);
    }
}
