//! The DNS check's wire format: the query it sends and how it judges a
//! datagram that comes back (with `simple-dns`, which has no dependencies;
//! the network part is in `probe`). Pure, so it is unit-tested here.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
};

use simple_dns::{
    CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, TYPE,
    rdata::{A, AAAA, RData},
};

use super::{
    probe::{FailureReason, ProbeFailure},
    spec::DnsCheck,
};

/// The query types a check may ask for, by name.
pub const TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
];

/// The response codes a check may expect, by name (RFC 1035 §4.1.1).
pub const RCODES: &[(&str, u8)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
];

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;

/// A query type's code from its name (any case).
#[must_use]
pub fn type_code(name: &str) -> Option<u16> {
    TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, c)| c)
}

/// A query type's name (`TYPE65` for one not in [`TYPES`]).
#[must_use]
pub fn type_name(code: u16) -> String {
    TYPES
        .iter()
        .find(|&&(_, c)| c == code)
        .map_or_else(|| format!("TYPE{code}"), |(n, _)| (*n).to_owned())
}

/// An rcode from its name (any case).
#[must_use]
pub fn rcode_code(name: &str) -> Option<u8> {
    RCODES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, c)| c)
}

/// An rcode's name (`RCODE9` for one not in [`RCODES`]).
#[must_use]
pub fn rcode_name(code: u8) -> String {
    RCODES
        .iter()
        .find(|&&(_, c)| c == code)
        .map_or_else(|| format!("RCODE{code}"), |(n, _)| (*n).to_owned())
}

/// Checks a name to query: labels of 1 to 63 letters, digits, `-` or
/// `_`, at most 253 characters, an optional trailing dot. `Err` says what
/// is wrong.
pub fn check_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("is empty (give the name to query, e.g. \"www.example.com\")".to_owned());
    }
    if bare.len() > 253 {
        return Err(format!("is {} characters long (at most 253)", bare.len()));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err("has an empty label (two dots in a row)".to_owned());
        }
        if label.len() > 63 {
            return Err(format!(
                "has a label of {} characters (at most 63)",
                label.len()
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "has a label {label:?} with characters other than letters, digits, '-' and '_'"
            ));
        }
    }
    Ok(())
}

/// A fresh query id: not guessable from outside (a per-process random
/// hash of a counter), so a stray or spoofed datagram is not taken for the
/// answer.
#[must_use]
pub fn next_id() -> u16 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    let mut hasher = KEYS.get_or_init(RandomState::new).build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() & 0xffff) as u16
}

/// The query datagram: one question, recursion desired (as `dig` sends).
///
/// # Errors
/// If the name cannot be encoded (the config checked it already).
pub fn query(id: u16, check: &DnsCheck) -> Result<Vec<u8>, ProbeFailure> {
    let bad = |e: simple_dns::SimpleDnsError| {
        ProbeFailure::new(
            FailureReason::Io,
            format!("cannot encode a query for {:?}: {e}", check.name),
        )
    };
    let bare = check.name.strip_suffix('.').unwrap_or(&check.name);
    let name = Name::new(bare).map_err(bad)?;
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        name,
        QTYPE::TYPE(TYPE::from(check.qtype)),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet.build_bytes_vec().map_err(bad)
}

/// What a datagram received by the check means.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not the answer to our query (another id, or a query): keep waiting.
    NotOurs,
    Pass,
    Fail(ProbeFailure),
}

