//! The admin socket, on a small tokio runtime, and the owner's reload and
//! stop requests ([`super::Trigger`]). Requests are handed to the controller
//! thread one by one, which serializes them.

use std::{os::unix::fs::PermissionsExt, path::Path, sync::mpsc, time::Duration};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::oneshot,
};

use super::{Event, Shutdown, Signal};
use crate::admin::{Request, Response};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// Another lbd answering on the socket means two daemons would fight over
/// the same maps: refuse to start.
pub fn refuse_if_running(socket: &Path) -> anyhow::Result<()> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        bail!(
            "another lbd is serving {} (stop it first, or use another admin_socket and pin_path)",
            socket.display()
        );
    }
    Ok(())
}

/// The bound admin socket, bound before lbd programs anything: a socket
/// that cannot be bound stops lbd at once.
pub struct AdminServer {
    listener: UnixListener,
}

/// Binds `socket` (mode 0600). Must run inside the tokio runtime's context.
pub fn bind(socket: &Path) -> anyhow::Result<AdminServer> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket file left by a killed lbd: nobody answers on it (checked at
    // startup), so it can go.
    let _ = std::fs::remove_file(socket);
    let listener =
        UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(AdminServer { listener })
}

/// Serves admin connections and the owner's requests until it asks to stop
/// (or drops every trigger); then tells the controller to stop.
pub async fn serve(server: AdminServer, mut shutdown: Shutdown, events: mpsc::Sender<Event>) {
    let AdminServer { listener } = server;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let events = events.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_one(stream, events).await {
                            tracing::debug!(error = %e, "admin connection");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accepting an admin connection"),
            },
            signal = shutdown.0.recv() => match signal {
                Some(Signal::Reload) => {
                    tracing::info!("reloading the config (SIGHUP)");
                    let _ = events.send(Event::Reload);
                }
                Some(Signal::Stop) | None => break,
            },
        }
    }
    tracing::info!("stopping: no more admin requests");
    let _ = events.send(Event::Shutdown);
}

async fn serve_one(stream: UnixStream, events: mpsc::Sender<Event>) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await??;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let (reply, answer) = oneshot::channel();
            if events.send(Event::Admin(request, reply)).is_err() {
                Response::failure("lbd is shutting down")
            } else {
                answer
                    .await
                    .unwrap_or_else(|_| Response::failure("lbd is shutting down"))
            }
        }
        Err(e) => Response::failure(format!("bad request: {e}")),
    };
    let mut text = serde_json::to_string(&response)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await?;
    Ok(())
}
