//! One health check: TCP connect, a TLS handshake, or an HTTP(S) GET with an
//! expected status.
//! Outcomes name the layer like HAProxy's (`L4 connection refused`, `L6 TLS ...`,
//! `L7 wrong status 503`) and how long the check took.

use std::{
    fmt,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::Empty;
use hyper::{Request, body::Bytes, client::conn::http1, header};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, pki_types::ServerName};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt as _},
    net::TcpStream,
    time::timeout,
};
use tokio_rustls::TlsConnector;

/// What to check and how.
#[derive(Clone, Debug)]
pub struct ProbeSpec {
    pub addr: SocketAddr,
    pub kind: ProbeKind,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub enum ProbeKind {
    Tcp,
    /// Connect and complete a TLS handshake, then close.
    Tls(TlsProbe),
    Http(HttpProbe),
}

/// TLS settings and the server name sent.
#[derive(Clone, Debug)]
pub struct TlsProbe {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

#[derive(Clone, Debug)]
pub struct HttpProbe {
    pub path: String,
    /// Host header.
    pub host: String,
    pub expect_status: Vec<u16>,
    /// Some for https.
    pub tls: Option<TlsProbe>,
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub elapsed: Duration,
    /// e.g. "L4 connection refused", "L7 OK, status 200".
    pub reason: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} after {} ms", self.reason, self.elapsed.as_millis())
    }
}

/// Runs one check.
pub async fn run(spec: &ProbeSpec) -> Outcome {
    let start = Instant::now();
    let result = attempt(spec, start).await;
    let elapsed = start.elapsed();
    match result {
        Ok(reason) => Outcome {
            ok: true,
            elapsed,
            reason,
        },
        Err(reason) => Outcome {
            ok: false,
            elapsed,
            reason,
        },
    }
}

fn left(spec: &ProbeSpec, start: Instant) -> Duration {
    spec.timeout.saturating_sub(start.elapsed())
}

async fn attempt(spec: &ProbeSpec, start: Instant) -> Result<String, String> {
    let tcp = match timeout(spec.timeout, TcpStream::connect(spec.addr)).await {
        Err(_) => return Err("L4 timeout".into()),
        Ok(Err(e)) => return Err(format!("L4 {}", io_reason(&e))),
        Ok(Ok(s)) => s,
    };
    match &spec.kind {
        ProbeKind::Tcp => Ok("L4 OK".into()),
        ProbeKind::Tls(t) => {
            let mut tls = handshake(tcp, t, spec, start).await?;
            // A polite close; the check's verdict is the handshake.
            let _ = timeout(left(spec, start), tls.shutdown()).await;
            Ok("L6 OK, TLS handshake done".into())
        }
        ProbeKind::Http(http) => match &http.tls {
            None => exchange(tcp, http, spec, start).await,
            Some(t) => {
                let tls = handshake(tcp, t, spec, start).await?;
                exchange(tls, http, spec, start).await
            }
        },
    }
}

async fn handshake(
    tcp: TcpStream,
    t: &TlsProbe,
    spec: &ProbeSpec,
    start: Instant,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let connector = TlsConnector::from(t.config.clone());
    match timeout(left(spec, start), connector.connect(t.name.clone(), tcp)).await {
        Err(_) => Err("L6 TLS handshake timeout".into()),
        Ok(Err(e)) => Err(format!("L6 TLS handshake failed: {e}")),
        Ok(Ok(s)) => Ok(s),
    }
}

/// The GET over `s` with hyper's HTTP/1 client: the verdict is the response's
/// status (its body is not read).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    s: S,
    http: &HttpProbe,
    spec: &ProbeSpec,
    start: Instant,
) -> Result<String, String> {
    let request = Request::get(http.path.as_str())
        .header(header::HOST, http.host.as_str())
        .header(header::USER_AGENT, "lb-agent-check")
        .header(header::ACCEPT, "*/*")
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("L7 invalid request: {e}"))?;
    let io = async {
        // Header names as HAProxy's checks write them (`Host:`): some backends'
        // checks match them that way.
        let (mut sender, connection) = http1::Builder::new()
            .title_case_headers(true)
            .handshake(TokioIo::new(s))
            .await?;
        // The connection is driven here, beside the request, until the response's
        // head has come.
        tokio::pin!(connection);
        let response = sender.send_request(request);
        tokio::pin!(response);
        let head = tokio::select! {
            r = &mut response => r,
            done = &mut connection => {
                // The connection ended first: the request's own result says why.
                done?;
                response.await
            }
        };
        head.map(|r| r.status().as_u16())
    };
    let status = match timeout(left(spec, start), io).await {
        Err(_) => return Err("L7 timeout".into()),
        Ok(Err(e)) => return Err(l7_reason(&e)),
        Ok(Ok(code)) => code,
    };
    if http.expect_status.contains(&status) {
        Ok(format!("L7 OK, status {status}"))
    } else {
        Err(format!("L7 wrong status {status}"))
    }
}

/// A failed exchange, as HAProxy would name it.
fn l7_reason(e: &hyper::Error) -> String {
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io {
        Some(io) => format!("L7 {}", io_reason(io)),
        None if e.is_parse() => "L7 invalid response".to_string(),
        None if e.is_incomplete_message() || e.is_canceled() => "L7 connection closed".to_string(),
        None => format!("L7 {e}"),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        UnexpectedEof => "connection closed".into(),
        _ => e.to_string(),
    }
}
