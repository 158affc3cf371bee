//! The HTTP/1.1 side of HTTP and HTTPS checks: the request, a minimal
//! response parser (status line, headers, `Content-Length`, chunked
//! bodies), and the exchange over any byte stream.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    probe::{FailureReason, Phase, PhaseCell, ProbeFailure, io_failure},
    spec::HttpCheck,
};

/// The longest response head (status line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// How much of the body is searched for `expect_body`.
pub const MAX_BODY: usize = 64 * 1024;

/// The `Host` header for `addr` when the check does not name one: the
/// address, with the port unless it is the scheme's default, IPv6 in
/// brackets.
#[must_use]
pub fn default_host(addr: SocketAddr, default_port: u16) -> String {
    let ip = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    if addr.port() == default_port {
        ip
    } else {
        format!("{ip}:{}", addr.port())
    }
}

/// The request. Refuses a path or host that would break the request line
/// or inject headers (the config validator should have caught them).
pub fn request(path: &str, host: &str) -> Result<Vec<u8>, String> {
    let bad = |s: &str| s.bytes().any(|b| b <= b' ' || b == 0x7f);
    if !path.starts_with('/') || bad(path) {
        return Err(format!("invalid request path {path:?}"));
    }
    if host.is_empty() || bad(host) {
        return Err(format!("invalid Host header {host:?}"));
    }
    Ok(format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         User-Agent: lbd-health-check\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes())
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the buffer taken by the head (and any 1xx heads before it).
    pub len: usize,
    pub content_length: Option<usize>,
    pub chunked: bool,
}

/// Parses the response head at the start of `buf`: `Ok(None)` while it is
/// incomplete. Informational (1xx) heads are skipped.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut start = 0;
    loop {
        let Some(head) = parse_one_head(&buf[start..])? else {
            return Ok(None);
        };
        let len = start + head.len;
        if (100..200).contains(&head.status) && head.status != 101 {
            start = len;
            continue;
        }
        return Ok(Some(Head { len, ..head }));
    }
}

fn parse_one_head(buf: &[u8]) -> Result<Option<Head>, String> {
    // Split into lines (LF, optionally preceded by CR) up to the empty one.
    let mut lines = Vec::new();
    let mut pos = 0;
    let end = loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            let rest = &buf[pos..];
            if lines.is_empty() && !rest.starts_with(&b"HTTP/"[..rest.len().min(5)]) {
                return Err(status_line_error(rest));
            }
            return Ok(None);
        };
        let line = &buf[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += nl + 1;
        if line.is_empty() {
            if lines.is_empty() {
                // Tolerate blank lines before the status line.
                continue;
            }
            break pos;
        }
        if lines.is_empty() && parse_status_line(line).is_none() {
            return Err(status_line_error(line));
        }
        lines.push(line);
    };
    let status = parse_status_line(lines[0]).ok_or_else(|| status_line_error(lines[0]))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in &lines[1..] {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!("malformed header line {:?}", printable(line, 60)));
        };
        let name = &line[..colon];
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        let value = value.trim();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| format!("invalid Content-Length {value:?}"))?;
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value
                .split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    if matches!(status, 204 | 304) {
        content_length = Some(0);
    }
    Ok(Some(Head {
        status,
        len: end,
        content_length: if chunked { None } else { content_length },
        chunked,
    }))
}

/// `HTTP/1.x NNN reason`.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn status_line_error(line: &[u8]) -> String {
    let line = line.split(|&b| b == b'\n').next().unwrap_or(line);
    if line.is_empty() {
        "empty response".to_owned()
    } else {
        format!("not an HTTP response: {:?}", printable(line, 60))
    }
}

