//! The edits on files of every shape, read back with the parser (those of
//! files with health settings are in `health`).

mod health;

use super::*;
use crate::balancer::model::Scheduler;
use crate::config::{Config, Environment, parse};

pub(super) struct AnyInterface;

impl Environment for AnyInterface {
    fn interface_exists(&self, _: &str) -> bool {
        true
    }
}

pub(super) const ORIGINAL: &str = r#"# Operator's notes: keep me.
[dataplane]
interfaces = ["eth0"]

# The web service.
[[service]]
vip = "192.0.2.10"
port = 80

# First web real.
[[service.real]]
address = "198.51.100.11"
weight = 5 # heavier box

[[service.real]]
address = "198.51.100.12"
port = 80

# DNS, written by hand with a long VIP.
[[service]]
vip = "2001:db8::0053"
port = 53
protocol = "udp"
scheduler = "maglev"

[timeouts]
tcp = "10m" # shorter than the default
"#;

pub(super) fn web() -> ServiceAddr {
    ServiceAddr {
        vip: "192.0.2.10".parse().unwrap(),
        port: 80,
        protocol: Protocol::Tcp,
    }
}

pub(super) fn dns() -> ServiceAddr {
    ServiceAddr {
        vip: "2001:db8::53".parse().unwrap(),
        port: 53,
        protocol: Protocol::Udp,
    }
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn document() -> ConfigDocument {
    ConfigDocument::parse(ORIGINAL).unwrap()
}

/// Parses the edited text; checks the operator's comments survived.
pub(super) fn reparse(doc: &ConfigDocument) -> Config {
    let text = doc.to_text();
    assert!(text.contains("# Operator's notes: keep me."), "{text}");
    assert!(
        text.contains("tcp = \"10m\" # shorter than the default"),
        "{text}"
    );
    parse(&text, "edited.toml", &AnyInterface).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn unedited_text_is_unchanged() {
    assert_eq!(document().to_text(), ORIGINAL);
    assert!(ConfigDocument::parse("[x\n").is_err());
}

#[test]
fn add_service_appends_it_with_its_reals() {
    let mut doc = document();
    let mut service = ServiceConfig::new(ServiceAddr {
        vip: ip("192.0.2.20"),
        port: 443,
        protocol: Protocol::Tcp,
    });
    service.scheduler = Scheduler::SourceHash;
    service.table_size = 257;
    service.reals = vec![
        RealConfig::new(ip("198.51.100.21"), 443),
        RealConfig {
            weight: 7,
            backup: true,
            mac: Some([2, 0, 0, 0, 0, 0x21]),
            ..RealConfig::new(ip("198.51.100.22"), 443)
        },
    ];
    doc.add_service(&service).unwrap();
    let config = reparse(&doc);
    assert_eq!(config.services.len(), 3);
    assert_eq!(config.services[2], service);
    // The rest is as it was.
    let before = parse(ORIGINAL, "o", &AnyInterface).unwrap();
    assert_eq!(config.services[..2], before.services[..]);
    assert_eq!(config.timeouts, before.timeouts);
    // Only non-default fields of the reals are written.
    let text = doc.to_text();
    assert!(text.contains("[[service]]\nvip = \"192.0.2.20\"\nport = 443\nprotocol = \"tcp\"\nscheduler = \"sh\"\ntable_size = 257\n"), "{text}");
    assert!(
        text.contains("[[service.real]]\naddress = \"198.51.100.21\"\n\n"),
        "{text}"
    );
    assert!(
        text.contains("weight = 7\nbackup = true\nmac = \"02:00:00:00:00:21\"\n"),
        "{text}"
    );
}

#[test]
fn add_service_to_a_file_without_services() {
    let mut doc =
        ConfigDocument::parse("# just the basics\n[dataplane]\ninterfaces = [\"eth0\"]\n").unwrap();
    let service = ServiceConfig::new(web());
    doc.add_service(&service).unwrap();
    let text = doc.to_text();
    assert!(text.starts_with("# just the basics\n"));
    let config = parse(&text, "t", &AnyInterface).unwrap();
    assert_eq!(config.services, [service]);
}

#[test]
fn add_existing_service_fails_comparing_parsed_values() {
    let mut doc = document();
    let err = doc.add_service(&ServiceConfig::new(dns())).unwrap_err();
    assert_eq!(err, EditError::ServiceExists(dns()));
    assert_eq!(
        err.to_string(),
        "service [2001:db8::53]:53/udp already exists"
    );
    assert_eq!(doc.to_text(), ORIGINAL);
}

#[test]
fn remove_service() {
    let mut doc = document();
    doc.remove_service(&web()).unwrap();
    let config = reparse(&doc);
    assert_eq!(config.services.len(), 1);
    assert_eq!(config.services[0].addr, dns());
    let text = doc.to_text();
    assert!(!text.contains("First web real"), "{text}");
    assert!(text.contains("# DNS, written by hand"), "{text}");

    doc.remove_service(&dns()).unwrap();
    assert!(reparse(&doc).services.is_empty());
    assert_eq!(
        doc.remove_service(&dns()),
        Err(EditError::ServiceNotFound(dns()))
    );
}

#[test]
fn remove_service_needs_the_protocol_to_match() {
    let mut doc = document();
    let udp_web = ServiceAddr {
        protocol: Protocol::Udp,
        ..web()
    };
    let err = doc.remove_service(&udp_web).unwrap_err();
    assert_eq!(err.to_string(), "service 192.0.2.10:80/udp not found");
}

#[test]
fn add_real_after_the_existing_ones() {
    let mut doc = document();
    let real = RealConfig {
        weight: 3,
        ..RealConfig::new(ip("198.51.100.13"), 80)
    };
    doc.add_real(&web(), &real).unwrap();
    let config = reparse(&doc);
    let service = config.service(&web()).unwrap();
    assert_eq!(service.reals.len(), 3);
    assert_eq!(service.reals[2], real);
    assert!(doc.to_text().contains("weight = 5 # heavier box"));
}

#[test]
fn add_first_real_to_a_service() {
    let mut doc = document();
    let real = RealConfig::new(ip("2001:db8:1::11"), 53);
    doc.add_real(&dns(), &real).unwrap();
    let config = reparse(&doc);
    assert_eq!(config.service(&dns()).unwrap().reals, [real]);
    // It went under the DNS service, not the web one.
    assert_eq!(config.service(&web()).unwrap().reals.len(), 2);
}

#[test]
fn add_existing_real_fails() {
    let mut doc = document();
    // Port 80 is implied by the file for .11 and written for .12.
    for addr in ["198.51.100.11", "198.51.100.12"] {
        let err = doc
            .add_real(&web(), &RealConfig::new(ip(addr), 80))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("real {addr}:80 already exists in service 192.0.2.10:80/tcp")
        );
    }
    let missing = ServiceAddr { port: 81, ..web() };
    assert_eq!(
        doc.add_real(&missing, &RealConfig::new(ip("198.51.100.11"), 81)),
        Err(EditError::ServiceNotFound(missing))
    );
    assert_eq!(doc.to_text(), ORIGINAL);
}

#[test]
fn remove_real() {
    let mut doc = document();
    doc.remove_real(&web(), ip("198.51.100.11"), 80).unwrap();
    let config = reparse(&doc);
    let reals = &config.service(&web()).unwrap().reals;
    assert_eq!(reals.len(), 1);
    assert_eq!(reals[0].addr, ip("198.51.100.12"));
    assert!(!doc.to_text().contains("First web real"));

    doc.remove_real(&web(), ip("198.51.100.12"), 80).unwrap();
    let config = reparse(&doc);
    assert!(config.service(&web()).unwrap().reals.is_empty());
    assert!(!doc.to_text().contains("[[service.real]]"));

    let err = doc
        .remove_real(&web(), ip("198.51.100.12"), 80)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "real 198.51.100.12:80 not found in service 192.0.2.10:80/tcp"
    );
}

