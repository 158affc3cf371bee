//! A spoofed SYN flood of four times the connection table, sent from the
//! client namespace with a raw socket, while keep-alive connections sit
//! idle: none of them breaks, the active counts stay those of the real
//! connections, the flood shows as inactive (half-open) connections, and the
//! half-open flows age out within their timeout.
//!
//! The spoofed sources are in `10.99.128.0/17`, outside the lab's
//! `10.99.0.0/24` and routed nowhere: a real's answer to one has no route
//! (the test checks that no namespace has a default route), so nothing
//! leaves the lab.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use lb_lab::{
    HTTP_PORT, Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    exec_ok, in_namespace, wait_for,
};

/// `dataplane.conntrack_size` in this test (the half-open table is a
/// quarter of it, at least 1024 entries).
const CONNTRACK_SIZE: u32 = 4096;
/// Spoofed SYNs sent.
const FLOOD: u32 = 4 * CONNTRACK_SIZE;
/// Idle keep-alive connections held through the flood.
const KEEPALIVE: usize = 8;
/// `timeouts.tcp_syn` and `timeouts.ageing_interval` in this test.
const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(2);
const AGEING_INTERVAL: Duration = Duration::from_secs(1);

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, told in order")]
fn syn_flood_breaks_no_established_connection_and_counts_stay_true() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(2)
        .build()
        .expect("build the lab");
    for ns in lab.namespaces() {
        let routes = exec_ok(ns, &["ip", "-4", "route", "show", "default"]).unwrap();
        assert!(
            routes.trim().is_empty(),
            "{ns} has a default route: spoofed sources must be unroutable"
        );
    }
    let service = LabService::v4("lc", &[(0, 1), (1, 1)]);
    let text = LabDaemon::config_text(&lab, 0, std::slice::from_ref(&service));
    let configured = text
        .replace(
            "conntrack_size = 65536",
            &format!("conntrack_size = {CONNTRACK_SIZE}"),
        )
        .replace(
            "ageing_interval = \"2s\"\n",
            &format!(
                "ageing_interval = \"{}s\"\ntcp_syn = \"{}s\"\n",
                AGEING_INTERVAL.as_secs(),
                HALF_OPEN_TIMEOUT.as_secs()
            ),
        );
    assert!(
        configured.contains("conntrack_size = 4096") && configured.contains("tcp_syn"),
        "the lab config changed shape:\n{text}"
    );
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &configured).expect("start lbd");
    let name = service.name();
    let reals: Vec<String> = (0..2)
        .map(|i| format!("{}:{HTTP_PORT}", lab.real_addr_v4(i)))
        .collect();
    for real in &reals {
        lbd.wait_state(&name, real, "up", Duration::from_secs(10))
            .expect("real up");
    }
    let counts = || -> Result<(u64, u64)> {
        let status = lbd.status()?;
        let reals = status.services.iter().flat_map(|s| &s.reals);
        Ok(reals.fold((0, 0), |(a, i), r| {
            (a + r.active_connections, i + r.inactive_connections)
        }))
    };

    // Keep-alive connections, each used once, then left idle.
    let vip = SocketAddr::from((VIP_V4, HTTP_PORT));
    let mut held = in_namespace(lab.client_ns(0), || -> Result<Vec<(TcpStream, String)>> {
        (0..KEEPALIVE)
            .map(|_| {
                let mut stream = TcpStream::connect_timeout(&vip, Duration::from_secs(5))?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                let real = get(&mut stream)?;
                Ok((stream, real))
            })
            .collect()
    })
    .unwrap()
    .unwrap_or_else(|e| panic!("keep-alive connections: {e:#}\n{}", lbd.log()));
    wait_for(Duration::from_secs(5), "active = the connections", || {
        let (active, inactive) = counts()?;
        ensure!(
            active == KEEPALIVE as u64 && inactive == 0,
            "active {active}, inactive {inactive}"
        );
        Ok(())
    })
    .unwrap();
    let new_flows_before = reason_count(&lbd, "new_flow");

    let started = Instant::now();
    let sent = in_namespace(lab.client_ns(0), || flood(FLOOD))
        .unwrap()
        .expect("flood");
    let flood_time = started.elapsed();
    let flooded = reason_count(&lbd, "new_flow") - new_flows_before;
    println!(
        "flood: {sent} spoofed SYNs sent in {flood_time:?}, {flooded} scheduled by the data path"
    );
    assert!(
        flooded >= 2 * u64::from(CONNTRACK_SIZE),
        "the data path saw {flooded} SYNs, fewer than twice the table ({CONNTRACK_SIZE})"
    );

    let (active, inactive) = counts().unwrap();
    let flows = lbd.flows().unwrap();
    let half_open = flows.iter().filter(|f| f.state == "half-open").count();
    let established = flows.iter().filter(|f| f.state == "established").count();
    println!(
        "after the flood: active {active}, inactive {inactive}; flows: {established} established, \
         {half_open} half-open"
    );
    assert_eq!(active, KEEPALIVE as u64, "active counts stay true");
    assert!(inactive > 0, "the flood shows as inactive connections");
    assert_eq!(established, KEEPALIVE, "no established flow was evicted");
    assert!(half_open > 0);

    // Every idle connection still works, on the same real.
    let held_after = in_namespace(lab.client_ns(0), || -> Result<()> {
        for (stream, real) in &mut held {
            let now = get(stream)?;
            ensure!(now == *real, "connection moved from {real} to {now}");
        }
        Ok(())
    });
    held_after
        .unwrap()
        .unwrap_or_else(|e| panic!("a keep-alive connection broke: {e:#}\n{}", lbd.log()));

    // The data path cannot see the LRU evict a half-open flow, so its
    // inactive count runs ahead during a flood; the next ageing pass
    // rebuilds it from the tables: at most the half-open table's capacity
    // and the eighth of the connection table that SYNs may take
    // (`SYN_ALLOWANCE`).
    let status = lbd.status().unwrap();
    let capacity = status.half_open_capacity + status.conntrack_capacity / 8;
    let rebuilt = wait_for(
        2 * AGEING_INTERVAL + Duration::from_secs(2),
        "inactive rebuilt",
        || {
            let (_, inactive) = counts()?;
            ensure!(
                inactive <= capacity,
                "inactive {inactive}, table capacity {capacity}"
            );
            Ok(inactive)
        },
    )
    .unwrap();
    println!(
        "after an ageing pass: inactive {rebuilt} (half-open table and an eighth of the \
         connection table: {capacity})"
    );

    // The half-open flows age out within their timeout (plus the sweep).
    let limit = HALF_OPEN_TIMEOUT + 2 * AGEING_INTERVAL + Duration::from_secs(3);
    wait_for(limit, "half-open flows aged out", || {
        let (active, inactive) = counts()?;
        let half_open = lbd
            .flows()?
            .iter()
            .filter(|f| f.state == "half-open")
            .count();
        ensure!(
            inactive == 0 && half_open == 0,
            "inactive {inactive}, {half_open} half-open flows"
        );
        ensure!(active == KEEPALIVE as u64, "active {active}");
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    let aged_after = started.elapsed().saturating_sub(flood_time);
    println!("half-open flows gone {aged_after:?} after the flood");

    // Closing the connections leaves the active counts too.
    drop(held);
    wait_for(Duration::from_secs(5), "active back to 0", || {
        let (active, _) = counts()?;
        ensure!(active == 0, "active {active}");
        Ok(())
    })
    .unwrap();
}

/// The packets the data path counted under `reason`.
fn reason_count(lbd: &LabDaemon, reason: &str) -> u64 {
    lbd.status()
        .unwrap()
        .xdp
        .iter()
        .filter(|c| c.reason == reason)
        .map(|c| c.packets)
        .sum()
}

/// One `GET /` on a kept-alive connection; returns the real's name (the
/// body).
fn get(stream: &mut TcpStream) -> Result<String> {
    stream.write_all(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).context("reading the response")?;
        if n == 0 {
            bail!("connection closed: {:?}", String::from_utf8_lossy(&buf));
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        ensure!(head.starts_with("HTTP/1.1 200"), "response {head}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse())
            })
            .context("no Content-Length")??;
        if body.len() >= length {
            return Ok(body[..length].trim().to_owned());
        }
    }
}

