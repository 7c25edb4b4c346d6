//! Checks against real servers on loopback: TCP listeners, a small HTTP server, the
//! same behind TLS with a self-signed certificate.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::mpsc,
    task::JoinHandle,
};

use super::*;

const TIMEOUT: Duration = Duration::from_millis(300);

fn tcp(addr: SocketAddr) -> ProbeSpec {
    ProbeSpec {
        addr,
        kind: ProbeKind::Tcp,
        timeout: TIMEOUT,
    }
}

fn tls_probe(config: Arc<rustls::ClientConfig>, name: &str) -> TlsProbe {
    TlsProbe {
        config,
        name: ServerName::try_from(name.to_string()).expect("name"),
    }
}

fn http(addr: SocketAddr, tls: Option<TlsProbe>) -> ProbeSpec {
    ProbeSpec {
        addr,
        kind: ProbeKind::Http(HttpProbe {
            path: "/healthz".into(),
            host: "backend.test".into(),
            expect_status: vec![200, 204],
            tls,
        }),
        timeout: TIMEOUT,
    }
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

/// Answers every request with `status`, or never answers when `status` is 0.
async fn http_server(
    status: u16,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let tls = tls.clone();
            tokio::spawn(async move {
                let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
                async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
                    mut s: S,
                    status: u16,
                    reply: String,
                ) {
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]);
                    assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
                    assert!(req.contains("\r\nHost: backend.test\r\n"), "{req}");
                    if status == 0 {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    let _ = s.write_all(reply.as_bytes()).await;
                }
                match tls {
                    Some(acceptor) => {
                        if let Ok(t) = acceptor.accept(s).await {
                            serve(t, status, reply).await;
                        }
                    }
                    None => serve(s, status, reply).await,
                }
            });
        }
    });
    (addr, task)
}

/// A self-signed certificate for "backend.test" and 127.0.0.1: the acceptor and the
/// certificate as PEM.
fn self_signed() -> (tokio_rustls::TlsAcceptor, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["backend.test".into(), "127.0.0.1".into()])
        .expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .expect("server config");
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ck.cert.pem(),
    )
}

#[tokio::test]
async fn tcp_checks_connect() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let ok = run(&tcp(l.local_addr().expect("addr"))).await;
    assert!(ok.ok && ok.reason == "L4 OK", "{ok}");
    let refused = run(&tcp(closed_port().await)).await;
    assert!(!refused.ok, "{refused}");
    assert_eq!(refused.reason, "L4 connection refused");
    assert!(
        refused
            .to_string()
            .starts_with("L4 connection refused after "),
        "{refused}"
    );
}

#[tokio::test]
async fn http_checks_want_an_expected_status_in_time() {
    let (good, _a) = http_server(204, None).await;
    let out = run(&http(good, None)).await;
    assert!(out.ok, "{out}");
    assert_eq!(out.reason, "L7 OK, status 204");
    let (bad, _b) = http_server(503, None).await;
    let out = run(&http(bad, None)).await;
    assert_eq!(
        (out.ok, out.reason.as_str()),
        (false, "L7 wrong status 503"),
        "{out}"
    );
    let (silent, _c) = http_server(0, None).await;
    let out = run(&http(silent, None)).await;
    assert_eq!(
        (out.ok, out.reason.as_str()),
        (false, "L7 timeout"),
        "{out}"
    );
    assert!(out.elapsed >= TIMEOUT && out.elapsed < TIMEOUT * 3, "{out}");
}

