//! A service's health settings: defaults, every field, damping.

use std::time::Duration;

use crate::config::tests::{MINIMAL, ok};
use crate::config::{DampingConfig, FallbackConfig, OnDown, ServiceConfig};
use crate::health::spec::{CheckKind, CheckSpec, HttpCheck};

/// `MINIMAL` plus one IPv4 service on port 80 with `body` after its
/// `port` line (line 5 is `port = 80`).
pub(super) fn service(body: &str) -> String {
    format!("{MINIMAL}[[service]]\nvip = \"192.0.2.10\"\nport = 80\n{body}")
}

#[test]
fn a_service_without_health_settings_gets_the_defaults() {
    let c = ok(&service("[[service.real]]\naddress = \"10.0.0.1\"\n"));
    let s = &c.services[0];
    let defaults = ServiceConfig::new(s.addr);
    assert_eq!(s.check, CheckSpec::default());
    assert_eq!(s.check.kind, CheckKind::Tcp);
    assert_eq!(s.on_down, OnDown::Reroute);
    assert_eq!(s.min_primaries, 1);
    assert_eq!(s.slow_start, None);
    assert_eq!(s.fallback, None);
    assert_eq!(s.drain_timeout, Duration::from_mins(5));
    assert_eq!(s.damping, None);
    assert_eq!(s.reals[0].check, None);
    assert_eq!(s.check_for(&s.reals[0]), &CheckSpec::default());
    assert_eq!(
        ServiceConfig {
            reals: Vec::new(),
            ..s.clone()
        },
        defaults
    );
}

#[test]
fn every_health_field_is_read() {
    let c = ok(&service(
        r#"on_down = "keep"
min_primaries = 2
slow_start = "30s"
fallback = "10.0.0.99"
fallback_mac = "02:00:00:00:00:99"
drain_timeout = "1m"

[service.check]
kind = "https"
port = 8443
interval = "2s"
timeout = "1s500ms"
rise = 3
fall = 4
start_down = true
path = "/healthz?full=1"
host = "www.example.com:8443"
expect_status = [200, 204]
expect_body = "ok"
verify_tls = false

[service.damping]
penalty = 500
suppress = 3000
reuse = 1000
half_life = "1m"
max_suppress = "10m"

[[service.real]]
address = "10.0.0.1"
"#,
    ));
    let s = &c.services[0];
    assert_eq!(s.on_down, OnDown::Keep);
    assert_eq!(s.min_primaries, 2);
    assert_eq!(s.slow_start, Some(Duration::from_secs(30)));
    assert_eq!(
        s.fallback,
        Some(FallbackConfig {
            addr: "10.0.0.99".parse().unwrap(),
            mac: Some([2, 0, 0, 0, 0, 0x99]),
        })
    );
    assert_eq!(s.drain_timeout, Duration::from_mins(1));
    assert_eq!(
        s.check,
        CheckSpec {
            kind: CheckKind::Https(HttpCheck {
                path: "/healthz?full=1".into(),
                host: Some("www.example.com:8443".into()),
                expect_status: vec![200, 204],
                expect_body: Some("ok".into()),
                verify_tls: false,
            }),
            port: Some(8443),
            interval: Duration::from_secs(2),
            fast_interval: crate::health::spec::DEFAULT_FAST_INTERVAL,
            timeout: Duration::from_millis(1500),
            rise: 3,
            fall: 4,
            start_down: true,
        }
    );
    assert_eq!(
        s.damping,
        Some(DampingConfig {
            penalty: 500,
            suppress: 3000,
            reuse: 1000,
            half_life: Duration::from_mins(1),
            max_suppress: Duration::from_mins(10),
        })
    );
    assert_eq!(s.reals[0].check, None);
}

#[test]
fn an_empty_damping_table_gets_the_defaults() {
    let c = ok(&service("[service.damping]\n"));
    assert_eq!(c.services[0].damping, Some(DampingConfig::default()));
    let d = DampingConfig::default();
    assert_eq!(
        (d.penalty, d.suppress, d.reuse, d.half_life, d.max_suppress),
        (
            1000,
            2000,
            750,
            Duration::from_secs(30),
            Duration::from_mins(5)
        )
    );
}
