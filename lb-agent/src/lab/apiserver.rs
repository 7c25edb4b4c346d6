//! A stand-in for kube-apiserver in a lab namespace: HTTPS on a node's address,
//! `GET /readyz` answers "ok" (what the agents' https checks ask), every other path
//! answers the server's name (what clients tally). One thread per connection, TLS
//! by rustls with a self-signed certificate. Stops on drop.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::{LabError, Netns};

/// A self-signed certificate for `name`: the server settings and the certificate
/// PEM (what a `ca_file` would hold).
pub fn self_signed(name: &str) -> Result<(Arc<rustls::ServerConfig>, String), LabError> {
    let bad = |what: &str, e: String| LabError::Command {
        command: format!("self-signed certificate for {name}: {what}"),
        stderr: e,
    };
    let ck = rcgen::generate_simple_self_signed(vec![name.into()])
        .map_err(|e| bad("generate", e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("versions", e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .map_err(|e| bad("server settings", e.to_string()))?;
    Ok((Arc::new(config), ck.cert.pem()))
}

/// A running stand-in; stopped and joined on drop.
pub struct ApiServer {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Serves HTTPS on `addr` inside `ns`, answering with `name`.
    pub fn spawn(
        ns: &Netns,
        addr: SocketAddr,
        name: &str,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<Self, LabError> {
        let listener =
            ns.run(move || TcpListener::bind(addr))?
                .map_err(|source| LabError::Enter {
                    name: format!("{} (bind {addr})", ns.name()),
                    source,
                })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| LabError::Spawn {
                command: format!("api server on {addr}"),
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (flag, count, name) = (stop.clone(), served.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (tls, name, count) = (tls.clone(), name.clone(), count.clone());
                        std::thread::spawn(move || {
                            if serve(s, tls, &name).is_some() {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Ok(Self {
            stop,
            served,
            thread: Some(thread),
        })
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One TLS connection: one request, one answer.
fn serve(s: TcpStream, tls: Arc<rustls::ServerConfig>, name: &str) -> Option<()> {
    s.set_nonblocking(false).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let conn = rustls::ServerConnection::new(tls).ok()?;
    let mut stream = rustls::StreamOwned::new(conn, s);
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let path = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let body = if path == "/readyz" {
        "ok".to_string()
    } else {
        name.to_string()
    };
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}\n",
        body.len() + 1
    );
    stream.write_all(reply.as_bytes()).ok()?;
    stream.conn.send_close_notify();
    stream.flush().ok()
}

/// `GET /` over HTTPS on a new connection to `target` (any certificate accepted:
/// the lab checks where a connection lands, not whom to trust): the body, or why not.
pub fn https_get(
    target: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<String, String> {
    let s = TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let server = ServerName::try_from("apiserver.lab").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(tls.clone(), server).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, s);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: apiserver.lab\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => {}
        // A peer closing without close_notify after a whole answer is fine.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !reply.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let reply = String::from_utf8_lossy(&reply);
    match reply.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.trim().to_string()),
        Some((head, _)) => Err(format!("answer: {}", head.lines().next().unwrap_or(""))),
        None => Err("no answer".into()),
    }
}
