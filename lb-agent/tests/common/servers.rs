//! Servers for agent labs, inside a backend's namespace: an HTTP(S) health endpoint
//! and a line echo server for long-lived connections. Both stop on drop.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use lb_agent::lab::Netns;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A self-signed certificate for `name`: the server config and the certificate PEM
/// (the agent's `ca_file`).
pub fn self_signed(name: &str) -> (Arc<rustls::ServerConfig>, String) {
    lb_agent::lab::self_signed(name).expect("certificate")
}

/// HTTP (or HTTPS with `tls`) answering every GET with 200.
pub struct WebServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WebServer {
    pub fn spawn(ns: &Netns, addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let entry = ns.entry().expect("netns");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            entry.enter().expect("enter");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind(addr).await.expect("bind web");
                let _ = ready_tx.send(());
                let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
                let serve = async {
                    loop {
                        let Ok((s, _)) = l.accept().await else {
                            continue;
                        };
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            match acceptor {
                                Some(a) => {
                                    if let Ok(t) = a.accept(s).await {
                                        answer(t).await;
                                    }
                                }
                                None => answer(s).await,
                            }
                        });
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = stopped => {}
                }
            });
        });
        ready
            .recv_timeout(Duration::from_secs(5))
            .expect("web server up");
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        .await;
    let _ = s.shutdown().await;
}

impl Drop for WebServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers every line of every connection with its name: long-lived connections
/// that show which backend serves them.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn spawn(ns: &Netns, addr: SocketAddr, name: &str) -> Self {
        let entry = ns.entry().expect("netns");
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, name) = (stop.clone(), name.to_string());
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            entry.enter().expect("enter");
            let l = TcpListener::bind(addr).expect("bind echo");
            l.set_nonblocking(true).expect("nonblocking");
            let _ = ready_tx.send(());
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let name = name.clone();
                        let _ = s.set_nonblocking(false);
                        std::thread::spawn(move || {
                            let Ok(mut w) = s.try_clone() else {
                                return;
                            };
                            for line in BufReader::new(s).lines() {
                                if line.is_err() || writeln!(w, "{name}").is_err() {
                                    return;
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(5))
            .expect("echo server up");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
