//! `[vrrp]` and `[vrrp.sync]` read from a file.

use std::fmt::Write as _;
use std::time::Duration;

use super::{VrrpConfig, VrrpFamily};
use crate::config::diff;
use crate::config::tests::{MINIMAL, errors, ok};

#[test]
fn vrrp_defaults_and_every_field() {
    let c = ok(&format!("{MINIMAL}[vrrp]\nvrid = 51\n"));
    assert_eq!(c.vrrp, Some(VrrpConfig::new(51)));
    let v = VrrpConfig::new(51);
    assert_eq!(
        (v.priority, v.advert_interval_cs(), v.preempt, v.family),
        (100, 10, true, VrrpFamily::Ipv4)
    );

    let c = ok(&format!(
        "{MINIMAL}[vrrp]\nvrid = 7\npriority = 150\ninterface = \"eth0\"\nfamily = \"ipv6\"\n\
         advert_interval = \"250ms\"\npreempt = false\npreempt_delay = \"0s\"\n\
         unicast_peers = [\"fe80::2\"]\nsource_address = \"fe80::1\"\n\
         [vrrp.sync]\npeer = \"10.0.0.2\"\nport = 7000\nlisten = \"10.0.0.1\"\n\
         key = \"0123456789abcdef\"\ninterval = \"1s\"\nwait_before_preempt = \"3s\"\n"
    ));
    let v = c.vrrp.expect("vrrp");
    assert_eq!(v.vrid, 7);
    assert_eq!(v.priority, 150);
    assert_eq!(v.interface.as_deref(), Some("eth0"));
    assert_eq!(v.family, VrrpFamily::Ipv6);
    assert_eq!(v.advert_interval_cs(), 25);
    assert!(!v.preempt);
    assert_eq!(v.preempt_delay, Duration::ZERO);
    assert_eq!(
        v.unicast_peers,
        ["fe80::2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(v.source_address, Some("fe80::1".parse().unwrap()));
    let s = v.sync.expect("sync");
    assert_eq!(s.peer, "10.0.0.2".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.port, 7000);
    assert_eq!(s.listen, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(s.key, "0123456789abcdef");
    assert_eq!(s.interval, Duration::from_secs(1));
    assert_eq!(s.wait_before_preempt, Duration::from_secs(3));
    assert!(
        !format!("{s:?}").contains("0123456789abcdef"),
        "the key stays out of Debug"
    );
}

#[test]
fn a_vrrp_change_needs_a_restart() {
    let old = ok(&format!("{MINIMAL}[vrrp]\nvrid = 51\n"));
    let new = ok(&format!("{MINIMAL}[vrrp]\nvrid = 51\npriority = 120\n"));
    assert_eq!(diff(&old, &new).restart_required, ["vrrp"]);
}

#[test]
fn more_vips_than_an_advertisement_holds_are_refused() {
    let mut text = format!("{MINIMAL}[vrrp]\nvrid = 51\n");
    for i in 0..256u32 {
        let _ = write!(
            text,
            "[[service]]\nvip = \"10.1.{}.{}\"\nport = 80\n",
            i / 200,
            i % 200 + 1
        );
    }
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].field.as_str()), (3, "vrrp"));
    assert!(
        errors[0].message.contains("256 ipv4 VIPs"),
        "{}",
        errors[0].message
    );
    // IPv6 VIPs are not advertised by an IPv4 router.
    let text = text.replace(
        "[vrrp]\nvrid = 51\n",
        "[vrrp]\nvrid = 51\nfamily = \"ipv6\"\n",
    );
    let _ = ok(&text);
}
