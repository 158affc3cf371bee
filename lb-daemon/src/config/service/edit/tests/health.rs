//! Edits of files with health settings: check and damping tables are kept,
//! and added services and reals write theirs.

use std::net::IpAddr;
use std::time::Duration;

use super::super::super::{DampingConfig, FallbackConfig, OnDown, RealConfig, ServiceConfig};
use super::{AnyInterface, dns, document, ip, reparse, web};
use crate::balancer::model::{Protocol, ServiceAddr};
use crate::config::{Config, ConfigDocument, parse};
use crate::health::spec::{CheckKind, CheckSpec, HttpCheck};

/// A file whose web service has health settings, a check table and
/// reals with their own checks (as a header table and inline).
const WITH_CHECKS: &str = r#"[dataplane]
interfaces = ["eth0"]

[[service]]
vip = "192.0.2.10"
port = 80
on_down = "keep"
slow_start = "30s" # ramp up
fallback = "198.51.100.99"

[service.check] # probe the app, not just the port
kind = "http"
path = "/healthz"
interval = "2s"

[service.damping]
penalty = 500

[[service.real]]
address = "198.51.100.11"
weight = 5

[service.real.check]
port = 8080 # the admin port

[[service.real]]
address = "198.51.100.12"
check = { kind = "tcp" }

[[service.real]]
address = "198.51.100.13"

# DNS.
[[service]]
vip = "2001:db8::53"
port = 53
protocol = "udp"

[service.check]
kind = "none"
"#;

/// Parses and checks that the health settings of `WITH_CHECKS` are
/// intact.
fn with_checks_kept(doc: &ConfigDocument) -> Config {
    let text = doc.to_text();
    for kept in [
        "[service.check] # probe the app, not just the port\nkind = \"http\"\npath = \"/healthz\"\ninterval = \"2s\"\n",
        "[service.damping]\npenalty = 500\n",
        "slow_start = \"30s\" # ramp up\n",
        "[service.check]\nkind = \"none\"\n",
    ] {
        assert!(text.contains(kept), "{kept}\n---\n{text}");
    }
    let config =
        parse(&text, "edited.toml", &AnyInterface).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let before = parse(WITH_CHECKS, "o", &AnyInterface).unwrap();
    let (web_now, web_before) = (
        config.service(&web()).unwrap(),
        before.service(&web()).unwrap(),
    );
    assert_eq!(web_now.check, web_before.check);
    assert_eq!(web_now.on_down, web_before.on_down);
    assert_eq!(web_now.slow_start, web_before.slow_start);
    assert_eq!(web_now.fallback, web_before.fallback);
    assert_eq!(web_now.damping, web_before.damping);
    assert_eq!(
        config.service(&dns()).unwrap().check,
        before.service(&dns()).unwrap().check
    );
    for real in &web_now.reals {
        if let Some(old) = web_before.real(real.addr, real.port) {
            assert_eq!(real.check, old.check, "{}", real.name());
        }
    }
    config
}

#[test]
fn edits_keep_check_tables() {
    let before = parse(WITH_CHECKS, "o", &AnyInterface).unwrap();
    let reals = &before.service(&web()).unwrap().reals;
    assert_eq!(reals[0].check.as_ref().and_then(|c| c.port), Some(8080));
    assert_eq!(
        reals[1].check.as_ref().map(|c| &c.kind),
        Some(&CheckKind::Tcp)
    );

    let mut doc = ConfigDocument::parse(WITH_CHECKS).unwrap();
    assert_eq!(doc.to_text(), WITH_CHECKS);
    doc.set_weight(&web(), ip("198.51.100.11"), 80, 7).unwrap();
    doc.set_weight(&web(), ip("198.51.100.12"), 80, 3).unwrap();
    let config = with_checks_kept(&doc);
    let reals = &config.service(&web()).unwrap().reals;
    assert_eq!((reals[0].weight, reals[1].weight), (7, 3));
    assert!(
        doc.to_text()
            .contains("[service.real.check]\nport = 8080 # the admin port\n")
    );

    let added = RealConfig::new(ip("198.51.100.14"), 80);
    doc.add_real(&web(), &added).unwrap();
    doc.add_real(&dns(), &RealConfig::new(ip("2001:db8:1::1"), 53))
        .unwrap();
    let config = with_checks_kept(&doc);
    let web_service = config.service(&web()).unwrap();
    assert_eq!(web_service.reals.len(), 4);
    // The new real is last and inherits the service's check.
    assert_eq!(web_service.reals[3], added);
    assert_eq!(
        web_service.check_for(&web_service.reals[3]),
        &web_service.check
    );
    assert_eq!(config.service(&dns()).unwrap().reals.len(), 1);

    // Removing the real with the [service.real.check] table removes the
    // table with it, and only it.
    doc.remove_real(&web(), ip("198.51.100.11"), 80).unwrap();
    doc.remove_real(&web(), ip("198.51.100.13"), 80).unwrap();
    let config = with_checks_kept(&doc);
    let text = doc.to_text();
    assert!(!text.contains("[service.real.check]"), "{text}");
    assert!(!text.contains("8080"), "{text}");
    let names: Vec<String> = config
        .service(&web())
        .unwrap()
        .reals
        .iter()
        .map(RealConfig::name)
        .collect();
    assert_eq!(names, ["198.51.100.12:80", "198.51.100.14:80"]);
    doc.remove_service(&dns()).unwrap();
    let text = doc.to_text();
    assert!(!text.contains("kind = \"none\""), "{text}");
    parse(&text, "t", &AnyInterface).unwrap();
}

