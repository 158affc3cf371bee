//! Tests of the lab itself: namespaces, addressing, nginx on the reals,
//! stopping and pausing them, XDP pass programs, and cleanup.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use lb_lab::{
    BIG_PATH, HOST_IFNAME, HTTP_PORT, Lab, VIP_V4, VIP_V6, attach_xdp, cleanup_stale, exec,
    exec_ok, format_mac, http_get, in_namespace, mac_of, pass_object, url, wait_until, xdp_object,
};

const CURL_MAX_TIME: &str = "5";

fn build(clients: usize, directors: usize, reals: usize) -> Lab {
    let start = Instant::now();
    let lab = Lab::builder()
        .clients(clients)
        .directors(directors)
        .reals(reals)
        .build()
        .unwrap_or_else(|e| panic!("building a lab ({clients}c/{directors}d/{reals}r): {e:#}"));
    eprintln!(
        "built lab {} ({clients} clients, {directors} directors, {reals} reals) in {:.0?}",
        lab.prefix(),
        start.elapsed()
    );
    lab
}

/// `curl` from `ns`; stdout on success.
fn curl(ns: &str, addr: IpAddr, path: &str) -> anyhow::Result<String> {
    exec_ok(
        ns,
        &["curl", "-sS", "--max-time", CURL_MAX_TIME, &url(addr, path)],
    )
}

