//! The data path's rare events (aya-log's ring buffer, see
//! `xdp-ebpf/src/events.rs`) into `lbd`'s log: a thread that waits for the
//! ring buffer to become readable and hands each event to the `log` crate,
//! which the tracing subscriber prints with the rest (target `xdp_ebpf`).

use std::{
    os::fd::AsFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context as _;

use crate::dataplane::Dataplane;

/// How long a wait lasts before the thread looks whether to stop.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// The running reader; [`EventLog::stop`] ends it.
pub struct EventLog {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl EventLog {
    /// Switches the events of `dp`'s program on or off and starts reading
    /// them (once per load).
    pub fn start(dp: &mut Dataplane, on: bool) -> anyhow::Result<Self> {
        dp.set_event_log(on)
            .context("switching the data path's event log")?;
        let mut reader = dp
            .event_reader(log::logger())
            .context("reading the data path's event log")?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("datapath-log".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    if readable(&reader, STOP_CHECK) {
                        reader.flush();
                    }
                }
            })?;
        Ok(Self { stop, thread })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Waits up to `timeout` for `fd` to become readable.
fn readable(fd: &impl AsFd, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd as _;
    let mut poll = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&raw mut poll, 1, timeout.as_millis() as libc::c_int) };
    n > 0 && poll.revents & libc::POLLIN != 0
}
