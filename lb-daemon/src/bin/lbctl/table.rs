//! Human-readable tables (`--json` prints the raw data instead).

use std::fmt::Write as _;

use lb_daemon::admin::{
    EcmpStatus, FlowEntry, RealHealthStatus, Status, Transition, VrrpStatus, unix_seconds,
};

/// `ipvsadm -Ln --stats`-like listing.
pub fn status(status: &Status) -> String {
    let mut out = String::new();
    for service in &status.services {
        let _ = writeln!(
            out,
            "{}  {}  conns {}  packets {}  bytes {}",
            service.service,
            service.scheduler,
            service.connections,
            service.packets,
            human(service.bytes)
        );
        if service.reals.is_empty() {
            let _ = writeln!(out, "  (no reals)");
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<24} {:<10} {:>6} {:>8} {:>8} {:>9} {:>11} {:>9}  MAC",
            "REAL", "STATE", "WEIGHT", "ACTIVE", "INACTIVE", "CONNS", "PACKETS", "BYTES"
        );
        for real in &service.reals {
            let _ = writeln!(
                out,
                "  {:<24} {:<10} {:>6} {:>8} {:>8} {:>9} {:>11} {:>9}  {}",
                real.real,
                real.state,
                real.weight,
                real.active_connections,
                real.inactive_connections,
                real.connections,
                real.packets,
                human(real.bytes),
                real.mac.as_deref().unwrap_or("-")
            );
        }
    }
    if status.services.is_empty() {
        out.push_str("no services\n");
    }
    let _ = writeln!(
        out,
        "connection table: {} of {} entries ({} half-open); half-open table: {} of {}; ageing passes: {}",
        status.conntrack_entries,
        status.conntrack_capacity,
        status.conntrack_half_open,
        status.half_open_entries,
        status.half_open_capacity,
        status.ageing_passes
    );
    if !status.xdp.is_empty() {
        out.push_str("data path packets:");
        for counter in &status.xdp {
            let _ = write!(
                out,
                "  {}/{} {}",
                counter.action, counter.reason, counter.packets
            );
        }
        out.push('\n');
    }
    out
}

/// `ipvsadm -Lnc`-like listing.
pub fn flows(flows: &[FlowEntry]) -> String {
    let mut out = format!(
        "{:<5} {:<12} {:>6} {:>8} {:<44} {:<26} {}\n",
        "PROTO", "STATE", "IDLE", "EXPIRES", "CLIENT", "SERVICE", "REAL"
    );
    for f in flows {
        let _ = writeln!(
            out,
            "{:<5} {:<12} {:>5}s {:>7}s {:<44} {:<26} {}{}",
            f.protocol,
            f.state,
            f.idle_seconds,
            f.expires_in_seconds,
            f.client,
            f.service,
            f.real,
            // Flow sharing: another director's flow, counted nowhere here.
            if f.learned { "  (learned)" } else { "" }
        );
    }
    let _ = writeln!(out, "{} flows", flows.len());
    out
}

/// Health checks, with each real's recent transitions.
pub fn health(reals: &[RealHealthStatus]) -> String {
    let mut out = format!(
        "{:<26} {:<24} {:<6} {:<6} {:>6}  {}\n",
        "SERVICE", "REAL", "HEALTH", "CHECKS", "STREAK", "LAST PROBE"
    );
    for r in reals {
        let _ = writeln!(
            out,
            "{:<26} {:<24} {:<6} {:<6} {:>6}  {}",
            r.service,
            r.real,
            r.health,
            r.checks,
            r.streak,
            r.last_probe.as_deref().unwrap_or("-")
        );
        if !r.check.is_empty() {
            let _ = writeln!(out, "    check: {}", r.check);
        }
        let _ = writeln!(
            out,
            "    data path: {} half-open, {} retransmitted SYNs ({} early probes)",
            r.inactive_connections, r.syn_retransmits, r.early_probes
        );
        if let Some(held) = r.held_for_seconds {
            let _ = writeln!(
                out,
                "    flapping: held down {held:.0} s more (penalty {:.0})",
                r.damping_penalty
            );
        }
        history(&mut out, &r.history);
    }
    out
}