/// At most `max` characters of `bytes`, lossily decoded.
pub(crate) fn printable(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Decodes as much of a chunked body as `raw` holds (a truncated body
/// yields its complete part).
#[must_use]
pub fn decode_chunked(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(nl) = raw[pos..].iter().position(|&b| b == b'\n') else {
            return out;
        };
        let line = &raw[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(size).trim(), 16) else {
            return out;
        };
        pos += nl + 1;
        if size == 0 {
            return out;
        }
        let available = raw.len() - pos;
        out.extend_from_slice(&raw[pos..pos + size.min(available)]);
        if size >= available {
            return out;
        }
        pos += size;
        // The CRLF after the chunk.
        if raw[pos..].starts_with(b"\r\n") {
            pos += 2;
        } else if raw[pos..].starts_with(b"\n") {
            pos += 1;
        }
    }
}

/// Whether `needle` occurs in `haystack`.
#[must_use]
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `status` is accepted (an empty list means 200..=399).
#[must_use]
pub fn status_accepted(status: u16, expect: &[u16]) -> bool {
    if expect.is_empty() {
        (200..=399).contains(&status)
    } else {
        expect.contains(&status)
    }
}

/// The accepted statuses as an operator reads them: `200-399`,
/// `200, 204`, `200-202, 301`.
#[must_use]
pub fn expected_text(expect: &[u16]) -> String {
    if expect.is_empty() {
        return "200-399".to_owned();
    }
    let mut codes = expect.to_vec();
    codes.sort_unstable();
    codes.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < codes.len() {
        let mut j = i;
        while j + 1 < codes.len() && codes[j + 1] == codes[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}-{}", codes[i], codes[j]));
        } else {
            for code in &codes[i..=j] {
                parts.push(code.to_string());
            }
        }
        i = j + 1;
    }
    parts.join(", ")
}

/// Reads more into `buf`: the number of bytes read, 0 at the end. A TLS
/// stream closed without `close_notify` counts as the end.
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    phase: &PhaseCell,
) -> Result<usize, ProbeFailure> {
    buf.reserve(4096);
    match stream.read_buf(buf).await {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(io_failure(phase.get(), &e)),
    }
}

