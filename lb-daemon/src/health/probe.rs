//! One probe of one real: TCP connect, HTTP(S) GET, a command, a UDP
//! exchange or a DNS query, always within the check's timeout.
//!
//! Probe sockets are closed with a reset (`SO_LINGER` 0), as `HAProxy` does:
//! at 10,000 reals a second, closing normally would leave the checker's side
//! with ~600,000 sockets in `TIME_WAIT`.

use std::{
    io,
    net::SocketAddr,
    os::unix::process::ExitStatusExt,
    path::Path,
    process::Stdio,
    sync::atomic::{AtomicU8, Ordering},
    time::{Duration, Instant},
};

use rustls::pki_types::ServerName;
use tokio::{
    io::AsyncReadExt,
    net::{TcpStream, UdpSocket},
    process::{Child, ChildStderr},
};

use super::{
    dns,
    http::{self, printable},
    spec::{CheckKind, CheckSpec, DnsCheck, HttpCheck, UdpCheck},
    tls::TlsConfigs,
};
use crate::config::format_duration;

/// Why a probe failed, as a Prometheus label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// No answer within the check's timeout.
    Timeout,
    /// Connection refused (nothing listens: the server is down).
    Refused,
    /// Connection reset or aborted by the peer.
    Reset,
    /// Any other network or I/O error (no route, closed early, …).
    Io,
    /// An unexpected or malformed HTTP status.
    Status,
    /// The body does not contain the expected text.
    Body,
    /// TLS handshake or certificate failure.
    Tls,
    /// The command exited with a non-zero status (or was killed).
    Exit,
    /// The command could not be started.
    Spawn,
    /// A UDP or DNS reply other than expected (content, rcode, address).
    Reply,
}

impl FailureReason {
    pub const ALL: [Self; 10] = [
        Self::Timeout,
        Self::Refused,
        Self::Reset,
        Self::Io,
        Self::Status,
        Self::Body,
        Self::Tls,
        Self::Exit,
        Self::Spawn,
        Self::Reply,
    ];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Reset => "reset",
            Self::Io => "io",
            Self::Status => "status",
            Self::Body => "body",
            Self::Tls => "tls",
            Self::Exit => "exit",
            Self::Spawn => "spawn",
            Self::Reply => "reply",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A failed probe: the category and one line for the operator, e.g.
/// `HTTP status 503 (expected 200-399)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeFailure {
    pub reason: FailureReason,
    pub detail: String,
}

impl ProbeFailure {
    /// Makes `detail` one line.
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        let detail: String = detail.into();
        let detail = if detail.contains(['\n', '\r']) {
            detail
                .split(['\n', '\r'])
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            detail
        };
        Self { reason, detail }
    }
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ProbeFailure {}

/// What a probe was doing, for the message of a timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Connect,
    Handshake,
    Send,
    Response,
    Body,
    Command,
}

impl Phase {
    fn text(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Handshake => "TLS handshake",
            Self::Send => "sending the request",
            Self::Response => "waiting for the response",
            Self::Body => "reading the body",
            Self::Command => "command still running, killed",
        }
    }
}

/// The current [`Phase`], readable after the probe's future was dropped by
/// the timeout (atomic only so the future stays `Send`).
pub(crate) struct PhaseCell(AtomicU8);

impl PhaseCell {
    fn new(phase: Phase) -> Self {
        Self(AtomicU8::new(phase as u8))
    }

    pub(crate) fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Phase {
        match self.0.load(Ordering::Relaxed) {
            0 => Phase::Connect,
            1 => Phase::Handshake,
            2 => Phase::Send,
            3 => Phase::Response,
            4 => Phase::Body,
            _ => Phase::Command,
        }
    }
}

/// An I/O error in words an operator expects (`connection refused`, not
/// `Connection refused (os error 111)`).
pub(crate) fn io_text(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let text = match e.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset by peer",
        K::ConnectionAborted => "connection aborted",
        K::BrokenPipe => "broken pipe (connection closed by peer)",
        K::NotFound => "no such file or directory",
        K::PermissionDenied => "permission denied",
        K::HostUnreachable => "no route to host",
        K::NetworkUnreachable => "network unreachable",
        K::AddrNotAvailable => "address not available",
        K::TimedOut => "timed out",
        K::UnexpectedEof => "connection closed by peer",
        _ => {
            let text = e.to_string();
            return match text.rfind(" (os error ") {
                Some(i) if text.ends_with(')') => text[..i].to_owned(),
                _ => text,
            };
        }
    };
    text.to_owned()
}