#[tokio::test]
async fn https_checks_verify_or_not_as_configured() {
    let (acceptor, pem) = self_signed();
    let (addr, _server) = http_server(200, Some(acceptor)).await;
    let unverified = client_config(false, None).expect("tls config");
    let out = run(&http(addr, Some(tls_probe(unverified, "backend.test")))).await;
    assert!(out.ok, "verification off: {out}");

    let dir = std::env::temp_dir().join(format!("lb-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pem).expect("write ca");
    let with_ca = client_config(true, Some(&ca)).expect("tls config with ca_file");
    let out = run(&http(
        addr,
        Some(tls_probe(with_ca.clone(), "backend.test")),
    ))
    .await;
    assert!(out.ok, "verified against ca_file: {out}");

    let out = run(&http(addr, Some(tls_probe(with_ca, "other.test")))).await;
    assert!(
        !out.ok && out.reason.starts_with("L6 TLS handshake failed"),
        "{out}"
    );

    let system = client_config(true, None).expect("tls config with system roots");
    let out = run(&http(addr, Some(tls_probe(system, "backend.test")))).await;
    assert!(
        !out.ok && out.reason.starts_with("L6 TLS handshake failed"),
        "self-signed against system roots: {out}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Completes TLS handshakes and then reads until the client closes (no HTTP).
async fn tls_server(acceptor: tokio_rustls::TlsAcceptor) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut t) = acceptor.accept(s).await {
                    let mut buf = [0u8; 64];
                    while matches!(t.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn tls_checks_want_a_handshake_and_nothing_more() {
    let (acceptor, pem) = self_signed();
    let (addr, _server) = tls_server(acceptor).await;
    let tls = |config, name| ProbeSpec {
        addr,
        kind: ProbeKind::Tls(tls_probe(config, name)),
        timeout: TIMEOUT,
    };
    let unverified = client_config(false, None).expect("tls config");
    let out = run(&tls(unverified.clone(), "backend.test")).await;
    assert_eq!(
        (out.ok, out.reason.as_str()),
        (true, "L6 OK, TLS handshake done"),
        "{out}"
    );

    let dir = std::env::temp_dir().join(format!("lb-ca-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pem).expect("write ca");
    let with_ca = client_config(true, Some(&ca)).expect("tls config with ca_file");
    let out = run(&tls(with_ca.clone(), "backend.test")).await;
    assert!(out.ok, "verified against ca_file: {out}");
    let out = run(&tls(with_ca, "other.test")).await;
    assert!(
        !out.ok && out.reason.starts_with("L6 TLS handshake failed"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // A listener that never answers (the kernel completes the connect): the
    // handshake times out.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let out = run(&ProbeSpec {
        addr: silent.local_addr().expect("addr"),
        kind: ProbeKind::Tls(tls_probe(unverified.clone(), "backend.test")),
        timeout: TIMEOUT,
    })
    .await;
    assert_eq!(
        (out.ok, out.reason.as_str()),
        (false, "L6 TLS handshake timeout"),
        "{out}"
    );
    let out = run(&ProbeSpec {
        addr: closed_port().await,
        kind: ProbeKind::Tls(tls_probe(unverified, "backend.test")),
        timeout: TIMEOUT,
    })
    .await;
    assert_eq!(
        (out.ok, out.reason.as_str()),
        (false, "L4 connection refused"),
        "{out}"
    );
}

#[tokio::test]
async fn a_checker_follows_a_backend_going_down_and_up() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let intervals = Intervals {
        interval: Duration::from_millis(100),
        fastinter: Duration::from_millis(50),
        downinter: Duration::from_millis(100),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tasks = crate::tasks::Tasks::new();
    let task = spawn(
        &tasks,
        "b1",
        tcp(addr),
        HealthState::fresh(2, 3),
        intervals,
        Duration::ZERO,
        tx,
    );
    let first = rx.recv().await.expect("report");
    assert!(first.up && !first.changed, "{first:?}");

    // Down: three failures, the first after at most one interval, then fastinter.
    drop(l);
    let t0 = tokio::time::Instant::now();
    let down = loop {
        let r = rx.recv().await.expect("report");
        if r.changed {
            break r;
        }
    };
    let took = t0.elapsed();
    assert!(
        !down.up && down.outcome.reason == "L4 connection refused",
        "{down:?}"
    );
    // interval x fall (+ one interval), as the issue asks.
    assert!(
        took <= intervals.interval * 3 + intervals.interval + Duration::from_millis(100),
        "down after {took:?}"
    );

    // Up again: two successes.
    let _l = TcpListener::bind(addr).await.expect("rebind");
    let up = loop {
        let r = rx.recv().await.expect("report");
        if r.changed {
            break r;
        }
    };
    assert!(up.up && up.outcome.ok, "{up:?}");
    tasks.cancel();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("checker stops")
        .expect("join");
}

/// A server that answers `reply` to whatever it is sent, then closes.
async fn raw_server(reply: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn http_checks_name_what_is_not_an_http_answer() {
    let (ssh, _a) = raw_server(b"SSH-2.0-OpenSSH_9.6\r\n").await;
    let out = run(&http(ssh, None)).await;
    assert_eq!(
        (out.ok, out.reason.as_str()),
        (false, "L7 invalid response"),
        "{out}"
    );
    let (silent, _b) = raw_server(b"").await;
    let out = run(&http(silent, None)).await;
    assert_eq!(
        (out.ok, out.reason.as_str()),
        (false, "L7 connection closed"),
        "{out}"
    );
    // An answer with a body: its status decides, the body is not waited for.
    let (ok, _c) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let out = run(&http(ok, None)).await;
    assert!(out.ok && out.reason == "L7 OK, status 200", "{out}");
}
