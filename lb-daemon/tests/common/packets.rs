//! Builds test frames byte by byte, so fixtures state exactly what goes in.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::{Ipv4Addr, Ipv6Addr};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 0x01];
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0xdd, 0, 0, 0, 0x01];

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// Ethernet header (+ optional 802.1Q tag) around `payload`.
#[must_use]
pub fn ethernet(ether_type: u16, vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + payload.len());
    f.extend_from_slice(&DIRECTOR_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    if let Some(vid) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Knobs for building deliberately wrong IPv4 headers.
#[derive(Clone, Debug, Default)]
pub struct V4Opts {
    /// Option bytes (padded to a multiple of 4 by the caller).
    pub options: Vec<u8>,
    /// Overrides the IHL nibble.
    pub ihl: Option<u8>,
    /// Overrides the total-length field.
    pub total_len: Option<u16>,
    /// Flags + fragment offset field (host order).
    pub frag: u16,
}

#[must_use]
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8], opts: &V4Opts) -> Vec<u8> {
    let header_len = 20 + opts.options.len();
    let ihl = opts.ihl.unwrap_or((header_len / 4) as u8);
    let total = opts
        .total_len
        .unwrap_or((header_len + payload.len()) as u16);
    let mut h = vec![0x40 | (ihl & 0x0f), 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&opts.frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(&opts.options);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

#[must_use]
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next_header, 64]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

#[must_use]
pub fn tcp(src_port: u16, dst_port: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&src_port.to_be_bytes());
    t.extend_from_slice(&dst_port.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

#[must_use]
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&src_port.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A complete IPv4 TCP frame.
#[must_use]
pub fn tcp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    ethernet(
        0x0800,
        None,
        &ipv4(
            src,
            dst,
            6,
            &tcp(sport, dport, flags, b"hello"),
            &V4Opts::default(),
        ),
    )
}

/// A complete IPv4 UDP frame.
#[must_use]
pub fn udp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    ethernet(
        0x0800,
        None,
        &ipv4(
            src,
            dst,
            17,
            &udp(sport, dport, b"hello"),
            &V4Opts::default(),
        ),
    )
}

/// A complete IPv6 TCP frame.
#[must_use]
pub fn tcp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, flags: u8) -> Vec<u8> {
    ethernet(
        0x86dd,
        None,
        &ipv6(src, dst, 6, &tcp(sport, dport, flags, b"hello")),
    )
}

/// A complete IPv6 UDP frame.
#[must_use]
pub fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Vec<u8> {
    ethernet(
        0x86dd,
        None,
        &ipv6(src, dst, 17, &udp(sport, dport, b"hello")),
    )
}

/// An `ICMPv4` message: type, code, the 4-byte rest of the header (unused, or
/// the next-hop MTU for "fragmentation needed"), then `body`; checksummed.
#[must_use]
pub fn icmp4(icmp_type: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![icmp_type, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let sum = checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// An `ICMPv6` message from `src` to `dst`, checksummed over the pseudo-header.
#[must_use]
pub fn icmp6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    body: &[u8],
) -> Vec<u8> {
    let mut m = vec![icmp_type, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let mut pseudo = Vec::with_capacity(40 + m.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(m.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&m);
    let sum = checksum(&pseudo);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// `ICMPv4` types and codes the fixtures use.
pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_HOST_UNREACH: u8 = 1;
pub const ICMP_FRAG_NEEDED: u8 = 4;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// `ICMPv6` types the fixtures use.
pub const ICMPV6_DEST_UNREACH: u8 = 1;
pub const ICMPV6_PORT_UNREACH: u8 = 4;
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;

/// The 4-byte rest of an ICMP header that carries an MTU ("fragmentation
/// needed" puts it in the low 16 bits, "packet too big" uses all 32).
#[must_use]
pub fn mtu_field(mtu: u16) -> [u8; 4] {
    u32::from(mtu).to_be_bytes()
}

/// A complete frame: an `ICMPv4` error from `router` to `vip` quoting
/// `original` (the IP packet a real sent), as much of it as is given.
#[must_use]
pub fn icmp4_error(
    router: Ipv4Addr,
    vip: Ipv4Addr,
    (icmp_type, code): (u8, u8),
    rest: [u8; 4],
    original: &[u8],
) -> Vec<u8> {
    ethernet(
        0x0800,
        None,
        &ipv4(
            router,
            vip,
            1,
            &icmp4(icmp_type, code, rest, original),
            &V4Opts::default(),
        ),
    )
}

/// A complete frame: an `ICMPv6` error from `router` to `vip` quoting
/// `original`.
#[must_use]
pub fn icmp6_error(
    router: Ipv6Addr,
    vip: Ipv6Addr,
    (icmp_type, code): (u8, u8),
    rest: [u8; 4],
    original: &[u8],
) -> Vec<u8> {
    ethernet(
        0x86dd,
        None,
        &ipv6(
            router,
            vip,
            58,
            &icmp6(router, vip, icmp_type, code, rest, original),
        ),
    )
}

/// The frame as the director should send it to `real_mac`.
#[must_use]
pub fn forwarded(frame: &[u8], real_mac: [u8; 6]) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[0..6].copy_from_slice(&real_mac);
    out[6..12].copy_from_slice(&DIRECTOR_MAC);
    out
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