#[test]
fn added_services_keep_their_health_settings() {
    let mut service = ServiceConfig::new(ServiceAddr {
        vip: ip("192.0.2.30"),
        port: 443,
        protocol: Protocol::Tcp,
    });
    service.on_down = OnDown::Keep;
    service.min_primaries = 2;
    service.slow_start = Some(Duration::from_secs(90));
    service.fallback = Some(FallbackConfig {
        addr: ip("198.51.100.99"),
        mac: Some([2, 0, 0, 0, 0, 0x99]),
    });
    service.drain_timeout = Duration::from_secs(20);
    service.damping = Some(DampingConfig {
        penalty: 10,
        ..DampingConfig::default()
    });
    let https = HttpCheck {
        path: "/healthz".into(),
        host: Some("www.example.com".into()),
        expect_status: vec![200, 204],
        expect_body: Some("ok".into()),
        verify_tls: false,
    };
    service.check = CheckSpec {
        kind: CheckKind::Https(https.clone()),
        port: Some(8443),
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        rise: 3,
        start_down: true,
        ..CheckSpec::default()
    };
    let real = |last: u8, check: Option<CheckSpec>| RealConfig {
        check,
        ..RealConfig::new(IpAddr::from([198, 51, 100, last]), 443)
    };
    service.reals = vec![
        real(1, None),
        // Same kind, other fields.
        real(
            2,
            Some(CheckSpec {
                kind: CheckKind::Https(HttpCheck {
                    path: "/other".into(),
                    verify_tls: true,
                    ..https.clone()
                }),
                fall: 5,
                start_down: false,
                ..service.check.clone()
            }),
        ),
        // Another kind: the HTTP fields go, the timers stay.
        real(
            3,
            Some(CheckSpec {
                kind: CheckKind::Tcp,
                ..service.check.clone()
            }),
        ),
        // http keeps the path, host, statuses and body.
        real(
            4,
            Some(CheckSpec {
                kind: CheckKind::Http(HttpCheck {
                    verify_tls: true,
                    ..https.clone()
                }),
                ..service.check.clone()
            }),
        ),
        real(
            5,
            Some(CheckSpec {
                kind: CheckKind::Command {
                    program: "/usr/local/bin/check".into(),
                    args: vec!["--quick".into(), "two words".into()],
                },
                port: Some(9000),
                interval: Duration::from_secs(5),
                fast_interval: crate::health::spec::DEFAULT_FAST_INTERVAL,
                timeout: Duration::from_secs(4),
                ..CheckSpec::default()
            }),
        ),
        real(
            6,
            Some(CheckSpec {
                kind: CheckKind::None,
                ..CheckSpec::default()
            }),
        ),
    ];
    let mut doc = document();
    doc.add_service(&service).unwrap();
    let config = reparse(&doc);
    assert_eq!(config.services[2], service, "{}", doc.to_text());
}