/// One line for `lbctl status`: `VRRP vrid 51: MASTER (priority 150)`;
/// nothing without `[vrrp]`.
pub fn vrrp_summary(v: &VrrpStatus) -> Option<String> {
    v.enabled.then(|| {
        format!(
            "VRRP vrid {}: {} (priority {}{})",
            v.vrid,
            v.state.to_uppercase(),
            v.priority,
            v.master
                .as_deref()
                .filter(|_| v.state != "master")
                .map(|m| format!(", master {m}"))
                .unwrap_or_default()
        )
    })
}

/// One line for `lbctl status` with `[ecmp]`.
pub fn ecmp_summary(e: &EcmpStatus) -> Option<String> {
    e.enabled.then(|| {
        let announced = e.vips.iter().filter(|v| v.announced).count();
        format!(
            "ECMP: {announced} of {} VIPs announced{}",
            e.vips.len(),
            if e.drained { " (director drained)" } else { "" }
        )
    })
}

/// `lbctl director`: each VIP's announcement and why.
pub fn director(e: &EcmpStatus) -> String {
    if !e.enabled {
        return "ECMP is not configured: this director holds its VIPs itself (or by VRRP).\n"
            .into();
    }
    let mut out = format!(
        "ECMP: routes in table {}; {}; {}\n",
        e.table,
        if e.drained { "DRAINED" } else { "not drained" },
        if e.learned {
            "peers' flows learned"
        } else {
            "waiting for the peers' flows"
        }
    );
    let width = e.vips.iter().map(|v| v.vip.len()).max().unwrap_or(3).max(3);
    let _ = writeln!(out, "  {:<width$}  {:>8}  STATE", "VIP", "FOR");
    for v in &e.vips {
        let _ = writeln!(
            out,
            "  {:<width$}  {:>7.1}s  {}",
            v.vip, v.for_seconds, v.state
        );
    }
    if let Some(s) = &e.share {
        out.push_str(&share(s));
    }
    if !e.history.is_empty() {
        out.push_str("  recent changes:\n");
        let now = unix_seconds(std::time::SystemTime::now());
        for t in &e.history {
            let _ = writeln!(
                out,
                "    {:>6.1} s ago: {} {}",
                (now - t.at).max(0.0),
                t.vip,
                t.state
            );
        }
    }
    out
}

/// The flow-sharing lines of `lbctl director`.
fn share(s: &lb_daemon::admin::ShareStatus) -> String {
    let mut out = format!(
        "  flow sharing on {}: {} reports read from the data path, {} dropped (ring full), \
         {} full sends of own flows (last {} flows), {} received flows unknown here\n",
        s.listen,
        s.ringbuf_read,
        s.ringbuf_dropped,
        s.refreshes,
        s.last_refresh_flows,
        s.flows_unknown
    );
    let now = unix_seconds(std::time::SystemTime::now());
    for p in &s.peers {
        let table = p.last_full_table.map_or_else(
            || "whole table not received yet".to_owned(),
            |at| {
                format!(
                    "whole table ({} flows) {:.1} s ago",
                    p.last_full_table_flows,
                    (now - at).max(0.0)
                )
            },
        );
        let _ = writeln!(
            out,
            "    peer {}: {} flows sent, {} received ({} applied), {} datagrams rejected; {table}",
            p.peer, p.records_sent, p.records_received, p.records_applied, p.datagrams_rejected
        );
    }
    if let Some(why) = &s.last_rejection {
        let _ = writeln!(out, "    last rejected datagram: {why}");
    }
    out
}

/// Director failover, like keepalived's data dump in a few lines.
pub fn vrrp(v: &VrrpStatus) -> String {
    if !v.enabled {
        return "VRRP is not configured: this director holds the VIPs itself.\n".into();
    }
    let mut out = format!(
        "VRRP vrid {} on {} ({}): {} for {:.1} s, priority {}, advert every {} ms\n",
        v.vrid,
        v.interface,
        v.family,
        v.state.to_uppercase(),
        v.in_state_seconds,
        v.priority,
        v.advert_interval_ms
    );
    let _ = writeln!(
        out,
        "  local {}, master {}, peers {}",
        v.local_address.as_deref().unwrap_or("-"),
        v.master.as_deref().unwrap_or("unknown"),
        v.peers.join(", ")
    );
    let _ = writeln!(
        out,
        "  advertisements: {} sent, {} received, {} rejected{}",
        v.advertisements_sent,
        v.advertisements_received,
        v.advertisements_rejected,
        if v.preempt_held {
            "; preemption held until the peer's connection table arrives"
        } else {
            ""
        }
    );
    if let Some(s) = &v.sync {
        let _ = writeln!(
            out,
            "  sync with {}: {} flows sent, {} received ({} applied, {} unknown), {} datagrams \
             rejected{}, table {}",
            s.peer,
            s.flows_sent,
            s.flows_received,
            s.flows_applied,
            s.flows_unknown,
            s.datagrams_rejected,
            s.last_rejection
                .as_deref()
                .map(|r| format!(" (last: {r})"))
                .unwrap_or_default(),
            if s.table_received {
                "received"
            } else {
                "not received yet"
            }
        );
    }
    history(&mut out, &v.history);
    out
}

