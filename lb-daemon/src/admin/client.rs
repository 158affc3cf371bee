//! The client side: one request, one response.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    #[error("cannot reach lbd at {path}: {source} (is lbd running? is this the right --socket?)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to lbd at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lbd sent a reply that is not valid: {0}")]
    Protocol(String),
    /// lbd refused the request; the text is lbd's reason.
    #[error("{0}")]
    Refused(String),
}

/// Sends `request` and returns the response's data.
pub fn call(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<serde_json::Value, AdminClientError> {
    let io = |source| AdminClientError::Io {
        path: socket.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| AdminClientError::Connect {
        path: socket.to_owned(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line =
        serde_json::to_string(request).map_err(|e| AdminClientError::Protocol(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(io)?;
    let response: Response = serde_json::from_str(&reply)
        .map_err(|e| AdminClientError::Protocol(format!("{e}: {reply:?}")))?;
    if response.ok {
        Ok(response.data.unwrap_or(serde_json::Value::Null))
    } else {
        Err(AdminClientError::Refused(
            response
                .error
                .unwrap_or_else(|| "lbd refused without a reason".into()),
        ))
    }
}