/// Namespaces that `ip netns list` shows with this prefix.
fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("running `ip netns list`");
    assert!(out.status.success(), "`ip netns list` failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Drops the lab and checks that nothing of it remains.
fn drop_and_check(lab: Lab) {
    let prefix = lab.prefix().to_owned();
    let dir = lab.dir().to_owned();
    let start = Instant::now();
    drop(lab);
    eprintln!("tore down lab {prefix} in {:.0?}", start.elapsed());
    let left = namespaces_with_prefix(&prefix);
    assert!(left.is_empty(), "namespaces left after drop: {left:?}");
    assert!(!dir.exists(), "{} left after drop", dir.display());
}

fn assert_real_answers(lab: &Lab, client: usize, real: usize) {
    let expected = format!("{}\n", lab.real_name(real));
    for addr in [
        IpAddr::V4(lab.real_addr_v4(real)),
        IpAddr::V6(lab.real_addr_v6(real)),
    ] {
        let body = curl(lab.client_ns(client), addr, "/")
            .unwrap_or_else(|e| panic!("client {client} -> real {real} at {addr}: {e:#}"));
        assert_eq!(body, expected, "answer of real {real} at {addr}");
    }
}

#[test]
fn reals_answer_clients_on_their_own_addresses() {
    let lab = build(1, 1, 2);
    for real in 0..lab.reals() {
        assert_real_answers(&lab, 0, real);
    }

    // The big file, whole, with the header naming the real.
    let addr = IpAddr::V4(lab.real_addr_v4(1));
    let out = exec_ok(
        lab.client_ns(0),
        &[
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "size=%{size_download}\n",
            &url(addr, BIG_PATH),
        ],
    )
    .unwrap_or_else(|e| panic!("downloading {BIG_PATH} from real 1: {e:#}"));
    assert!(
        out.lines()
            .any(|l| l.trim_end().eq_ignore_ascii_case("x-real-server: real-1")),
        "no X-Real-Server header in {out}"
    );
    assert!(
        out.contains(&format!("size={}\n", lab.big_size())),
        "{BIG_PATH} was not {} bytes: {out}",
        lab.big_size()
    );

    // The in-process client, from the client's namespace, over IPv6.
    let response = http_get(
        lab.client_ns(0),
        SocketAddr::new(IpAddr::V6(lab.real_addr_v6(0)), HTTP_PORT),
        "/anything",
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (response.status, response.text()),
        (200, "real-0\n".to_owned())
    );

    // The MACs the lab reports are the interfaces' own.
    for i in 0..lab.reals() {
        let mac = mac_of(lab.real_ns(i), HOST_IFNAME).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(mac, lab.real_mac(i), "MAC of real {i}");
    }
    let mac = mac_of(lab.director_ns(0), HOST_IFNAME).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(mac, lab.director_mac(0), "MAC of director 0");

    // Reals hold the VIPs on lo and don't answer ARP for them on eth0.
    let lo = exec_ok(
        lab.real_ns(0),
        &["ip", "-o", "address", "show", "dev", "lo"],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        lo.contains("10.99.0.200/32") && lo.contains("fd00:99::200/128"),
        "VIPs missing on real 0's lo: {lo}"
    );
    let arp_ignore = exec_ok(
        lab.real_ns(0),
        &["sysctl", "-n", "net.ipv4.conf.all.arp_ignore"],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(arp_ignore.trim(), "1");

    // in_namespace really runs inside the namespace, and only there.
    let root = std::fs::read_link("/proc/thread-self/ns/net").expect("reading our netns");
    let inside = in_namespace(lab.real_ns(0), || {
        std::fs::read_link("/proc/thread-self/ns/net").expect("reading the thread's netns")
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_ne!(root, inside, "in_namespace ran in our own namespace");
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").expect("reading our netns"),
        root,
        "in_namespace moved the calling thread"
    );

    drop_and_check(lab);
}

#[test]
fn reals_stop_start_pause_and_resume() {
    let mut lab = build(1, 1, 2);
    let client = lab.client_ns(0).to_owned();

    lab.real_stop(0)
        .unwrap_or_else(|e| panic!("stopping real 0: {e:#}"));
    assert!(!lab.real_is_running(0));
    let refused = exec(
        &client,
        &[
            "curl",
            "-sS",
            "--max-time",
            CURL_MAX_TIME,
            &url(IpAddr::V4(lab.real_addr_v4(0)), "/"),
        ],
    )
    .expect("running curl");
    // curl's exit code 7: failed to connect.
    assert_eq!(
        refused.status.code(),
        Some(7),
        "a stopped real should refuse connections: {refused:?}"
    );
    assert_real_answers(&lab, 0, 1);

    lab.real_start(0)
        .unwrap_or_else(|e| panic!("starting real 0: {e:#}"));
    assert!(lab.real_is_running(0));
    assert_real_answers(&lab, 0, 0);

    lab.real_pause(1)
        .unwrap_or_else(|e| panic!("pausing real 1: {e:#}"));
    assert!(lab.real_is_paused(1));
    let timed_out = exec(
        &client,
        &[
            "curl",
            "-sS",
            "--max-time",
            "1",
            &url(IpAddr::V4(lab.real_addr_v4(1)), "/"),
        ],
    )
    .expect("running curl");
    // curl's exit code 28: timeout (the kernel accepted the connection, nginx
    // is stopped).
    assert_eq!(
        timed_out.status.code(),
        Some(28),
        "a paused real should accept but not answer: {timed_out:?}"
    );
    lab.real_resume(1)
        .unwrap_or_else(|e| panic!("resuming real 1: {e:#}"));
    assert!(!lab.real_is_paused(1));
    assert_real_answers(&lab, 0, 1);

    // Stopping a paused real works too.
    lab.real_pause(1)
        .unwrap_or_else(|e| panic!("pausing real 1: {e:#}"));
    lab.real_stop(1)
        .unwrap_or_else(|e| panic!("stopping paused real 1: {e:#}"));
    lab.real_start(1)
        .unwrap_or_else(|e| panic!("starting real 1: {e:#}"));
    assert_real_answers(&lab, 0, 1);

    drop_and_check(lab);
}

#[test]
fn two_labs_build_concurrently() {
    let labs: Vec<Lab> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2).map(|_| scope.spawn(|| build(1, 1, 2))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("building a lab panicked"))
            .collect()
    });
    assert_ne!(labs[0].prefix(), labs[1].prefix());
    for ns in labs[0].namespaces() {
        assert!(
            !labs[1].namespaces().contains(ns),
            "both labs use namespace {ns}"
        );
    }
    // Same addresses in both, each lab answering with its own reals.
    for lab in &labs {
        for real in 0..lab.reals() {
            assert_real_answers(lab, 0, real);
        }
    }
    // Stopping a real in one lab leaves the other lab's alone.
    let mut labs = labs;
    labs[0]
        .real_stop(0)
        .unwrap_or_else(|e| panic!("stopping real 0: {e:#}"));
    assert_real_answers(&labs[1], 0, 0);
    for lab in labs {
        drop_and_check(lab);
    }
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    let built = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let mut lab = build(1, 0, 1);
        // A process of our own inside the lab, still running at the panic.
        let ns = lab.real_ns(0).to_owned();
        let child = lab
            .spawn_in(&ns, &["sleep", "600"])
            .expect("spawning sleep");
        *built.lock().unwrap() = Some((lab.prefix().to_owned(), lab.dir().to_owned(), child));
        panic!("deliberate panic inside a test that holds a lab");
    });
    assert!(result.is_err(), "the closure should have panicked");
    let (prefix, dir, mut child) = built.into_inner().unwrap().expect("the lab was built");
    let status = child.wait().expect("waiting for sleep");
    assert!(
        !status.success(),
        "the lab should have killed sleep: {status}"
    );
    let left = namespaces_with_prefix(&prefix);
    assert!(left.is_empty(), "namespaces left after a panic: {left:?}");
    assert!(!dir.exists(), "{} left after a panic", dir.display());
}

