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