/// A failed probe from an I/O error during `phase`.
pub(crate) fn io_failure(phase: Phase, e: &io::Error) -> ProbeFailure {
    use io::ErrorKind as K;
    let tls = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    let reason = match e.kind() {
        _ if tls => FailureReason::Tls,
        K::ConnectionRefused => FailureReason::Refused,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => FailureReason::Reset,
        K::TimedOut => FailureReason::Timeout,
        _ => FailureReason::Io,
    };
    let text = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            "certificate not issued by a trusted CA (set verify_tls = false to accept any)"
                .to_owned()
        }
        _ => io_text(e),
    };
    ProbeFailure::new(reason, format!("{}: {text}", phase.text()))
}

/// The address probed: the real's, with the check's port if it has one.
#[must_use]
pub fn check_addr(spec: &CheckSpec, real: SocketAddr) -> SocketAddr {
    SocketAddr::new(real.ip(), spec.port.unwrap_or(real.port()))
}

/// Probes the real at `real` (its address; the check's `port` overrides
/// the port). `Ok` holds how long the probe took; either way the answer
/// comes within `spec.timeout` (a command still running then is killed,
/// with its process group). `CheckKind::None` passes at once.
pub async fn probe(
    spec: &CheckSpec,
    real: SocketAddr,
    tls: &TlsConfigs,
) -> Result<Duration, ProbeFailure> {
    let start = Instant::now();
    let phase = PhaseCell::new(Phase::Connect);
    let addr = check_addr(spec, real);
    let run = async {
        match &spec.kind {
            CheckKind::None => Ok(()),
            CheckKind::Tcp => connect(addr).await.map(drop),
            CheckKind::Http(check) => {
                let mut stream = connect(addr).await?;
                let host = host_header(check, addr, 80);
                http::exchange(&mut stream, check, &host, &phase).await
            }
            CheckKind::Https(check) => https(check, addr, tls, &phase).await,
            CheckKind::Command { program, args } => {
                phase.set(Phase::Command);
                command(program, args, real, addr).await
            }
            CheckKind::Udp(check) => udp(check, addr, &phase).await,
            CheckKind::Dns(check) => dns_query(check, addr, &phase).await,
        }
    };
    match tokio::time::timeout(spec.timeout, run).await {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(ProbeFailure::new(
            FailureReason::Timeout,
            format!(
                "timed out after {} ({})",
                format_duration(spec.timeout),
                phase.get().text()
            ),
        )),
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, ProbeFailure> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| io_failure(Phase::Connect, &e))?;
    // Close with RST: no TIME_WAIT on our side (see the module docs).
    let _ = stream.set_zero_linger();
    Ok(stream)
}

/// A UDP socket connected to `addr` (so an ICMP port unreachable comes
/// back as `ECONNREFUSED`).
async fn udp_socket(addr: SocketAddr) -> Result<UdpSocket, ProbeFailure> {
    let any: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any)
        .await
        .map_err(|e| io_failure(Phase::Connect, &e))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| io_failure(Phase::Connect, &e))?;
    Ok(socket)
}

/// A failed UDP send or receive; a refusal is the peer's ICMP port
/// unreachable.
fn udp_failure(phase: Phase, addr: SocketAddr, e: &io::Error) -> ProbeFailure {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        return ProbeFailure::new(
            FailureReason::Refused,
            format!(
                "ICMP port unreachable: nothing listens on UDP port {}",
                addr.port()
            ),
        );
    }
    io_failure(phase, e)
}

/// Largest reply read (a UDP datagram's maximum payload).
const UDP_REPLY_MAX: usize = 65_536;

