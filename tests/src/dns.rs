//! DNS in the lab: `dnsmasq` as a real's resolver (answering a static
//! record for [`TEST_NAME`] with the real's own addresses, so an answer
//! tells which real gave it) and a small UDP client that records each
//! query like [`crate::requests`] records a request.

use std::{
    fs::File,
    net::{IpAddr, SocketAddr, UdpSocket},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use simple_dns::{
    CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, TYPE,
    rdata::{A, AAAA, RData},
};

use crate::{
    Lab,
    netns::{command_in, in_namespace},
    requests::{Outcome, Record},
    wait_for,
};

/// The name every real's dnsmasq answers (with its own addresses).
pub const TEST_NAME: &str = "svc.lab.test";

/// A running dnsmasq in a real's namespace.
pub struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    /// Starts dnsmasq in real `i`'s namespace on port 53 of every address
    /// (its own and the VIPs on `lo`), answering [`TEST_NAME`] with the
    /// real's IPv4 and IPv6 addresses, and returns once it answers.
    pub fn start(lab: &mut Lab, i: usize) -> Result<Self> {
        let ns = lab.real_ns(i).to_owned();
        let (v4, v6) = (lab.real_addr_v4(i), lab.real_addr_v6(i));
        let log = lab.dir().join(format!("dnsmasq-{i}.log"));
        let pid = lab.dir().join(format!("dnsmasq-{i}.pid"));
        let args = [
            "dnsmasq".to_owned(),
            "--keep-in-foreground".to_owned(),
            "--conf-file=/dev/null".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--user=root".to_owned(),
            "--port=53".to_owned(),
            format!("--pid-file={}", pid.display()),
            format!("--host-record={TEST_NAME},{v4},{v6}"),
        ];
        let mut cmd = command_in(&ns, &args);
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out));
        let child = lab.spawn(&mut cmd)?;
        let mut server = Self { child };
        let addr = SocketAddr::from((v4, 53));
        let ready = wait_for(Duration::from_secs(10), "dnsmasq answers", || {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "dnsmasq exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let (record, _) =
                in_namespace(&ns, || query(addr, TEST_NAME, Duration::from_millis(200)))?;
            match record.outcome {
                Outcome::Answered => Ok(()),
                other => bail!("{other:?}"),
            }
        });
        if let Err(e) = ready {
            server.stop();
            return Err(e);
        }
        Ok(server)
    }

    /// Kills it (SIGKILL) and reaps it: port 53 is closed when this
    /// returns.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One query for `name` (A over IPv4, AAAA over IPv6) to `server` with
/// `timeout`: answered when the answer is NOERROR with an address, which
/// is returned too.
#[must_use]
pub fn query(server: SocketAddr, name: &str, timeout: Duration) -> (Record, Option<IpAddr>) {
    let start = Instant::now();
    let mut local_port = None;
    let result = (|| -> std::io::Result<std::result::Result<IpAddr, String>> {
        let any: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let socket = UdpSocket::bind(any)?;
        socket.connect(server)?;
        local_port = socket.local_addr().ok().map(|a| a.port());
        let id = local_port.unwrap_or(0) ^ 0x5a5a;
        let qtype = if server.is_ipv4() {
            TYPE::A
        } else {
            TYPE::AAAA
        };
        let mut packet = Packet::new_query(id);
        packet.set_flags(PacketFlag::RECURSION_DESIRED);
        packet.questions.push(Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(qtype),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        socket.send(&packet.build_bytes_vec().expect("a query encodes"))?;
        let mut buf = [0_u8; 4096];
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            socket.set_read_timeout(Some(left))?;
            let n = socket.recv(&mut buf)?;
            let Ok(reply) = Packet::parse(&buf[..n]) else {
                return Ok(Err("malformed reply".to_owned()));
            };
            if reply.id() != id {
                continue;
            }
            if reply.rcode() != RCODE::NoError {
                return Ok(Err(format!("rcode {:?}", reply.rcode())));
            }
            let addr = reply.answers.iter().find_map(|rr| match &rr.rdata {
                RData::A(A { address }) => Some(IpAddr::from(address.to_be_bytes())),
                RData::AAAA(AAAA { address }) => Some(IpAddr::from(address.to_be_bytes())),
                _ => None,
            });
            return Ok(addr.ok_or_else(|| "no address in the answer".to_owned()));
        }
    })();
    let (outcome, addr) = match result {
        Ok(Ok(addr)) => (Outcome::Answered, Some(addr)),
        Ok(Err(why)) => (Outcome::Failed(why), None),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            (Outcome::Hung, None)
        }
        Err(e) => (Outcome::Failed(e.to_string()), None),
    };
    (
        Record {
            start,
            end: Instant::now(),
            outcome,
            local_port,
        },
        addr,
    )
}
