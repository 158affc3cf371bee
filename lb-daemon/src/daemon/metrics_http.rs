//! `GET /metrics` for Prometheus: a deliberately tiny HTTP/1.1 server that
//! answers that one request (and 404/405 for anything else), so nothing on
//! this port can change state. The exposition is rendered by the controller
//! thread, which owns the maps.

use std::{net::SocketAddr, sync::mpsc, time::Duration};

use anyhow::Context;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

use crate::daemon::Event;

/// Longest request head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// Binds the metrics address (inside the tokio runtime's context).
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding the metrics address {addr}"))?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket)?)
}

pub async fn serve(listener: TcpListener, events: mpsc::Sender<Event>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let events = events.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_one(stream, events).await {
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

async fn serve_one(mut stream: TcpStream, events: mpsc::Sender<Event>) -> anyhow::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 || head.len() + n > MAX_HEAD {
                anyhow::bail!("incomplete or oversized request");
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), read_head).await??;
    let request_line = String::from_utf8_lossy(&head);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let (reply, answer) = oneshot::channel();
            if events.send(Event::Scrape(reply)).is_err() {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "lbd is stopping\n".to_owned(),
                )
            } else {
                match answer.await {
                    Ok(text) => ("200 OK", crate::metrics::CONTENT_TYPE, text),
                    Err(_) => (
                        "503 Service Unavailable",
                        "text/plain",
                        "lbd is stopping\n".to_owned(),
                    ),
                }
            }
        }
        (_, "/metrics") => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "lbd serves /metrics only\n".to_owned(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await?;
    Ok(())
}