#[test]
fn a_default_service_writes_no_health_settings() {
    let mut doc = document();
    doc.add_service(&ServiceConfig::new(ServiceAddr { port: 81, ..web() }))
        .unwrap();
    let text = doc.to_text();
    let added = &text[text.find("port = 81").unwrap()..text.find("[timeouts]").unwrap()];
    assert_eq!(
        added,
        "port = 81\nprotocol = \"tcp\"\nscheduler = \"wlc\"\n\n"
    );
}

#[test]
fn an_added_real_with_its_own_check_writes_every_field() {
    let mut doc = ConfigDocument::parse(WITH_CHECKS).unwrap();
    // Whatever the service's check says, the real's is what it gets.
    let check = CheckSpec {
        kind: CheckKind::Https(HttpCheck {
            path: "/".into(),
            host: None,
            expect_status: vec![],
            expect_body: None,
            verify_tls: true,
        }),
        ..CheckSpec::default()
    };
    let real = RealConfig {
        check: Some(check.clone()),
        ..RealConfig::new(ip("198.51.100.20"), 80)
    };
    doc.add_real(&web(), &real).unwrap();
    let config = with_checks_kept(&doc);
    let web_service = config.service(&web()).unwrap();
    let added = web_service.real(ip("198.51.100.20"), 80).unwrap();
    assert_eq!(web_service.check_for(added), &check, "{}", doc.to_text());

    // Into an inline array of reals: an inline check table.
    let text = "service = [{ vip = \"192.0.2.10\", port = 80, check = { kind = \"http\", path = \"/x\" }, real = [{ address = \"198.51.100.11\", check = { port = 81 } }] }]\n[dataplane]\ninterfaces = [\"eth0\"]\n";
    let mut doc = ConfigDocument::parse(text).unwrap();
    doc.add_real(&web(), &real).unwrap();
    doc.set_weight(&web(), ip("198.51.100.11"), 80, 2).unwrap();
    let edited = doc.to_text();
    assert!(edited.contains("check = { kind = \"https\", "), "{edited}");
    let config = parse(&edited, "t", &AnyInterface).unwrap_or_else(|e| panic!("{e}\n{edited}"));
    let web_service = config.service(&web()).unwrap();
    assert_eq!(
        web_service.reals[0].check.as_ref().and_then(|c| c.port),
        Some(81)
    );
    assert_eq!(web_service.reals[0].weight, 2);
    assert_eq!(web_service.check_for(&web_service.reals[1]), &check);
}

#[test]
fn added_services_keep_their_udp_and_dns_checks() {
    let mut service = ServiceConfig::new(ServiceAddr {
        vip: ip("192.0.2.53"),
        port: 53,
        protocol: Protocol::Udp,
    });
    service.check = CheckSpec {
        kind: CheckKind::Dns(crate::health::spec::DnsCheck {
            name: "svc.example.com".into(),
            qtype: 1,
            rcode: 0,
            expect_address: Some("192.0.2.80".parse().unwrap()),
        }),
        rise: 3,
        ..CheckSpec::default()
    };
    let real = |last: u8, check: Option<CheckSpec>| RealConfig {
        check,
        ..RealConfig::new(IpAddr::from([198, 51, 100, last]), 53)
    };
    service.reals = vec![
        real(1, None),
        real(
            7,
            Some(CheckSpec {
                kind: CheckKind::Udp(crate::health::spec::UdpCheck {
                    payload: "ping\n\u{1}".into(),
                    expect_reply: Some("pong".into()),
                }),
                ..service.check.clone()
            }),
        ),
        real(
            8,
            Some(CheckSpec {
                kind: CheckKind::Dns(crate::health::spec::DnsCheck {
                    name: "www.example.com".into(),
                    qtype: 28,
                    rcode: 3,
                    expect_address: Some("2001:db8::1".parse().unwrap()),
                }),
                ..service.check.clone()
            }),
        ),
        real(
            9,
            Some(CheckSpec {
                kind: CheckKind::Dns(crate::health::spec::DnsCheck {
                    name: "a.test".into(),
                    qtype: 1,
                    rcode: 0,
                    // Inherited: a real cannot unset the service's.
                    expect_address: Some("192.0.2.80".parse().unwrap()),
                }),
                ..service.check.clone()
            }),
        ),
    ];
    let mut doc = document();
    doc.add_service(&service).unwrap();
    let config = reparse(&doc);
    assert_eq!(config.services[2], service, "{}", doc.to_text());
}
