//! Direct-routing forwarding: rewrite the MACs, leave the IP packet alone.

use crate::{maps::SETTINGS, parse::EthHdr, parse::ptr_at};
use aya_ebpf::programs::XdpContext;
use lb_common::MAX_IFACES;

/// The MAC of the interface the frame arrived on (it leaves the same way), or
/// `None` when userspace did not configure that interface.
#[inline(always)]
pub fn interface_mac(ifindex: u32) -> Option<[u8; 6]> {
    let settings = SETTINGS.get(0)?;
    for i in 0..MAX_IFACES {
        if i as u32 >= settings.iface_count {
            break;
        }
        let iface = &settings.ifaces[i];
        if iface.ifindex == ifindex {
            return Some(iface.mac);
        }
    }
    None
}

/// Whether the frame's Ethernet destination is `mac` (parsing already made
/// sure the header is there).
#[inline(always)]
pub fn addressed_to(ctx: &XdpContext, mac: &[u8; 6]) -> bool {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return false;
    };
    let dst = unsafe { (*eth).dst };
    dst == *mac
}

/// Whether the frame's Ethernet source is `mac`.
#[inline(always)]
pub fn sent_by(ctx: &XdpContext, mac: &[u8; 6]) -> bool {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return false;
    };
    let src = unsafe { (*eth).src };
    src == *mac
}

/// The other director's MAC while a handover is under way (see
/// `Settings::handover_until_ns`).
#[inline(always)]
pub fn other_director(now: u64) -> Option<[u8; 6]> {
    let settings = SETTINGS.get(0)?;
    (now < settings.handover_until_ns).then_some(settings.handover_mac)
}

/// Destination := the real's MAC, source := ours. Returns false when the frame
/// is too short, which parsing already ruled out.
#[inline(always)]
pub fn rewrite_macs(ctx: &XdpContext, dst: &[u8; 6], src: &[u8; 6]) -> bool {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return false;
    };
    // Copy through locals: assigning from one pointer to another makes LLVM
    // call a byte-by-byte memmove, since it cannot rule out overlap.
    let (dst, src) = (*dst, *src);
    unsafe {
        (*eth).dst = dst;
        (*eth).src = src;
    }
    true
}
