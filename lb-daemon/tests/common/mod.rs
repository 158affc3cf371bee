//! Test harness: a freshly loaded data path driven through `BPF_PROG_TEST_RUN`.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod packets;

use std::net::IpAddr;

use aya::programs::{TestRun, TestRunOptions};
use lb_common::{Action, Reason, program_names};
use lb_daemon::{
    balancer::{
        Balancer,
        model::{Protocol, RealSpec, Scheduler, ServiceAddr, ServiceSpec},
    },
    dataplane::{Dataplane, DataplaneLimits, xdp_object},
    sched::maglev,
};
use packets::DIRECTOR_MAC;

/// Without an explicit `ctx_in`, test runs see the loopback device (ifindex 1
/// in every namespace) as the ingress interface.
pub const TEST_IFINDEX: u32 = 1;

/// MAC of the i-th real in fixtures.
#[must_use]
pub fn real_mac(i: usize) -> [u8; 6] {
    [0x02, 0xaa, 0, 0, (i >> 8) as u8, i as u8]
}

pub struct Harness {
    pub lb: Balancer,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_limits(DataplaneLimits {
            conntrack_size: 65_536,
            max_reals: 8192,
            max_services: 64,
            sched_table_size: 1 << 20,
            lc_sets: 64,
        })
    }

    pub fn with_limits(limits: DataplaneLimits) -> Self {
        pin_to_one_cpu();
        let object = xdp_object()
            .expect("the XDP object is embedded: run the tests with `cargo xtask test`");
        let mut dp =
            Dataplane::load_object(object, limits).expect("load the XDP program (needs root)");
        dp.set_interfaces(&[(TEST_IFINDEX, DIRECTOR_MAC)])
            .expect("configure interface");
        Self {
            lb: Balancer::new(dp),
        }
    }

    /// Configures a service whose i-th real has MAC `real_mac(i)` and
    /// port `port`.
    pub fn service(
        &mut self,
        vip: IpAddr,
        port: u16,
        protocol: Protocol,
        scheduler: Scheduler,
        reals: &[(IpAddr, u32)],
    ) -> ServiceAddr {
        let spec = service_spec(vip, port, protocol, scheduler, reals);
        self.lb.apply(&spec).expect("apply service");
        spec.addr
    }

    /// Runs the balancer once on `frame`: the action and the frame it left.
    pub fn run(&mut self, frame: &[u8]) -> (Action, Vec<u8>) {
        self.run_program(program_names::LB, frame)
    }

    pub fn run_program(&mut self, name: &'static str, frame: &[u8]) -> (Action, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 256];
        let program = self.lb.dataplane_mut().program(name).expect("program");
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        out.truncate(result.data_size_out as usize);
        let action = match result.return_value {
            1 => Action::Drop,
            2 => Action::Pass,
            3 => Action::Tx,
            other => panic!("unexpected XDP verdict {other} (0 = XDP_ABORTED)"),
        };
        (action, out)
    }

    /// Packets counted for `reason` so far.
    pub fn count(&self, reason: Reason) -> u64 {
        self.lb
            .dataplane()
            .reason_counts()
            .expect("read counters")
            .into_iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| n)
    }

    /// Index of the real (as in `real_mac`) a forwarded frame went to.
    pub fn real_of(out: &[u8]) -> usize {
        assert_eq!(out[6..12], DIRECTOR_MAC, "source MAC is the director's");
        assert_eq!(
            out[0..2],
            [0x02, 0xaa],
            "destination is a real's MAC: {:02x?}",
            &out[0..6]
        );
        (usize::from(out[4]) << 8) | usize::from(out[5])
    }
}

/// Round-robin positions are per CPU, and a test run executes on the CPU of
/// the calling thread: keep each test on one CPU so sequences are exact.
fn pin_to_one_cpu() {
    // SAFETY: a zeroed cpu_set_t is valid; the calls only affect this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set),
            0,
            "pin to CPU 0"
        );
    }
}

/// A spec whose i-th real has MAC `real_mac(i)`.
pub fn service_spec(
    vip: IpAddr,
    port: u16,
    protocol: Protocol,
    scheduler: Scheduler,
    reals: &[(IpAddr, u32)],
) -> ServiceSpec {
    ServiceSpec {
        fallback: None,
        addr: ServiceAddr {
            vip,
            port,
            protocol,
        },
        scheduler,
        table_size: maglev::DEFAULT_SIZE,
        reals: reals
            .iter()
            .enumerate()
            .map(|(i, &(addr, weight))| RealSpec {
                addr,
                port,
                weight,
                mac: Some(real_mac(i)),
                reroute: false,
            })
            .collect(),
    }
}
