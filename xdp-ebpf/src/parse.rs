//! Header parsing: Ethernet (+ one 802.1Q tag), IPv4/IPv6, TCP/UDP ports.
//! Every read goes through `ptr_at`, the one bounds-checked accessor. The
//! header layouts are shared with `icmp.rs`, which reads embedded headers.

use aya_ebpf::programs::XdpContext;
use core::mem::size_of;
use lb_common::{FAMILY_V4, FAMILY_V6, FlowKey, PROTO_TCP, PROTO_UDP, Reason};

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

// Header layouts. Fields are at most 2 bytes wide because the data path only
// knows headers to be 2-byte aligned (Ethernet is 14 bytes long).

#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ether_type: u16,
}

#[repr(C)]
struct VlanHdr {
    _tci: u16,
    ether_type: u16,
}

#[repr(C)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    _tos: u8,
    total_len: u16,
    _id: u16,
    pub frag_off: u16,
    _ttl: u8,
    pub proto: u8,
    _check: u16,
    pub src: [u16; 2],
    pub dst: [u16; 2],
}

#[repr(C)]
pub struct Ipv6Hdr {
    /// Version, traffic class, flow label (wire order).
    vtc_flow: [u16; 2],
    payload_len: u16,
    pub next_header: u8,
    _hop_limit: u8,
    pub src: [u16; 8],
    pub dst: [u16; 8],
}

#[repr(C)]
pub struct L4Ports {
    pub src: u16,
    pub dst: u16,
}

/// IPv4 flags + fragment offset: the bits that mark a fragment (MF, offset).
pub const IPV4_FRAGMENT_BITS: u16 = 0x3fff;

const TCP_HDR_LEN: usize = 20;
const UDP_HDR_LEN: usize = 8;
const TCP_FLAGS_OFFSET: usize = 13;

/// The IP layer of a frame: addresses, family and protocol in `key` (ports
/// zero), where the layer-4 header starts, and whether it is an IPv4
/// fragment.
pub struct IpLayer {
    pub key: FlowKey,
    pub l4: usize,
    pub fragment: bool,
}

/// What the data path needs from a frame.
pub struct Packet {
    /// 5-tuple; ports are zero for fragments.
    pub key: FlowKey,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// IPv4 fragment (MF set or non-zero offset).
    pub fragment: bool,
}

/// The one bounds-checked accessor: a pointer to a `T` at `offset`, or `None`
/// when the frame is too short.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Joins two wire-order halves into one wire-order word (little-endian host).
#[inline(always)]
pub fn word(halves: &[u16], i: usize) -> u32 {
    u32::from(halves[2 * i]) | (u32::from(halves[2 * i + 1]) << 16)
}

#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Packet, Reason> {
    let IpLayer {
        mut key,
        l4,
        fragment,
    } = parse_ip(ctx)?;
    if fragment {
        return Ok(Packet {
            key,
            tcp_flags: 0,
            fragment: true,
        });
    }
    let tcp_flags = match key.proto {
        PROTO_TCP => {
            let flags: *const [u8; TCP_HDR_LEN] = ptr_at(ctx, l4).ok_or(Reason::ShortL4)?;
            unsafe { (*flags)[TCP_FLAGS_OFFSET] }
        }
        PROTO_UDP => {
            ptr_at::<[u8; UDP_HDR_LEN]>(ctx, l4).ok_or(Reason::ShortL4)?;
            0
        }
        // ICMP errors to a VIP branch off here (see `icmp.rs`).
        _ => return Err(Reason::NotTcpUdp),
    };
    let ports: *const L4Ports = ptr_at(ctx, l4).ok_or(Reason::ShortL4)?;
    key.src_port = unsafe { (*ports).src };
    key.dst_port = unsafe { (*ports).dst };
    Ok(Packet {
        key,
        tcp_flags,
        fragment: false,
    })
}

/// Ethernet (+ tag) and the IP header: everything up to layer 4.
#[inline(always)]
pub fn parse_ip(ctx: &XdpContext) -> Result<IpLayer, Reason> {
    let eth: *const EthHdr = ptr_at(ctx, 0).ok_or(Reason::ShortEthernet)?;
    let mut ether_type = u16::from_be(unsafe { (*eth).ether_type });
    let mut l3 = size_of::<EthHdr>();
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        let vlan: *const VlanHdr = ptr_at(ctx, l3).ok_or(Reason::ShortVlan)?;
        ether_type = u16::from_be(unsafe { (*vlan).ether_type });
        l3 += size_of::<VlanHdr>();
    }
    let frame_len = ctx.data_end() - ctx.data();
    let mut key = FlowKey::default();
    let (proto, l4) = match ether_type {
        ETH_P_IPV4 => {
            let ip: *const Ipv4Hdr = ptr_at(ctx, l3).ok_or(Reason::ShortIpv4)?;
            let ip = unsafe { &*ip };
            if ip.version_ihl >> 4 != 4 {
                return Err(Reason::BadIpVersion);
            }
            let ihl = usize::from(ip.version_ihl & 0x0f);
            if ihl < 5 {
                return Err(Reason::BadIhl);
            }
            let header_len = ihl * 4;
            let total_len = usize::from(u16::from_be(ip.total_len));
            if total_len < header_len || l3 + total_len > frame_len {
                return Err(Reason::BadIpv4Length);
            }
            key.family = FAMILY_V4;
            key.src[0] = word(&ip.src, 0);
            key.dst[0] = word(&ip.dst, 0);
            key.proto = ip.proto;
            if u16::from_be(ip.frag_off) & IPV4_FRAGMENT_BITS != 0 {
                return Ok(IpLayer {
                    key,
                    l4: 0,
                    fragment: true,
                });
            }
            (ip.proto, l3 + header_len)
        }
        ETH_P_IPV6 => {
            let ip: *const Ipv6Hdr = ptr_at(ctx, l3).ok_or(Reason::ShortIpv6)?;
            let ip = unsafe { &*ip };
            // The version is the high nibble of the first byte: the low byte
            // of the first half-word on this little-endian target.
            if ip.vtc_flow[0] & 0xf0 != 0x60 {
                return Err(Reason::BadIpVersion);
            }
            let header_len = size_of::<Ipv6Hdr>();
            if l3 + header_len + usize::from(u16::from_be(ip.payload_len)) > frame_len {
                return Err(Reason::BadIpv6Length);
            }
            if is_ipv6_extension_header(ip.next_header) {
                return Err(Reason::Ipv6ExtensionHeader);
            }
            key.family = FAMILY_V6;
            key.src = [
                word(&ip.src, 0),
                word(&ip.src, 1),
                word(&ip.src, 2),
                word(&ip.src, 3),
            ];
            key.dst = [
                word(&ip.dst, 0),
                word(&ip.dst, 1),
                word(&ip.dst, 2),
                word(&ip.dst, 3),
            ];
            (ip.next_header, l3 + header_len)
        }
        _ => return Err(Reason::NotIp),
    };
    key.proto = proto;
    Ok(IpLayer {
        key,
        l4,
        fragment: false,
    })
}

/// Extension headers the data path does not walk: such packets go to the
/// kernel. (ESP/AH count as extension headers here too.)
#[inline(always)]
fn is_ipv6_extension_header(next: u8) -> bool {
    matches!(
        next,
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254
    )
}
