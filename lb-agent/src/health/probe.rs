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

use rustls::{ClientConfig, pki_types::ServerName};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
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

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    http: &HttpProbe,
    spec: &ProbeSpec,
    start: Instant,
) -> Result<String, String> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lb-agent-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        http.path, http.host
    );
    let io = async {
        s.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(buf)
    };
    let buf = match timeout(left(spec, start), io).await {
        Err(_) => return Err("L7 timeout".into()),
        Ok(Err(e)) => return Err(format!("L7 {}", io_reason(&e))),
        Ok(Ok(b)) => b,
    };
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    let status = match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => code,
        _ => return Err(format!("L7 invalid response {:?}", truncate(line, 40))),
    };
    if http.expect_status.contains(&status) {
        Ok(format!("L7 OK, status {status}"))
    } else {
        Err(format!("L7 wrong status {status}"))
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

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
