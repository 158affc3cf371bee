//! The read-only HTTP endpoint (hyper, HTTP/1.1): `GET /metrics` for
//! Prometheus, `GET /` the status page and `GET /api/status` the JSON it
//! polls (see [`super::status_page`]). GET and HEAD only: any other method
//! gets 405 and any other path 404, so nothing on this port can change
//! state. The exposition and the JSON are built by the controller thread,
//! which owns the maps; the page itself is a constant.
use std::{convert::Infallible, net::SocketAddr, sync::mpsc, time::Duration};

use anyhow::Context;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::oneshot};

use crate::daemon::Event;

/// Longest request head accepted (hyper's smallest read buffer); a longer
/// one is refused with 431.
const MAX_HEAD: usize = 8 * 1024;

/// A client has this long to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the metrics address (inside the tokio runtime's context).
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding the metrics address {addr}"))?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket)?)
}

pub async fn serve(listener: TcpListener, events: mpsc::Sender<Event>) {
    serve_with(listener, events, HEADER_READ_TIMEOUT).await;
}

async fn serve_with(
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    header_read_timeout: Duration,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEAD)
        // One request per connection (`Connection: close`), as a scrape is
        // seconds apart.
        .keep_alive(false)
        // A client that shuts down its side after the request still gets the
        // answer.
        .half_close(true);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let events = events.clone();
                let connection = http.serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |request| answer(request, events.clone())),
                );
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "metrics connection");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The status page may run its own inline script and style, and talk to
/// this address only: nothing is loaded from anywhere else.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One request. hyper leaves the body out of the answer to HEAD (keeping its
/// Content-Length).
async fn answer(
    request: Request<Incoming>,
    events: mpsc::Sender<Event>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    Ok(match request.uri().path() {
        "/metrics" => metrics(&events).await,
        "/" => {
            let mut response = response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                super::status_page::PAGE,
            );
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_POLICY),
            );
            response
        }
        "/api/status" => match since(request.uri().query()) {
            Ok(since) => api_status(&events, since).await,
            Err(()) => text(
                StatusCode::BAD_REQUEST,
                "since= takes a Unix time in seconds\n",
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "lbd serves /, /api/status and /metrics\n",
        ),
    })
}

async fn metrics(events: &mpsc::Sender<Event>) -> Response<Full<Bytes>> {
    let (reply, exposition) = oneshot::channel();
    if events.send(Event::Scrape(reply)).is_err() {
        return stopping();
    }
    match exposition.await {
        Ok(body) => response(StatusCode::OK, crate::metrics::CONTENT_TYPE, body),
        Err(_) => stopping(),
    }
}

async fn api_status(events: &mpsc::Sender<Event>, since: Option<f64>) -> Response<Full<Bytes>> {
    let (reply, json) = oneshot::channel();
    if events.send(Event::StatusPage { since, reply }).is_err() {
        return stopping();
    }
    match json.await {
        Ok(Ok(body)) => {
            let mut response = response(StatusCode::OK, "application/json", body);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(Err(e)) => response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("lbd could not read its maps: {e}\n"),
        ),
        Err(_) => stopping(),
    }
}

/// `since=SECONDS` of the query string, if any; other parameters are ignored.
fn since(query: Option<&str>) -> Result<Option<f64>, ()> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("since="))
    else {
        return Ok(None);
    };
    match value.parse::<f64>() {
        Ok(t) if t.is_finite() => Ok(Some(t)),
        _ => Err(()),
    }
}