/// A namespace and temp dir named after a dead process, with a process
/// running inside. `None` when a concurrent `cleanup_stale` (every lab build
/// runs one) removed it while it was being made.
fn make_stale_litter() -> Option<(String, PathBuf, std::process::Child)> {
    // A pid that is certainly dead: a child we started and reaped.
    let mut child = Command::new("true").spawn().expect("spawning true");
    child.wait().expect("waiting for true");
    let dead = child.id();
    let name = format!("lbl{dead}-0-test-sw");
    let dir = std::env::temp_dir().join(format!("lbl{dead}-0-test"));
    let out = Command::new("ip")
        .args(["netns", "add", &name])
        .output()
        .expect("running ip netns add");
    if !out.status.success() {
        eprintln!("ip netns add {name} failed (cleaned up concurrently?): {out:?}");
        return None;
    }
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &name, "sleep", "600"])
        .spawn()
        .expect("spawning sleep");
    let our_netns = std::fs::read_link("/proc/self/ns/net").expect("reading our netns");
    let sleeper_pid = sleeper.id();
    wait_until(
        Duration::from_secs(5),
        "sleep to enter the namespace or exit",
        || {
            std::fs::read_link(format!("/proc/{sleeper_pid}/ns/net"))
                .map_or(true, |ns| ns != our_netns)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    if let Some(status) = sleeper.try_wait().expect("checking on sleep") {
        eprintln!("sleep in {name} exited early (cleaned up concurrently?): {status}");
        return None;
    }
    std::fs::create_dir_all(&dir).expect("creating a stale temp dir");
    Some((name, dir, sleeper))
}

#[test]
fn stale_namespaces_of_dead_processes_are_removed() {
    let (name, dir, mut sleeper) = (0..10)
        .find_map(|_| make_stale_litter())
        .expect("could not make a stale namespace in 10 attempts");
    // Other tests may clean it up concurrently too: only check the outcome.
    cleanup_stale().unwrap_or_else(|e| panic!("cleanup_stale: {e:#}"));
    let exited = wait_until(Duration::from_secs(10), "sleep to be killed", || {
        sleeper.try_wait().expect("checking on sleep").is_some()
    });
    if let Err(e) = exited {
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        panic!("{e:#}");
    }
    assert!(
        namespaces_with_prefix(&name).is_empty(),
        "stale namespace {name} still exists"
    );
    assert!(!dir.exists(), "stale dir {} still exists", dir.display());
}

#[test]
fn pass_program_attaches_to_the_director_peer() {
    let mut lab = build(1, 1, 0);
    let peer = lab.director_peer_ifname(0).to_owned();
    let switch = lab.switch_ns().to_owned();
    lab.attach_pass_program(0, &pass_object())
        .unwrap_or_else(|e| panic!("attaching the built-in pass program: {e:#}"));
    let link = exec_ok(&switch, &["ip", "-d", "link", "show", "dev", &peer])
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        link.contains("prog/xdp"),
        "no native XDP program on {peer}: {link}"
    );

    // Frames from the director still cross the bridge: a connection to a
    // closed port on the director is refused (its RST went through the
    // program).
    for addr in [
        IpAddr::V4(lab.director_addr_v4(0)),
        IpAddr::V6(lab.director_addr_v6(0)),
    ] {
        let refused = exec(
            lab.client_ns(0),
            &["curl", "-sS", "--max-time", CURL_MAX_TIME, &url(addr, "/")],
        )
        .expect("running curl");
        assert_eq!(
            refused.status.code(),
            Some(7),
            "client -> director {addr} should be refused: {refused:?}"
        );
    }

    // Attaching again replaces it; detaching removes it.
    lab.attach_pass_program(0, &pass_object())
        .unwrap_or_else(|e| panic!("attaching the pass program again: {e:#}"));
    lab.detach_pass_program(0);
    let link = exec_ok(&switch, &["ip", "-d", "link", "show", "dev", &peer])
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        !link.contains("prog/xdp"),
        "XDP program still on {peer}: {link}"
    );
    drop_and_check(lab);
}

