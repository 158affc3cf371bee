//! A tiny HTTP/1.0 client that runs inside a namespace: quicker than
//! spawning curl, and enough for probes and simple checks.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::netns::in_namespace;

/// An HTTP response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `http://<addr>/<path>` with IPv6 addresses in brackets.
#[must_use]
pub fn url(addr: IpAddr, path: &str) -> String {
    let path = path.trim_start_matches('/');
    match addr {
        IpAddr::V4(a) => format!("http://{a}/{path}"),
        IpAddr::V6(a) => format!("http://[{a}]/{path}"),
    }
}

/// `GET path` from `addr` (one connection, `Connection: close`), made from
/// inside namespace `ns`; connecting and each read or write give up after
/// `timeout`.
pub fn http_get(ns: &str, addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response> {
    in_namespace(ns, || get(addr, path, timeout))?
        .with_context(|| format!("GET http://{addr}{path} from namespace {ns}"))
}

/// Whether a TCP connection to `addr` from inside `ns` is refused (nothing
/// listens). A timeout or success counts as "not refused".
pub(crate) fn connection_refused(ns: &str, addr: SocketAddr) -> Result<bool> {
    in_namespace(ns, || {
        matches!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        )
    })
}

pub(crate) fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response> {
    exchange(connect(addr, timeout)?, addr, path)
}

/// A connection to `addr`, with `timeout` on connecting and on each later
/// read and write.
pub(crate) fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout).context("connecting")?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// `GET path` on a connection made by [`connect`], read to its end.
pub(crate) fn exchange(mut stream: TcpStream, addr: SocketAddr, path: &str) -> Result<Response> {
    let host = match addr.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .context("sending the request")?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .context("reading the response")?;
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("response has no end of headers ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line: {:?}", head.lines().next()))?;
    Ok(Response {
        status,
        body: raw[head_end + 4..].to_vec(),
    })
}
