//! systemd's notify protocol against a real listener: `lbd` in the lab
//! with `NOTIFY_SOCKET` pointing at a Unix datagram socket this test owns
//! (and `WATCHDOG_USEC`), as systemd would start it for `Type=notify`.
//! READY comes only once lbd answers its admin socket with its data path
//! pinned; RELOADING/READY go around `lbctl reload` and SIGHUP, applied or
//! refused; WATCHDOG pings come at half the interval; STOPPING at SIGTERM.

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use lb_daemon::admin::{self, Request};
use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    http_get, wait_until,
};

/// One datagram: when it arrived, and whether at that moment the admin
/// socket answered `status` with the data path's links pinned (checked for
/// READY messages only).
#[derive(Clone, Debug)]
struct Message {
    at: Instant,
    text: String,
    serving: Option<Result<(), String>>,
}

/// The test's end of `NOTIFY_SOCKET`: a thread records every datagram.
struct Listener {
    path: PathBuf,
    messages: Arc<Mutex<Vec<Message>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn bind(path: PathBuf, admin_socket: PathBuf, pin_path: PathBuf) -> Self {
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let messages: Arc<Mutex<Vec<Message>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (messages, stop) = (Arc::clone(&messages), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    let at = Instant::now();
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let serving = text
                        .lines()
                        .any(|l| l == "READY=1")
                        .then(|| serving(&admin_socket, &pin_path));
                    messages.lock().unwrap().push(Message { at, text, serving });
                }
            })
        };
        Self {
            path,
            messages,
            stop,
            thread: Some(thread),
        }
    }

    fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits for a message after the first `from` that has `line`; its index.
    fn wait_for(&self, from: usize, line: &str) -> usize {
        let found = || {
            self.messages()
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, m)| m.text.lines().any(|l| l == line))
                .map(|(i, _)| i)
        };
        wait_until(Duration::from_secs(20), &format!("{line} from lbd"), || {
            found().is_some()
        })
        .unwrap_or_else(|e| panic!("{e:#}; got {:#?}", self.messages()));
        found().unwrap()
    }

    /// The messages from index `from` on, WATCHDOG pings left out.
    fn events(&self, from: usize) -> Vec<String> {
        self.messages()
            .into_iter()
            .skip(from)
            .filter(|m| m.text.trim() != "WATCHDOG=1")
            .map(|m| m.text)
            .collect()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Does lbd answer `status` right now, with its XDP links pinned?
fn serving(admin_socket: &Path, pin_path: &Path) -> Result<(), String> {
    let links = pin_path.join("links");
    let pinned = std::fs::read_dir(&links).map_or(0, Iterator::count);
    if pinned == 0 {
        return Err(format!("nothing pinned under {}", links.display()));
    }
    let status = admin::call(admin_socket, &Request::Status, Duration::from_secs(5))
        .map_err(|e| format!("lbctl status: {e}"))?;
    if status["services"].as_array().is_none_or(Vec::is_empty) {
        return Err(format!("no services programmed: {status}"));
    }
    Ok(())
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn lbd_notifies_ready_reloading_watchdog_and_stopping() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(2)
        .build()
        .expect("build the lab");
    let two = LabService::v4("wlc", &[(0, 1), (1, 1)]);
    let text = LabDaemon::config_text(&lab, 0, std::slice::from_ref(&two));
    let mut lbd = LabDaemon::prepare(&mut lab, 0, &text).unwrap();
    let listener = Listener::bind(
        lab.dir().join("notify.sock"),
        lbd.socket().to_owned(),
        lbd.pin_path().to_owned(),
    );
    // A watchdog of 2 s: lbd pings every second.
    let watchdog = Duration::from_secs(2);
    lbd.set_env("NOTIFY_SOCKET", &listener.path);
    lbd.set_env("WATCHDOG_USEC", watchdog.as_micros().to_string());
    lbd.spawn().expect("start lbd");

    // READY, once, and only when lbd was serving.
    let ready = listener.wait_for(0, "READY=1");
    let first = &listener.messages()[ready];
    assert_eq!(
        ready,
        0,
        "READY is lbd's first message: {:#?}",
        listener.messages()
    );
    assert_eq!(
        first.serving,
        Some(Ok(())),
        "at READY lbd answers with its data path pinned"
    );
    assert!(
        first.text.contains("STATUS=serving: 1 services, 2 reals"),
        "{}",
        first.text
    );
    println!("READY: {:?}", first.text);

    check_watchdog(&listener, watchdog);

    // A valid reload by lbctl (a weight changes): RELOADING, then READY
    // with the new status.
    let mark = listener.messages().len();
    std::fs::write(
        lbd.config_path(),
        text.replacen("weight = 1", "weight = 3", 1),
    )
    .unwrap();
    lbd.lbctl_ok(&["reload"]).unwrap();
    let done = listener.wait_for(mark, "READY=1");
    let events = listener.events(mark);
    println!("lbctl reload: {events:?}");
    assert!(has(&events[0], "RELOADING=1"), "{events:?}");
    assert!(events[0].contains("MONOTONIC_USEC="), "{events:?}");
    let last = &listener.messages()[done].text;
    assert!(last.contains("STATUS=serving (config reloaded)"), "{last}");

    // A refused reload (lbctl exits 1 with file:line): RELOADING, then
    // READY again (the running config stays), its status says so.
    let mark = listener.messages().len();
    let bad = text.replacen("weight = 1", "weight = 70000", 1);
    std::fs::write(lbd.config_path(), &bad).unwrap();
    let out = lbd.lbctl(&["reload"]).unwrap();
    assert_eq!(out.status.code(), Some(1), "the refused reload fails");
    let line = bad.lines().position(|l| l.contains("70000")).unwrap() + 1;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("lb.toml:{line}")), "{stderr}");
    let done = listener.wait_for(mark, "READY=1");
    let events = listener.events(mark);
    println!("refused lbctl reload: {events:?}");
    assert!(has(&events[0], "RELOADING=1"), "{events:?}");
    assert!(
        listener.messages()[done].text.contains("reload refused"),
        "{events:?}"
    );

    // SIGHUP does the same.
    let mark = listener.messages().len();
    std::fs::write(lbd.config_path(), &text).unwrap();
    lbd.hangup().unwrap();
    listener.wait_for(mark, "READY=1");
    let events = listener.events(mark);
    assert!(has(&events[0], "RELOADING=1"), "SIGHUP: {events:?}");

    // A hung lbd (SIGSTOP): the pings stop, so systemd would kill and
    // restart it, and the pinned data path forwards meanwhile.
    hung_lbd_stops_pinging_and_forwarding_goes_on(&lab, &lbd, &listener, watchdog);

    // SIGTERM: STOPPING, and nothing claims readiness after it.
    let mark = listener.messages().len();
    lbd.stop().unwrap();
    let stopping = listener.wait_for(mark, "STOPPING=1");
    let after: Vec<String> = listener.events(stopping + 1);
    assert!(
        after.iter().all(|m| !has(m, "READY=1")),
        "after STOPPING: {after:?}"
    );
    println!("SIGTERM: {:?}", listener.messages()[stopping].text);
}