/// Recent transitions, one line each: `    12.3 s ago: down (reason)`.
fn history(out: &mut String, transitions: &[Transition]) {
    let now = unix_seconds(std::time::SystemTime::now());
    for t in transitions {
        let _ = writeln!(
            out,
            "    {:>6.1} s ago: {} ({})",
            (now - t.at).max(0.0),
            t.to,
            t.reason
        );
    }
}

/// 1536 -> "1.5K".
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0");
        assert_eq!(human(1023), "1023");
        assert_eq!(human(1536), "1.5K");
        assert_eq!(human(5 * 1024 * 1024), "5.0M");
    }

    #[test]
    fn vrrp_lines() {
        let off = VrrpStatus::default();
        assert_eq!(vrrp_summary(&off), None);
        assert!(vrrp(&off).contains("not configured"));
        let backup = VrrpStatus {
            enabled: true,
            vrid: 51,
            interface: "eth0".into(),
            family: "ipv4".into(),
            state: "backup".into(),
            priority: 100,
            advert_interval_ms: 100,
            master: Some("10.0.0.2".into()),
            peers: vec!["224.0.0.18 (multicast)".into()],
            preempt_held: true,
            ..VrrpStatus::default()
        };
        assert_eq!(
            vrrp_summary(&backup).as_deref(),
            Some("VRRP vrid 51: BACKUP (priority 100, master 10.0.0.2)")
        );
        let text = vrrp(&backup);
        assert!(
            text.starts_with("VRRP vrid 51 on eth0 (ipv4): BACKUP"),
            "{text}"
        );
        assert!(text.contains("preemption held until the peer's connection table arrives"));
        let master = VrrpStatus {
            state: "master".into(),
            ..backup
        };
        assert_eq!(
            vrrp_summary(&master).as_deref(),
            Some("VRRP vrid 51: MASTER (priority 100)")
        );
    }

    #[test]
    fn director_lists_each_vip_with_its_reason() {
        let off = EcmpStatus::default();
        assert!(director(&off).contains("not configured"));
        assert_eq!(ecmp_summary(&off), None);
        let on = EcmpStatus {
            enabled: true,
            table: 4242,
            drained: false,
            learned: true,
            vips: vec![
                lb_daemon::admin::VipAnnouncement {
                    vip: "192.0.2.1".into(),
                    announced: true,
                    state: "announced".into(),
                    for_seconds: 12.0,
                },
                lb_daemon::admin::VipAnnouncement {
                    vip: "192.0.2.2".into(),
                    announced: false,
                    state: "withdrawn: 192.0.2.2:80/tcp has 0 healthy reals (min_healthy 1)".into(),
                    for_seconds: 3.5,
                },
            ],
            history: vec![],
            share: Some(lb_daemon::admin::ShareStatus {
                listen: "10.0.0.2:9142".into(),
                peers: vec![lb_daemon::admin::SharePeerStatus {
                    peer: "10.0.0.3:9142".into(),
                    records_sent: 530,
                    records_received: 53,
                    records_applied: 50,
                    ..Default::default()
                }],
                learned: true,
                ringbuf_read: 265,
                ..Default::default()
            }),
        };
        let text = director(&on);
        assert!(
            text.contains(
                "    peer 10.0.0.3:9142: 530 flows sent, 53 received (50 applied), 0 datagrams \
                 rejected; whole table not received yet"
            ),
            "{text}"
        );
        assert!(
            text.starts_with("ECMP: routes in table 4242; not drained;"),
            "{text}"
        );
        assert!(
            text.contains("192.0.2.2      3.5s  withdrawn: 192.0.2.2:80/tcp has 0"),
            "{text}"
        );
        assert_eq!(
            ecmp_summary(&on).as_deref(),
            Some("ECMP: 1 of 2 VIPs announced")
        );
    }
}
