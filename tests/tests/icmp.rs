//! Path MTU discovery through the director. Client 0 sits behind a router
//! whose link to it has a smaller MTU than the reals' network; the client
//! still announces an MSS for 1500 bytes. A real's full-sized replies (DF
//! set by its TCP) make the router send "fragmentation needed" (IPv4) or
//! "packet too big" (IPv6) to their source, the VIP, which the director
//! holds. The balancer must hand them to the real that owns the flow: the
//! real then lowers its path MTU and the download completes. Without that the
//! director's kernel swallows the errors, the real keeps resending packets
//! the router drops, and the download stalls.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use lb_lab::{
    BIG_PATH, HTTP_PORT, Lab, VIP_V4, VIP_V6,
    daemon::{LabDaemon, LabService},
    exec_ok, http_get, list_namespaces, wait_for,
};

/// The router's MTU toward the client (the reals' network has 1500).
const MTU: u32 = 1400;
/// Large enough for hundreds of full-sized segments.
const BIG: u64 = 4 << 20;
/// Each read of the download: a stalled one fails after this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole download (it takes well under a second when PMTU works).
const DEADLINE: Duration = Duration::from_secs(30);

/// Packets the data path counted for `reason` (`lbctl status`).
fn xdp_count(lbd: &LabDaemon, reason: &str) -> u64 {
    lbd.status()
        .expect("lbctl status")
        .xdp
        .iter()
        .filter(|c| c.reason == reason)
        .map(|c| c.packets)
        .sum()
}

#[test]
fn large_replies_reach_a_client_behind_a_smaller_mtu_over_ipv4_and_ipv6() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(1)
        .big_file_size(BIG)
        .client_behind_router(MTU)
        .build()
        .expect("build the lab");
    let v4 = LabService::v4("rr", &[(0, 1)]);
    let v6 = LabService {
        ipv6: true,
        ..v4.clone()
    };
    let lbd = LabDaemon::start(&mut lab, 0, &[v4, v6]).expect("start lbd");

    for (vip, family, client) in [
        (
            IpAddr::from(VIP_V4),
            "IPv4",
            lab.client_addr_v4(0).to_string(),
        ),
        (
            IpAddr::from(VIP_V6),
            "IPv6",
            lab.client_addr_v6(0).to_string(),
        ),
    ] {
        let vip = SocketAddr::new(vip, HTTP_PORT);
        // A small reply first: the path works and the VIP is reachable
        // (neighbour entries, a freshly added IPv6 address), so the figure
        // below is the download alone.
        let started = Instant::now();
        let small = http_get(lab.client_ns(0), vip, "/", DEADLINE).unwrap_or_else(|e| {
            panic!(
                "{family}: GET / failed: {e:#}
{}",
                lbd.log()
            )
        });
        assert_eq!(small.status, 200, "{family}");
        let first = started.elapsed();

        let before = xdp_count(&lbd, "icmp_error_forwarded");
        let started = Instant::now();
        let response =
            http_get(lab.client_ns(0), vip, BIG_PATH, READ_TIMEOUT).unwrap_or_else(|e| {
                panic!(
                    "{family}: downloading {BIG_PATH} through a {MTU}-byte hop failed after \
                 {:.1?}: {e:#}\ndata path: {:?}",
                    started.elapsed(),
                    lbd.status().map(|s| s.xdp)
                )
            });
        let took = started.elapsed();
        assert_eq!(response.status, 200, "{family}");
        assert_eq!(response.body.len() as u64, BIG, "{family}: the whole file");
        assert!(took < DEADLINE, "{family}: the download took {took:.1?}");

        // The errors went to the real, which now knows the smaller MTU.
        let forwarded = wait_for(
            Duration::from_secs(10),
            "the ICMP errors to show in lbctl status",
            || {
                let n = xdp_count(&lbd, "icmp_error_forwarded") - before;
                if n > 0 { Ok(n) } else { Err("none counted") }
            },
        )
        .unwrap();
        let route = exec_ok(lab.real_ns(0), &["ip", "route", "get", &client]).unwrap();
        println!(
            "{family}: GET / in {first:.2?}, then {BIG} bytes through a {MTU}-byte hop in \
             {took:.2?}; {forwarded} ICMP error(s) forwarded to the real; the real's route: {}",
            route.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert!(
            route.contains(&format!("mtu {MTU}")),
            "{family}: the real learned the path MTU: {route}"
        );
    }

    // The router's namespace goes with the rest of the lab.
    let prefix = lab.prefix().to_owned();
    drop(lbd);
    drop(lab);
    let left: Vec<_> = list_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