/// The project's own eBPF object (embedded by `cargo xtask test`).
#[test]
fn project_pass_program_attaches() {
    let object = lb_daemon::dataplane::xdp_object()
        .expect("the XDP object is embedded: run with `cargo xtask test`");
    let mut lab = build(1, 1, 0);
    lab.attach_pass_program(0, object)
        .unwrap_or_else(|e| panic!("attaching xdp_pass from the project's object: {e:#}"));
    let link = exec_ok(
        lab.switch_ns(),
        &[
            "ip",
            "-d",
            "link",
            "show",
            "dev",
            lab.director_peer_ifname(0),
        ],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(link.contains("prog/xdp"), "no native XDP program: {link}");
    drop_and_check(lab);
}

/// One BPF instruction.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[0] = code;
    out[1] = (src << 4) | dst;
    out[2..4].copy_from_slice(&off.to_le_bytes());
    out[4..].copy_from_slice(&imm.to_le_bytes());
    out
}

/// A minimal DR forwarder, by hand: every IPv4/IPv6 frame gets destination
/// MAC `to` and source MAC `from` and goes back out with `XDP_TX`; anything
/// else passes.
fn forwarder_object(to: [u8; 6], from: [u8; 6]) -> Vec<u8> {
    let word = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let half = |b: &[u8]| i32::from(u16::from_le_bytes([b[0], b[1]]));
    let program = [
        insn(0x61, 2, 1, 0, 0),         // 0: r2 = ctx->data
        insn(0x61, 3, 1, 4, 0),         // 1: r3 = ctx->data_end
        insn(0xbf, 4, 2, 0, 0),         // 2: r4 = r2
        insn(0x07, 4, 0, 0, 14),        // 3: r4 += 14 (Ethernet header)
        insn(0x2d, 4, 3, 3, 0),         // 4: if r4 > r3 goto 8
        insn(0x69, 5, 2, 12, 0),        // 5: r5 = ethertype (network order)
        insn(0x15, 5, 0, 3, 0x0008),    // 6: if IPv4 goto 10
        insn(0x15, 5, 0, 2, 0xdd86),    // 7: if IPv6 goto 10
        insn(0xb7, 0, 0, 0, 2),         // 8: r0 = XDP_PASS
        insn(0x95, 0, 0, 0, 0),         // 9: exit
        insn(0x62, 2, 0, 0, word(&to)), // 10: destination MAC
        insn(0x6a, 2, 0, 4, half(&to[4..])),
        insn(0x62, 2, 0, 6, word(&from)), // source MAC
        insn(0x6a, 2, 0, 10, half(&from[4..])),
        insn(0xb7, 0, 0, 0, 3), // r0 = XDP_TX
        insn(0x95, 0, 0, 0, 0), // exit
    ];
    xdp_object("dr_forward", &program.concat())
}

/// The lab carries the whole direct-routing path: client -> VIP at the
/// director, whose XDP program rewrites the MACs and sends the frame back
/// out (`XDP_TX`) -> bridge -> real 0, which answers the client directly.
#[test]
fn lab_carries_a_direct_routing_path() {
    let mut lab = build(1, 1, 2);
    lab.attach_pass_program(0, &pass_object())
        .unwrap_or_else(|e| panic!("attaching the pass program: {e:#}"));
    let object = forwarder_object(lab.real_mac(0), lab.director_mac(0));
    let _forwarder = attach_xdp(lab.director_ns(0), HOST_IFNAME, &object, "dr_forward")
        .unwrap_or_else(|e| panic!("attaching the forwarder: {e:#}"));
    // The client reaches the VIPs at the director's MAC (the real daemon
    // would answer ARP/ND for them instead).
    let client = lab.client_ns(0).to_owned();
    let director_mac = format_mac(lab.director_mac(0));
    for vip in [VIP_V4.to_string(), VIP_V6.to_string()] {
        exec_ok(
            &client,
            &[
                "ip",
                "neigh",
                "replace",
                &vip,
                "lladdr",
                &director_mac,
                "dev",
                HOST_IFNAME,
                "nud",
                "permanent",
            ],
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    }
    for vip in [IpAddr::V4(VIP_V4), IpAddr::V6(VIP_V6)] {
        let body = curl(&client, vip, "/")
            .unwrap_or_else(|e| panic!("client -> {vip} via the director: {e:#}"));
        assert_eq!(body, "real-0\n", "answer through the director from {vip}");
    }
    // A long download: requests and ACKs through the director, data direct.
    let out = exec_ok(
        &client,
        &[
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            &url(IpAddr::V4(VIP_V4), BIG_PATH),
        ],
    )
    .unwrap_or_else(|e| panic!("downloading {BIG_PATH} through the director: {e:#}"));
    assert_eq!(
        out,
        lab.big_size().to_string(),
        "size of {BIG_PATH} through the director"
    );
    drop_and_check(lab);
}