/// Pings every `WATCHDOG_USEC` / 2 over three intervals, never a gap that
/// would make systemd kill lbd.
fn check_watchdog(listener: &Listener, watchdog: Duration) {
    let since = Instant::now();
    std::thread::sleep(watchdog * 3);
    let pings: Vec<Instant> = listener
        .messages()
        .iter()
        .filter(|m| m.text.trim() == "WATCHDOG=1" && m.at >= since)
        .map(|m| m.at)
        .collect();
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    println!(
        "watchdog pings in {:?}: {}, gaps {gaps:?}",
        watchdog * 3,
        pings.len()
    );
    assert!(pings.len() >= 4, "about 6 pings in 6 s: {}", pings.len());
    assert!(
        pings.len() <= 9,
        "pings at half the interval, not more often: {}",
        pings.len()
    );
    assert!(
        gaps.iter().all(|g| *g < watchdog),
        "no gap reaches WATCHDOG_USEC: {gaps:?}"
    );
}

fn hung_lbd_stops_pinging_and_forwarding_goes_on(
    lab: &Lab,
    lbd: &LabDaemon,
    listener: &Listener,
    watchdog: Duration,
) {
    let pid = libc::pid_t::try_from(lbd.pid().expect("lbd runs")).unwrap();
    let pings_since = |since: Instant| {
        listener
            .messages()
            .iter()
            .filter(|m| m.text.trim() == "WATCHDOG=1" && m.at >= since)
            .count()
    };
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // A ping already on its way may still arrive; none after that.
    std::thread::sleep(Duration::from_millis(200));
    let stopped = Instant::now();
    let vip = std::net::SocketAddr::from((VIP_V4, 80));
    let answer = http_get(lab.client_ns(0), vip, "/", Duration::from_secs(5));
    std::thread::sleep(watchdog.saturating_sub(stopped.elapsed()));
    let pings = pings_since(stopped);
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(pings, 0, "no ping from a stopped lbd for WATCHDOG_USEC");
    answer.expect("the data path forwards while lbd hangs");
    let resumed = Instant::now();
    wait_until(watchdog * 2, "pings again after SIGCONT", || {
        pings_since(resumed) > 0
    })
    .unwrap();
    println!("SIGSTOP for {watchdog:?}: no ping, requests served");
}
