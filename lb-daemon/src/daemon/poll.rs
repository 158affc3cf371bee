//! Waiting on sockets from the plain threads (VRRP, sync).

use std::{os::fd::RawFd, time::Duration};

/// Sleeps until one of `fds` is readable or `timeout` passes (rounded up to
/// the millisecond: waking a little early would only loop once more).
pub fn wait_readable(fds: &[RawFd], timeout: Duration) {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: `polled` is a valid array of pollfd for the whole call.
    unsafe {
        libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, ms);
    }
}