#[test]
fn remove_real_of_another_port_is_not_found() {
    let mut doc = document();
    let err = doc
        .remove_real(&web(), ip("198.51.100.11"), 8080)
        .unwrap_err();
    assert_eq!(
        err,
        EditError::RealNotFound {
            service: web(),
            real: "198.51.100.11:8080".parse().unwrap()
        }
    );
}

#[test]
fn set_weight_in_place_or_added() {
    let mut doc = document();
    doc.set_weight(&web(), ip("198.51.100.11"), 80, 0).unwrap();
    doc.set_weight(&web(), ip("198.51.100.12"), 80, 65_535)
        .unwrap();
    let config = reparse(&doc);
    let reals = &config.service(&web()).unwrap().reals;
    assert_eq!((reals[0].weight, reals[1].weight), (0, 65_535));
    let text = doc.to_text();
    assert!(text.contains("weight = 0 # heavier box\n"), "{text}");

    let err = doc
        .set_weight(&dns(), ip("2001:db8:1::11"), 53, 1)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "real [2001:db8:1::11]:53 not found in service [2001:db8::53]:53/udp"
    );
}

#[test]
fn inline_services_and_reals_are_edited_too() {
    let text = "service = [{ vip = \"192.0.2.10\", port = 80, real = [{ address = \"198.51.100.11\" }] }, { vip = \"2001:db8::53\", port = 53, protocol = \"udp\" }]\n[dataplane]\ninterfaces = [\"eth0\"]\n";
    let mut doc = ConfigDocument::parse(text).unwrap();
    doc.add_real(&web(), &RealConfig::new(ip("198.51.100.12"), 80))
        .unwrap();
    doc.set_weight(&web(), ip("198.51.100.11"), 80, 9).unwrap();
    doc.add_real(&dns(), &RealConfig::new(ip("2001:db8:1::11"), 53))
        .unwrap();
    doc.add_service(&ServiceConfig::new(ServiceAddr { port: 81, ..web() }))
        .unwrap();
    let edited = doc.to_text();
    let config = parse(&edited, "t", &AnyInterface).unwrap_or_else(|e| panic!("{e}\n{edited}"));
    let web_reals = &config.service(&web()).unwrap().reals;
    assert_eq!(
        web_reals
            .iter()
            .map(|r| (r.name(), r.weight))
            .collect::<Vec<_>>(),
        [
            ("198.51.100.11:80".to_owned(), 9),
            ("198.51.100.12:80".to_owned(), 1)
        ]
    );
    assert_eq!(config.service(&dns()).unwrap().reals.len(), 1);
    assert_eq!(config.services.len(), 3);
    doc.remove_real(&web(), ip("198.51.100.11"), 80).unwrap();
    doc.remove_service(&dns()).unwrap();
    let config = parse(&doc.to_text(), "t", &AnyInterface).unwrap();
    assert_eq!(config.services.len(), 2);
    assert_eq!(config.service(&web()).unwrap().reals.len(), 1);
}

#[test]
fn unsupported_shapes_are_reported() {
    let mut doc = ConfigDocument::parse("service = 5\n").unwrap();
    let err = doc.remove_service(&web()).unwrap_err();
    assert!(matches!(err, EditError::Unsupported(_)), "{err}");
}