/// Sends the payload; the first datagram back must contain `expect_reply`.
async fn udp(check: &UdpCheck, addr: SocketAddr, phase: &PhaseCell) -> Result<(), ProbeFailure> {
    let socket = udp_socket(addr).await?;
    phase.set(Phase::Send);
    socket
        .send(check.payload.as_bytes())
        .await
        .map_err(|e| udp_failure(Phase::Send, addr, &e))?;
    phase.set(Phase::Response);
    let mut buf = vec![0_u8; UDP_REPLY_MAX];
    let n = socket
        .recv(&mut buf)
        .await
        .map_err(|e| udp_failure(Phase::Response, addr, &e))?;
    let reply = &buf[..n];
    match &check.expect_reply {
        Some(want) if !contains(reply, want.as_bytes()) => Err(ProbeFailure::new(
            FailureReason::Reply,
            format!(
                "reply does not contain {want:?}: {:?}",
                printable(reply, 100)
            ),
        )),
        _ => Ok(()),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sends the query; datagrams that are not its answer are skipped.
async fn dns_query(
    check: &DnsCheck,
    addr: SocketAddr,
    phase: &PhaseCell,
) -> Result<(), ProbeFailure> {
    let id = dns::next_id();
    let query = dns::query(id, check)?;
    let socket = udp_socket(addr).await?;
    phase.set(Phase::Send);
    socket
        .send(&query)
        .await
        .map_err(|e| udp_failure(Phase::Send, addr, &e))?;
    phase.set(Phase::Response);
    let mut buf = vec![0_u8; UDP_REPLY_MAX];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| udp_failure(Phase::Response, addr, &e))?;
        match dns::judge(id, check, &buf[..n]) {
            dns::Verdict::NotOurs => {}
            dns::Verdict::Pass => return Ok(()),
            dns::Verdict::Fail(failure) => return Err(failure),
        }
    }
}

fn host_header(check: &HttpCheck, addr: SocketAddr, default_port: u16) -> String {
    check
        .host
        .clone()
        .unwrap_or_else(|| http::default_host(addr, default_port))
}

async fn https(
    check: &HttpCheck,
    addr: SocketAddr,
    tls: &TlsConfigs,
    phase: &PhaseCell,
) -> Result<(), ProbeFailure> {
    let name = server_name(check.host.as_deref(), addr)?;
    let tcp = connect(addr).await?;
    phase.set(Phase::Handshake);
    let connector = tokio_rustls::TlsConnector::from(tls.config(check.verify_tls));
    let mut stream = connector.connect(name, tcp).await.map_err(|e| {
        let mut failure = io_failure(Phase::Handshake, &e);
        if failure.reason == FailureReason::Io {
            // E.g. a plain-HTTP server that closes on the ClientHello.
            failure.reason = FailureReason::Tls;
        }
        failure
    })?;
    let host = host_header(check, addr, 443);
    http::exchange(&mut stream, check, &host, phase).await
}

/// The TLS server name: the check's `host` without a port, else the
/// real's IP address (verified against the certificate's IP addresses).
fn server_name(host: Option<&str>, addr: SocketAddr) -> Result<ServerName<'static>, ProbeFailure> {
    let Some(host) = host else {
        return Ok(ServerName::IpAddress(addr.ip().into()));
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    ServerName::try_from(name.to_owned()).map_err(|_| {
        ProbeFailure::new(
            FailureReason::Tls,
            format!("invalid TLS server name {name:?} (from host {host:?})"),
        )
    })
}