/// Sends `count` SYNs to the VIP from random sources in `10.99.128.0/17`
/// (random ports and sequence numbers) through a raw socket; returns how
/// many were sent. Paced in bursts so the veths' queues do not drop them.
fn flood(count: u32) -> Result<u32> {
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    ensure!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let dst = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(VIP_V4.octets()),
        },
        sin_zero: [0; 8],
    };
    let mut state = 0x2545_f491_u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let mut sent = 0;
    let mut result = Ok(());
    while sent < count {
        let r = next();
        let src = Ipv4Addr::new(10, 99, 128 | (r >> 24) as u8 & 0x7f, (r >> 16) as u8);
        let port = 1024 + (r & 0xffff) as u16 % 60000;
        let packet = syn(src, port, VIP_V4, HTTP_PORT, next());
        // SAFETY: valid buffer and address for the call's duration.
        let n = unsafe {
            libc::sendto(
                fd,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&raw const dst).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            result = Err(e).context("sendto");
            break;
        }
        sent += 1;
        if sent % 128 == 0 {
            // Pacing, not waiting for a condition: a burst larger than a
            // veth's ring (256) would be dropped before the director.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // SAFETY: our fd, closed once.
    unsafe { libc::close(fd) };
    result.map(|()| sent)
}

/// An IPv4 TCP SYN with correct checksums.
fn syn(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, seq: u32) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[6] = 0x40; // don't fragment
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let ip_sum = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let tcp = &mut p[20..];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = 0u32;
    for pair in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
        pseudo += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    pseudo += 6 + 20;
    let tcp_sum = checksum(tcp, pseudo);
    tcp[16..18].copy_from_slice(&tcp_sum.to_be_bytes());
    p
}

/// The Internet checksum of `data`, starting from the partial sum `sum`.
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        let hi = pair[0];
        let lo = pair.get(1).copied().unwrap_or(0);
        sum += u32::from(u16::from_be_bytes([hi, lo]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
