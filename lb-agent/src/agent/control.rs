//! The control socket: a Unix socket, mode 0600, and every peer's uid checked (root
//! only). One JSON request per line (see `protocol.rs`), answered by the owner task.

use std::{os::unix::fs::PermissionsExt as _, path::Path, time::Duration};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

use super::{
    AgentError, Ask,
    protocol::{Request, Response},
};
use crate::tasks::Tasks;

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// Fails when an agent already answers on `path`.
pub(super) async fn ensure_free(path: &Path) -> Result<(), AgentError> {
    if UnixStream::connect(path).await.is_ok() {
        return Err(AgentError::Refused(format!(
            "control socket {} answers: another agent runs with this config",
            path.display()
        )));
    }
    Ok(())
}

/// Serves the control socket on `tasks` (the accept loop and a task per session).
pub(super) async fn serve(
    path: &Path,
    asks: mpsc::Sender<Ask>,
    tasks: &Tasks,
) -> Result<(), AgentError> {
    let io = |what| {
        let path = path.to_path_buf();
        move |source| AgentError::Io { what, path, source }
    };
    ensure_free(path).await?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("removing the stale control socket")(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating the control socket's directory"))?;
    }
    let listener = UnixListener::bind(path).map_err(io("binding the control socket"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("restricting the control socket"))?;
    let sessions = tasks.clone();
    tasks.spawn("control socket", async move {
        let mut backoff = super::backoff::Backoff::default();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    stream
                }
                Err(e) => {
                    backoff.failed("control socket", &e).await;
                    continue;
                }
            };
            let asks = asks.clone();
            sessions.spawn("control session", async move {
                if let Err(e) = session(stream, asks).await {
                    tracing::debug!("control session: {e}");
                }
            });
        }
    });
    Ok(())
}

async fn session(stream: UnixStream, asks: mpsc::Sender<Ask>) -> std::io::Result<()> {
    let uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    let answer = if uid != 0 {
        Response::Error {
            message: format!("the control socket is for root only (you are uid {uid})"),
        }
    } else {
        let mut line = String::new();
        let mut reader = BufReader::new(read).take(MAX_REQUEST);
        tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .map_err(|_| std::io::Error::other("no request within 10 s"))??;
        match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
            Ok(req) => {
                let (tx, rx) = oneshot::channel();
                if asks.send((req, tx)).await.is_err() {
                    Response::Error {
                        message: "the agent is stopping".into(),
                    }
                } else {
                    rx.await.unwrap_or(Response::Error {
                        message: "the agent is stopping".into(),
                    })
                }
            }
        }
    };
    let mut out = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Sends one request to the agent at `path` (the CLI's side).
pub async fn ask(path: &Path, req: &Request) -> std::io::Result<Response> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut reply = String::new();
    BufReader::new(read).read_line(&mut reply).await?;
    serde_json::from_str(&reply).map_err(std::io::Error::other)
}
