//! HTTP on `api_listen`: `/metrics`, `/ready`, `/healthz`, `/stats` (and
//! `/stats.json`), served by hyper's HTTP/1 server (GET and HEAD, one request per
//! connection, a head of at most 16 KiB read within 5 s), each request answered from
//! the status the owner task publishes every second; it never touches the maps
//! itself.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch};

use super::{AgentError, metrics, page};
use crate::{config::StatsAuth, status::Status, tasks::Tasks};

/// Largest request head read (hyper's buffer; it answers 431 beyond).
const MAX_HEAD: usize = 16 * 1024;
/// Time to send the request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection is kept, whatever it does.
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

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
    let expected: Arc<Option<String>> =
        Arc::new(auth.map(|a| format!("{}:{}", a.user, a.password)));
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
            let status = status.clone();
            let expected = Arc::clone(&expected);
            connections.spawn("http connection", async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let now = Arc::clone(&status.borrow());
                    let reply = answer(&req, &now, expected.as_deref());
                    async move { Ok::<_, Infallible>(reply) }
                });
                let conn = http1::Builder::new()
                    .keep_alive(false)
                    .max_buf_size(MAX_HEAD)
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIMIT, conn).await;
            });
        }
    });
    Ok(())
}

fn reply(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const PLAIN: &str = "text/plain; charset=utf-8";

fn answer(
    req: &Request<Incoming>,
    status: &Arc<Status>,
    auth: Option<&str>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "only GET\n".into());
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let path = req.uri().path();
    match path {
        "/healthz" => reply(StatusCode::OK, PLAIN, "ok\n".into()),
        "/ready" => match status.readiness() {
            Ok(why) => reply(StatusCode::OK, PLAIN, format!("ready: {why}\n")),
            Err(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => {
            let openmetrics = metrics::wants_openmetrics(text(header::ACCEPT));
            reply(
                StatusCode::OK,
                if openmetrics {
                    metrics::OPENMETRICS
                } else {
                    metrics::PROMETHEUS_TEXT
                },
                metrics::render(status, openmetrics),
            )
        }
        "/stats" | "/stats.json" | "/" => {
            if let Some(want) = auth
                && !credentials_match(text(header::AUTHORIZATION), want)
            {
                let mut r = reply(
                    StatusCode::UNAUTHORIZED,
                    PLAIN,
                    "authentication required\n".into(),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"lb-agent stats\""),
                );
                return r;
            }
            if path == "/stats.json" {
                reply(
                    StatusCode::OK,
                    "application/json",
                    serde_json::to_string(status.as_ref()).unwrap_or_default(),
                )
            } else {
                reply(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    page::render(status),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            PLAIN,
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