/// Kills the command's process group when the probe ends (on timeout the
/// probe's future is dropped): a hung check script must not leave its
/// children behind, one set per probe.
struct ProcessGroup {
    child: Child,
    pgid: Option<i32>,
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.filter(|&p| p > 0) {
            // SAFETY: kill(2) with a negative pid signals that process
            // group; our child leads it (process_group(0)), so it cannot
            // be someone else's unless the group emptied and its id was
            // reused in the microseconds since the child was reaped.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// How much of the command's stderr is kept.
const STDERR_KEEP: usize = 4096;

async fn command(
    program: &Path,
    args: &[String],
    real: SocketAddr,
    addr: SocketAddr,
) -> Result<(), ProbeFailure> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("LB_REAL_ADDR", real.ip().to_string())
        .env("LB_REAL_PORT", real.port().to_string())
        .env("LB_CHECK_PORT", addr.port().to_string())
        // lbd's systemd notify socket and watchdog are lbd's own: a check
        // must not be able to report readiness or feed the watchdog.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let child = cmd.spawn().map_err(|e| {
        ProbeFailure::new(
            FailureReason::Spawn,
            format!("cannot run {}: {}", program.display(), io_text(&e)),
        )
    })?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    let mut group = ProcessGroup { child, pgid };
    let mut stderr = group.child.stderr.take();
    let mut kept = Vec::new();
    let status = {
        let stderr_reader = read_stderr(stderr.as_mut(), &mut kept);
        tokio::pin!(stderr_reader);
        let mut read_done = false;
        let status = loop {
            tokio::select! {
                status = group.child.wait() => break status,
                () = &mut stderr_reader, if !read_done => read_done = true,
            }
        };
        if !read_done {
            // Whatever the command wrote just before exiting; a background
            // process holding stderr open must not hold the probe.
            let _ = tokio::time::timeout(Duration::from_millis(20), &mut stderr_reader).await;
        }
        status
    };
    drop(group);
    let status = status.map_err(|e| {
        ProbeFailure::new(
            FailureReason::Io,
            format!("waiting for {}: {}", program.display(), io_text(&e)),
        )
    })?;
    if status.success() {
        return Ok(());
    }
    let what = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    };
    let first_line = kept
        .split(|&b| b == b'\n')
        .map(|l| printable(l, 200))
        .map(|l| l.trim().to_owned())
        .find(|l| !l.is_empty());
    Err(ProbeFailure::new(
        FailureReason::Exit,
        match first_line {
            Some(line) => format!("{what}: {line}"),
            None => what,
        },
    ))
}