fn stopping() -> Response<Full<Bytes>> {
    text(StatusCode::SERVICE_UNAVAILABLE, "lbd is stopping\n")
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    response(status, "text/plain", body)
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use std::{fmt::Write as _, time::Instant};

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;

    /// A server on 127.0.0.1 with a fake controller answering each scrape
    /// with `exposition` (none: the controller is gone). Called inside the
    /// test's runtime.
    fn start(exposition: Option<String>, header_read_timeout: Duration) -> SocketAddr {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, controller) = mpsc::channel();
        if let Some(exposition) = exposition {
            std::thread::spawn(move || {
                for event in controller {
                    match event {
                        Event::Scrape(reply) => {
                            let _ = reply.send(exposition.clone());
                        }
                        Event::StatusPage { since, reply } => {
                            let _ = reply.send(Ok(format!(
                                "{{\"since\":{}}}",
                                since.map_or("null".into(), |s| s.to_string())
                            )));
                        }
                        _ => {}
                    }
                }
            });
        }
        tokio::spawn(serve_with(listener, events, header_read_timeout));
        addr
    }

    /// Sends `request` (then shuts down the writing side) and returns the
    /// head (lower-case) and the body.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> (String, Vec<u8>) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("answer within 5 s")
            .unwrap();
        let end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head");
        let head = String::from_utf8(answer[..end].to_vec()).unwrap();
        (head.to_ascii_lowercase(), answer[end + 4..].to_vec())
    }

    fn assert_head(head: &str, status: &str, content_type: &str, length: usize) {
        assert!(
            head.starts_with(&format!("http/1.1 {status}\r\n")),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-type: {content_type}\r\n")),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {length}\r\n")),
            "{head}"
        );
        assert!(head.contains("\r\nconnection: close"), "{head}");
    }

    #[test]
    fn reads_since_from_the_query() {
        assert_eq!(since(None), Ok(None));
        assert_eq!(since(Some("x=1")), Ok(None));
        assert_eq!(
            since(Some("x=1&since=1700000000.25")),
            Ok(Some(1_700_000_000.25))
        );
        assert_eq!(since(Some("since=abc")), Err(()));
        assert_eq!(since(Some("since=NaN")), Err(()));
    }

    #[tokio::test]
    async fn serves_the_page_and_the_api_and_refuses_changes() {
        let addr = start(Some(String::new()), HEADER_READ_TIMEOUT);
        let (head, body) = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_head(
            &head,
            "200 ok",
            "text/html; charset=utf-8",
            super::super::status_page::PAGE.len(),
        );
        assert!(head.contains("\r\ncontent-security-policy: default-src 'none';"));
        assert_eq!(body, super::super::status_page::PAGE.as_bytes());

        let (head, body) = exchange(
            addr,
            b"GET /api/status?since=12.5 HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-type: application/json\r\n"));
        assert!(head.contains("\r\ncache-control: no-store\r\n"));
        // The fake controller echoes what it was asked.
        assert_eq!(body, b"{\"since\":12.5}");

        let (head, _) = exchange(addr, b"GET /api/status?since=x HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("http/1.1 400 "), "{head}");

        for request in [
            &b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"[..],
            b"PUT /api/status HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"DELETE /metrics HTTP/1.1\r\n\r\n",
            b"PATCH /anything HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        ] {
            let (head, body) = exchange(addr, request).await;
            assert_head(&head, "405 method not allowed", "text/plain", 9);
            assert_eq!(body, b"only GET\n");
        }
    }

    #[tokio::test]
    async fn answers_get_and_head_on_metrics_only() {
        let exposition = "# TYPE lb_up gauge\nlb_up 1\n";
        let addr = start(Some(exposition.to_owned()), HEADER_READ_TIMEOUT);
        let content_type = crate::metrics::CONTENT_TYPE.to_ascii_lowercase();

        let (head, body) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_head(&head, "200 ok", &content_type, exposition.len());
        assert_eq!(body, exposition.as_bytes());

        let (head, body) = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(head.starts_with("http/1.0 200 ok\r\n"), "{head}");
        assert_eq!(body, exposition.as_bytes());

        let (head, body) = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_head(&head, "200 ok", &content_type, exposition.len());
        assert!(body.is_empty());

        let (head, body) = exchange(addr, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_head(&head, "404 not found", "text/plain", 39);
        assert_eq!(body, b"lbd serves /, /api/status and /metrics\n");

        let post = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
        let (head, body) = exchange(addr, post).await;
        assert_head(&head, "405 method not allowed", "text/plain", 9);
        assert!(head.contains("\r\nallow: get, head"), "{head}");
        assert_eq!(body, b"only GET\n");

        let long = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        let (head, body) = exchange(addr, long.as_bytes()).await;
        assert!(head.starts_with("http/1.1 431 "), "{head}");
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn sends_a_large_exposition_whole() {
        let mut exposition = String::new();
        for i in 0..40_000 {
            writeln!(exposition, "lb_x{{i=\"{i}\"}} 1").unwrap();
        }
        let addr = start(Some(exposition.clone()), HEADER_READ_TIMEOUT);
        let (head, body) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert_eq!(body.len(), exposition.len());
        assert!(body == exposition.as_bytes());
    }

    #[tokio::test]
    async fn answers_503_when_the_controller_is_gone() {
        let addr = start(None, HEADER_READ_TIMEOUT);
        let (head, body) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_head(&head, "503 service unavailable", "text/plain", 16);
        assert_eq!(body, b"lbd is stopping\n");
    }

    #[tokio::test]
    async fn closes_a_connection_whose_head_is_slow() {
        let addr = start(Some(String::new()), Duration::from_millis(300));
        for request in [&b""[..], b"GET /metrics HTTP/1.1\r\n"] {
            // Before connecting: the server's timer cannot start earlier, so
            // the bound below holds however slowly this test runs.
            let started = Instant::now();
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(request).await.unwrap();
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
                .await
                .expect("closed within 5 s")
                .unwrap();
            assert!(!answer.starts_with(b"HTTP/1.1 200"));
            assert!(started.elapsed() >= Duration::from_millis(300));
        }
    }
}
