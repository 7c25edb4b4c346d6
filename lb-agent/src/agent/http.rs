//! HTTP on `api_listen`: `/metrics`, `/ready`, `/healthz`, `/stats` (and
//! `/stats.json`). A small HTTP/1.1 server (GET only, one request per connection)
//! reading the status the owner task publishes every second; it never touches the
//! maps itself.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use super::{AgentError, metrics, page};
use crate::{config::StatsAuth, status::Status, tasks::Tasks};

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Serves `api_listen` on `tasks` (the accept loop and a task per connection).
pub(super) async fn serve(
    addr: SocketAddr,
    auth: Option<StatsAuth>,
    status: watch::Receiver<Arc<Status>>,
    tasks: &Tasks,
) -> Result<(), AgentError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Io {
            what: "binding api_listen",
            path: addr.to_string().into(),
            source,
        })?;
    let expected = auth.map(|a| format!("{}:{}", a.user, a.password));
    let connections = tasks.clone();
    tasks.spawn("http", async move {
        let mut backoff = super::backoff::Backoff::default();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    stream
                }
                Err(e) => {
                    backoff.failed("http", &e).await;
                    continue;
                }
            };
            let status = status.borrow().clone();
            let expected = expected.clone();
            connections.spawn("http connection", async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    answer(stream, &status, expected.as_deref()),
                )
                .await;
            });
        }
    });
    Ok(())
}

struct Reply {
    code: u16,
    content_type: &'static str,
    body: String,
    extra: &'static str,
}

fn text(code: u16, body: String) -> Reply {
    Reply {
        code,
        content_type: "text/plain; charset=utf-8",
        body,
        extra: "",
    }
}

async fn answer(mut s: TcpStream, status: &Status, auth: Option<&str>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 || head.len() > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    let path = target.split('?').next().unwrap_or("");
    let reply = if method != "GET" && method != "HEAD" {
        text(405, "only GET\n".into())
    } else {
        route(path, status, auth, authorization.as_deref())
    };
    let reason = match reply.code {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let body = if method == "HEAD" { "" } else { &reply.body };
    let out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{}\r\n{body}",
        reply.code,
        reply.content_type,
        reply.body.len(),
        reply.extra,
    );
    s.write_all(out.as_bytes()).await?;
    s.shutdown().await
}

fn route(path: &str, status: &Status, auth: Option<&str>, given: Option<&str>) -> Reply {
    match path {
        "/healthz" => text(200, "ok\n".into()),
        "/ready" => match status.readiness() {
            Ok(why) => text(200, format!("ready: {why}\n")),
            Err(why) => text(503, format!("not ready: {why}\n")),
        },
        "/metrics" => Reply {
            code: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics::render(status),
            extra: "",
        },
        "/stats" | "/stats.json" | "/" => {
            if let Some(want) = auth
                && !credentials_match(given, want)
            {
                return Reply {
                    code: 401,
                    content_type: "text/plain; charset=utf-8",
                    body: "authentication required\n".into(),
                    extra: "WWW-Authenticate: Basic realm=\"lb-agent stats\"\r\n",
                };
            }
            if path == "/stats.json" {
                Reply {
                    code: 200,
                    content_type: "application/json",
                    body: serde_json::to_string(status).unwrap_or_default(),
                    extra: "",
                }
            } else {
                Reply {
                    code: 200,
                    content_type: "text/html; charset=utf-8",
                    body: page::render(status),
                    extra: "",
                }
            }
        }
        _ => text(
            404,
            "not found: try /metrics, /ready, /healthz, /stats\n".into(),
        ),
    }
}

/// Whether an `Authorization` header value carries `user:password` (`want`) with the
/// Basic scheme: the scheme's name in any case, the credentials decoded as standard
/// base64 and compared in constant time (a wrong guess takes as long whatever it
/// shares with the password).
fn credentials_match(given: Option<&str>, want: &str) -> bool {
    use base64::Engine as _;
    use subtle::ConstantTimeEq as _;
    let Some((scheme, coded)) = given.and_then(|g| g.trim().split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(coded.trim()) else {
        return false;
    };
    bool::from(decoded.ct_eq(want.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::credentials_match;

    #[test]
    fn basic_credentials_are_decoded_and_compared() {
        // "admin:s3cret" and "admin:s3creT" in base64 (RFC 7617's form).
        let want = "admin:s3cret";
        assert!(credentials_match(Some("Basic YWRtaW46czNjcmV0"), want));
        assert!(credentials_match(Some("basic YWRtaW46czNjcmV0"), want));
        assert!(!credentials_match(Some("Basic YWRtaW46czNjcmVU"), want));
        assert!(!credentials_match(Some("Bearer YWRtaW46czNjcmV0"), want));
        assert!(!credentials_match(Some("Basic not-base64!"), want));
        assert!(!credentials_match(Some("Basic"), want));
        assert!(!credentials_match(None, want));
    }
}