/// Sends the request and checks the response against `check`.
pub(crate) async fn exchange<S>(
    stream: &mut S,
    check: &HttpCheck,
    host: &str,
    phase: &PhaseCell,
) -> Result<(), ProbeFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request =
        request(&check.path, host).map_err(|e| ProbeFailure::new(FailureReason::Io, e))?;
    phase.set(Phase::Send);
    stream
        .write_all(&request)
        .await
        .map_err(|e| io_failure(Phase::Send, &e))?;
    stream
        .flush()
        .await
        .map_err(|e| io_failure(Phase::Send, &e))?;

    phase.set(Phase::Response);
    let mut buf = Vec::new();
    let head = loop {
        match parse_head(&buf) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(e) => return Err(ProbeFailure::new(FailureReason::Status, e)),
        }
        if buf.len() >= MAX_HEAD {
            return Err(ProbeFailure::new(
                FailureReason::Status,
                format!("response head longer than {} KiB", MAX_HEAD / 1024),
            ));
        }
        if read_more(stream, &mut buf, phase).await? == 0 {
            return Err(ProbeFailure::new(
                FailureReason::Io,
                if buf.is_empty() {
                    "connection closed without a response".to_owned()
                } else {
                    "connection closed in the middle of the response head".to_owned()
                },
            ));
        }
    };
    if !status_accepted(head.status, &check.expect_status) {
        return Err(ProbeFailure::new(
            FailureReason::Status,
            format!(
                "HTTP status {} (expected {})",
                head.status,
                expected_text(&check.expect_status)
            ),
        ));
    }
    let Some(needle) = &check.expect_body else {
        return Ok(());
    };

    phase.set(Phase::Body);
    // Raw bytes read beyond the body limit: chunk framing.
    let raw_limit = MAX_BODY + MAX_BODY / 8;
    let mut eof = false;
    loop {
        let raw = &buf[head.len..];
        let body = if head.chunked {
            let mut body = decode_chunked(raw);
            body.truncate(MAX_BODY);
            std::borrow::Cow::Owned(body)
        } else {
            let limit = head.content_length.unwrap_or(usize::MAX).min(MAX_BODY);
            std::borrow::Cow::Borrowed(&raw[..raw.len().min(limit)])
        };
        if contains(&body, needle.as_bytes()) {
            return Ok(());
        }
        let complete = eof
            || body.len() >= MAX_BODY
            || raw.len() >= raw_limit
            || head.content_length.is_some_and(|n| raw.len() >= n)
            || (head.chunked && chunked_complete(raw));
        if complete {
            let read = body.len();
            return Err(ProbeFailure::new(
                FailureReason::Body,
                format!(
                    "body does not contain {:?}{}",
                    printable(needle.as_bytes(), 60),
                    if read >= MAX_BODY {
                        format!(" (searched the first {} KiB)", MAX_BODY / 1024)
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        eof = read_more(stream, &mut buf, phase).await? == 0;
    }
}

/// Whether a chunked body has reached its last (zero-size) chunk.
fn chunked_complete(raw: &[u8]) -> bool {
    let mut pos = 0;
    loop {
        let Some(nl) = raw[pos..].iter().position(|&b| b == b'\n') else {
            return false;
        };
        let line = &raw[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(size).trim(), 16) else {
            // Malformed: stop reading.
            return true;
        };
        if size == 0 {
            return true;
        }
        pos += nl + 1 + size;
        if pos >= raw.len() {
            return false;
        }
        if raw[pos..].starts_with(b"\r\n") {
            pos += 2;
        } else if raw[pos..].starts_with(b"\n") {
            pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_text() {
        let r = request("/healthz?x=1", "10.0.0.1:8080").unwrap();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "GET /healthz?x=1 HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nConnection: close\r\n\
             User-Agent: lbd-health-check\r\nAccept: */*\r\n\r\n"
        );
        assert!(request("/a b", "h").is_err());
        assert!(request("/a\r\nX-Evil: 1", "h").is_err());
        assert!(request("a", "h").is_err());
        assert!(request("/", "h\r\nX: y").is_err());
        assert!(request("/", "").is_err());
    }

    #[test]
    fn default_hosts() {
        assert_eq!(default_host("10.0.0.1:80".parse().unwrap(), 80), "10.0.0.1");
        assert_eq!(
            default_host("10.0.0.1:8080".parse().unwrap(), 80),
            "10.0.0.1:8080"
        );
        assert_eq!(
            default_host("[2001:db8::1]:443".parse().unwrap(), 443),
            "[2001:db8::1]"
        );
        assert_eq!(
            default_host("[2001:db8::1]:8443".parse().unwrap(), 443),
            "[2001:db8::1]:8443"
        );
    }

    #[test]
    fn heads() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello";
        assert_eq!(
            parse_head(r).unwrap(),
            Some(Head {
                status: 200,
                len: r.len() - 5,
                content_length: Some(5),
                chunked: false
            })
        );
        // Incomplete.
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        assert_eq!(parse_head(b"").unwrap(), None);
        assert_eq!(parse_head(b"HTT").unwrap(), None);
        // Bare LF, no reason phrase, HTTP/1.0.
        let h = parse_head(b"HTTP/1.0 503\nTransfer-Encoding: gzip, Chunked\n\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 503);
        assert!(h.chunked);
        // 1xx heads are skipped.
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 404 NF\r\n\r\n";
        let h = parse_head(r).unwrap().unwrap();
        assert_eq!((h.status, h.len), (404, r.len()));
        // Not HTTP.
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 20x OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n").is_err());
        assert_eq!(
            parse_head(b"garbage").unwrap_err(),
            "not an HTTP response: \"garbage\""
        );
    }

    #[test]
    fn chunked() {
        let raw = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        assert_eq!(decode_chunked(raw), b"hello world");
        assert!(chunked_complete(raw));
        // Truncated in the middle of a chunk.
        assert_eq!(decode_chunked(b"5\r\nhello\r\n6\r\n wo"), b"hello wo");
        assert!(!chunked_complete(b"5\r\nhello\r\n6\r\n wo"));
        assert!(!chunked_complete(b"5\r\nhel"));
        assert_eq!(decode_chunked(b"zz\r\n"), b"");
    }

    #[test]
    fn statuses() {
        assert!(status_accepted(200, &[]));
        assert!(status_accepted(302, &[]));
        assert!(!status_accepted(404, &[]));
        assert!(status_accepted(404, &[404]));
        assert!(!status_accepted(200, &[204]));
        assert_eq!(expected_text(&[]), "200-399");
        assert_eq!(expected_text(&[204, 200]), "200, 204");
        assert_eq!(expected_text(&[200, 201, 202, 301]), "200-202, 301");
        assert_eq!(expected_text(&[200, 201]), "200, 201");
    }

    #[test]
    fn substring() {
        assert!(contains(b"status: ok\n", b"ok"));
        assert!(!contains(b"status: o k", b"ok"));
        assert!(contains(b"", b""));
        assert!(!contains(b"o", b"ok"));
    }
}