/// Judges a datagram received after sending query `id` for `check`.
#[must_use]
pub fn judge(id: u16, check: &DnsCheck, datagram: &[u8]) -> Verdict {
    let fail = |detail: String| Verdict::Fail(ProbeFailure::new(FailureReason::Reply, detail));
    if datagram.len() < 12 || u16::from_be_bytes([datagram[0], datagram[1]]) != id {
        return Verdict::NotOurs;
    }
    if datagram[2] & 0x80 == 0 {
        return Verdict::NotOurs;
    }
    let rcode = datagram[3] & 0x0f;
    if rcode != check.rcode {
        return fail(format!(
            "DNS rcode {} for {} {} (expected {})",
            rcode_name(rcode),
            type_name(check.qtype),
            check.name,
            rcode_name(check.rcode)
        ));
    }
    let Some(want) = check.expect_address else {
        return Verdict::Pass;
    };
    let packet = match Packet::parse(datagram) {
        Ok(p) => p,
        Err(e) => return fail(format!("malformed DNS response: {e}")),
    };
    let found: Vec<IpAddr> = packet
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::A(A { address }) => Some(IpAddr::from(address.to_be_bytes())),
            RData::AAAA(AAAA { address }) => Some(IpAddr::from(address.to_be_bytes())),
            _ => None,
        })
        .collect();
    if found.contains(&want) {
        return Verdict::Pass;
    }
    let got = if found.is_empty() {
        "no address".to_owned()
    } else {
        found
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    fail(format!(
        "DNS answer for {} {} is {got} (expected {want})",
        type_name(check.qtype),
        check.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{RCODE, ResourceRecord};

    fn check(expect: Option<&str>) -> DnsCheck {
        DnsCheck {
            name: "www.example.com".into(),
            qtype: TYPE_A,
            rcode: 0,
            expect_address: expect.map(|a| a.parse().unwrap()),
        }
    }

    fn reply(id: u16, rcode: RCODE, answers: &[IpAddr]) -> Vec<u8> {
        let mut p = Packet::new_reply(id);
        *p.rcode_mut() = rcode;
        let name = Name::new_unchecked("www.example.com");
        p.questions.push(Question::new(
            name.clone(),
            QTYPE::TYPE(TYPE::A),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        for a in answers {
            let rdata = match a {
                IpAddr::V4(v4) => RData::A(A {
                    address: u32::from(*v4),
                }),
                IpAddr::V6(v6) => RData::AAAA(AAAA {
                    address: u128::from(*v6),
                }),
            };
            p.answers
                .push(ResourceRecord::new(name.clone(), CLASS::IN, 60, rdata));
        }
        p.build_bytes_vec().unwrap()
    }

    #[test]
    fn the_query_asks_one_question() {
        let mut c = check(None);
        c.name = "svc.test.".into();
        c.qtype = TYPE_AAAA;
        let bytes = query(0x1234, &c).unwrap();
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.id(), 0x1234);
        assert!(!p.has_flags(PacketFlag::RESPONSE));
        assert!(p.has_flags(PacketFlag::RECURSION_DESIRED));
        assert_eq!(p.questions.len(), 1);
        assert_eq!(p.questions[0].qname.to_string(), "svc.test");
        assert_eq!(p.questions[0].qtype, QTYPE::TYPE(TYPE::AAAA));
    }

    #[test]
    fn replies_are_judged() {
        let addr: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(
            judge(7, &check(None), &reply(7, RCODE::NoError, &[])),
            Verdict::Pass
        );
        assert_eq!(
            judge(
                7,
                &check(Some("10.0.0.7")),
                &reply(7, RCODE::NoError, &[addr])
            ),
            Verdict::Pass
        );
        // Another id, a query, a runt: not ours.
        assert_eq!(
            judge(8, &check(None), &reply(7, RCODE::NoError, &[])),
            Verdict::NotOurs
        );
        assert_eq!(
            judge(7, &check(None), &query(7, &check(None)).unwrap()),
            Verdict::NotOurs
        );
        assert_eq!(judge(7, &check(None), &[0, 7, 0x80]), Verdict::NotOurs);
        let Verdict::Fail(f) = judge(7, &check(None), &reply(7, RCODE::NameError, &[])) else {
            panic!()
        };
        assert_eq!(f.reason, FailureReason::Reply);
        assert_eq!(
            f.detail,
            "DNS rcode NXDOMAIN for A www.example.com (expected NOERROR)"
        );
        let mut nx = check(None);
        nx.rcode = 3;
        assert_eq!(
            judge(7, &nx, &reply(7, RCODE::NameError, &[])),
            Verdict::Pass
        );
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        let Verdict::Fail(f) = judge(
            7,
            &check(Some("10.0.0.7")),
            &reply(7, RCODE::NoError, &[other]),
        ) else {
            panic!()
        };
        assert_eq!(
            f.detail,
            "DNS answer for A www.example.com is 10.0.0.8 (expected 10.0.0.7)"
        );
        let Verdict::Fail(f) = judge(7, &check(Some("10.0.0.7")), &reply(7, RCODE::NoError, &[]))
        else {
            panic!()
        };
        assert!(f.detail.contains("is no address"), "{f}");
        let v6: IpAddr = "fd00::7".parse().unwrap();
        let mut c6 = check(Some("fd00::7"));
        c6.qtype = TYPE_AAAA;
        assert_eq!(
            judge(7, &c6, &reply(7, RCODE::NoError, &[v6])),
            Verdict::Pass
        );
        // Truncated after the header: malformed.
        let mut cut = reply(7, RCODE::NoError, &[addr]);
        cut.truncate(20);
        assert!(matches!(
            judge(7, &check(Some("10.0.0.7")), &cut),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn names_types_and_rcodes() {
        assert_eq!(type_code("aaaa"), Some(28));
        assert_eq!(type_code("AXFR"), None);
        assert_eq!(type_name(65), "TYPE65");
        assert_eq!(rcode_code("nxdomain"), Some(3));
        assert_eq!(rcode_code("BOGUS"), None);
        assert_eq!(rcode_name(9), "RCODE9");
        assert!(check_name("www.example.com.").is_ok());
        assert!(check_name("_dns._udp.example").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
        assert!(check_name(&["abc"; 70].join(".")).is_err());
    }

    #[test]
    fn ids_vary() {
        let ids: std::collections::HashSet<u16> = (0..100).map(|_| next_id()).collect();
        assert!(ids.len() > 90, "{}", ids.len());
    }
}