/// Reads stderr to its end, keeping the first [`STDERR_KEEP`] bytes.
async fn read_stderr(stderr: Option<&mut ChildStderr>, kept: &mut Vec<u8>) {
    let Some(stderr) = stderr else {
        return;
    };
    let mut chunk = [0_u8; 1024];
    loop {
        match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = STDERR_KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_lower_case_and_distinct() {
        let labels: std::collections::HashSet<_> =
            FailureReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), FailureReason::ALL.len());
        assert!(
            labels
                .iter()
                .all(|l| l.chars().all(|c| c.is_ascii_lowercase()))
        );
    }

    #[test]
    fn failures_are_one_line() {
        let f = ProbeFailure::new(FailureReason::Exit, "exit status 1: a\nb\r\n");
        assert_eq!(f.to_string(), "exit status 1: a b");
    }

    #[test]
    fn io_errors_in_words() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        let f = io_failure(Phase::Connect, &e);
        assert_eq!(f.reason, FailureReason::Refused);
        assert_eq!(f.to_string(), "connect: connection refused");
        let e = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(
            io_failure(Phase::Connect, &e).to_string(),
            "connect: no route to host"
        );
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(
            io_failure(Phase::Connect, &e).to_string(),
            "connect: Too many open files"
        );
        let e = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(io_failure(Phase::Handshake, &e).reason, FailureReason::Tls);
    }

    #[test]
    fn server_names() {
        let addr: SocketAddr = "192.0.2.1:443".parse().unwrap();
        assert_eq!(
            server_name(None, addr).unwrap(),
            ServerName::IpAddress(addr.ip().into())
        );
        let dns = |s: &str| ServerName::try_from(s.to_owned()).unwrap();
        assert_eq!(
            server_name(Some("example.com"), addr).unwrap(),
            dns("example.com")
        );
        assert_eq!(
            server_name(Some("example.com:8443"), addr).unwrap(),
            dns("example.com")
        );
        assert_eq!(
            server_name(Some("[2001:db8::1]:8443"), addr).unwrap(),
            dns("2001:db8::1")
        );
        assert_eq!(
            server_name(Some("2001:db8::1"), addr).unwrap(),
            dns("2001:db8::1")
        );
        assert_eq!(
            server_name(Some("bad name"), addr).unwrap_err().reason,
            FailureReason::Tls
        );
    }

    #[test]
    fn check_port_overrides() {
        let spec = CheckSpec {
            port: Some(8080),
            ..CheckSpec::default()
        };
        let real: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(check_addr(&spec, real), "10.0.0.1:8080".parse().unwrap());
        assert_eq!(check_addr(&CheckSpec::default(), real), real);
    }

    /// A UDP echo server on loopback that answers `answer(datagram)`.
    fn udp_server(
        v6: bool,
        answer: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
    ) -> SocketAddr {
        let socket = std::net::UdpSocket::bind(if v6 { "[::1]:0" } else { "127.0.0.1:0" }).unwrap();
        let addr = socket.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0_u8; 2048];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                if let Some(reply) = answer(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        addr
    }

    fn udp_spec(payload: &str, expect: Option<&str>) -> CheckSpec {
        CheckSpec {
            kind: CheckKind::Udp(UdpCheck {
                payload: payload.into(),
                expect_reply: expect.map(Into::into),
            }),
            timeout: Duration::from_millis(300),
            ..CheckSpec::default()
        }
    }

    async fn run(spec: &CheckSpec, addr: SocketAddr) -> Result<Duration, ProbeFailure> {
        probe(spec, addr, &TlsConfigs::new().unwrap()).await
    }

    #[tokio::test]
    async fn udp_checks_over_ipv4_and_ipv6() {
        for v6 in [false, true] {
            let echo = udp_server(v6, |d| Some([b"pong: ", d].concat()));
            run(&udp_spec("ping", None), echo).await.unwrap();
            run(&udp_spec("ping", Some("pong")), echo).await.unwrap();
            let f = run(&udp_spec("ping", Some("PONG")), echo)
                .await
                .unwrap_err();
            assert_eq!(f.reason, FailureReason::Reply, "{f}");
            assert!(f.detail.contains("pong: ping"), "{f}");
            // A server that says nothing: timeout.
            let mute = udp_server(v6, |_| None);
            let f = run(&udp_spec("ping", None), mute).await.unwrap_err();
            assert_eq!(f.reason, FailureReason::Timeout, "{f}");
            assert_eq!(f.detail, "timed out after 300ms (waiting for the response)");
            // Nothing listening: the ICMP port unreachable fails at once.
            let closed = {
                let s =
                    std::net::UdpSocket::bind(if v6 { "[::1]:0" } else { "127.0.0.1:0" }).unwrap();
                s.local_addr().unwrap()
            };
            let f = run(&udp_spec("ping", None), closed).await.unwrap_err();
            assert_eq!(f.reason, FailureReason::Refused, "{f}");
            assert!(f.detail.contains("ICMP port unreachable"), "{f}");
        }
    }

    #[tokio::test]
    async fn dns_checks_skip_stray_datagrams() {
        use simple_dns::Packet;
        // Answers every query: NOERROR, NXDOMAIN for "missing.test".
        let server = udp_server(false, |q| {
            let query = Packet::parse(q).ok()?;
            let mut reply = Packet::new_reply(query.id());
            if query.questions[0].qname.to_string() == "missing.test" {
                *reply.rcode_mut() = simple_dns::RCODE::NameError;
            }
            Some(reply.build_bytes_vec().unwrap())
        });
        let spec = |name: &str| CheckSpec {
            kind: CheckKind::Dns(DnsCheck {
                name: name.into(),
                qtype: dns::TYPE_A,
                rcode: 0,
                expect_address: None,
            }),
            timeout: Duration::from_millis(300),
            ..CheckSpec::default()
        };
        run(&spec("present.test"), server).await.unwrap();
        let f = run(&spec("missing.test"), server).await.unwrap_err();
        assert_eq!(f.reason, FailureReason::Reply, "{f}");
        assert!(f.detail.contains("NXDOMAIN"), "{f}");
        // Only answers with another id (stray datagrams): skipped, so a
        // timeout, not a pass.
        let liar = udp_server(false, |q| {
            let id = u16::from_be_bytes([q[0], q[1]]).wrapping_add(1);
            Some(simple_dns::Packet::new_reply(id).build_bytes_vec().unwrap())
        });
        let f = run(&spec("present.test"), liar).await.unwrap_err();
        assert_eq!(f.reason, FailureReason::Timeout, "{f}");
    }
}
