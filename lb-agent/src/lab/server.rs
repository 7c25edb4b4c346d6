//! A real TCP server inside a lab namespace: answers every connection with its name
//! and closes, either at once (a banner) or as an HTTP server answering a request
//! with its name as the body. Runs on a thread that entered the namespace; stops on
//! drop.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use super::{LabError, Netns};

/// A running server; stopped and joined on drop.
pub struct TcpServer {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// How a server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// Its name and a newline, at once.
    Banner,
    /// An HTTP/1.1 200 with its name and a newline as the body, after the request.
    Http,
}

impl TcpServer {
    /// Listens on `addr` inside `ns`; every client gets `reply` followed by a newline.
    pub fn spawn(ns: &Netns, addr: SocketAddr, reply: &str) -> Result<Self, LabError> {
        Self::start(ns, addr, reply, Style::Banner)
    }

    /// An HTTP server on `addr` inside `ns`: every request gets 200 with body `name`
    /// followed by a newline (health checks and the demo's clients).
    pub fn web(ns: &Netns, addr: SocketAddr, name: &str) -> Result<Self, LabError> {
        Self::start(ns, addr, name, Style::Http)
    }

    fn start(ns: &Netns, addr: SocketAddr, reply: &str, style: Style) -> Result<Self, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns_name = ns.name().to_string();
        let reply = match style {
            Style::Banner => format!("{reply}\n"),
            Style::Http => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{reply}\n",
                reply.len() + 1
            ),
        };
        let (stop2, served2) = (stop.clone(), served.clone());
        let enter = ns.entry()?;
        let thread = std::thread::spawn(move || {
            let listener = enter
                .enter()
                .and_then(|()| {
                    TcpListener::bind(addr).map_err(|source| LabError::Enter {
                        name: format!("{ns_name} (bind {addr})"),
                        source,
                    })
                })
                .and_then(|l| {
                    l.set_nonblocking(true).map_err(|source| LabError::Enter {
                        name: ns_name.clone(),
                        source,
                    })?;
                    Ok(l)
                });
            let listener = match listener {
                Ok(l) => {
                    let _ = ready_tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        // A banner answers at once (clients send nothing); HTTP
                        // after the request's header.
                        let _ = s.set_nonblocking(false);
                        if style == Style::Http && !read_request(&mut s) {
                            continue;
                        }
                        if s.write_all(reply.as_bytes()).is_ok() {
                            served2.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Self {
                stop,
                served,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LabError::Command {
                command: format!("server on {addr}"),
                stderr: "did not start within 5 s".into(),
            }),
        }
    }

    /// Connections answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request up to the end of its header (1 s at most); false when the client
/// went away or sent too much.
fn read_request(s: &mut std::net::TcpStream) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 16 * 1024 {
            return false;
        }
    }
    true
}

/// A real UDP server inside a lab namespace: answers every datagram with its name,
/// from the address it was sent to. Stops on drop.
pub struct UdpServer {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl UdpServer {
    pub fn spawn(ns: &Netns, addr: SocketAddr, name: &str) -> Result<Self, LabError> {
        // A socket stays in the namespace it was made in.
        let socket = ns
            .run(move || std::net::UdpSocket::bind(addr))?
            .map_err(|source| LabError::Enter {
                name: format!("{} (bind udp {addr})", ns.name()),
                source,
            })?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|source| LabError::Spawn {
                command: format!("udp server on {addr}"),
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (flag, count, reply) = (stop.clone(), served.clone(), name.as_bytes().to_vec());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((_, from)) = socket.recv_from(&mut buf)
                    && socket.send_to(&reply, from).is_ok()
                {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Self {
            stop,
            served,
            thread: Some(thread),
        })
    }

    /// Datagrams answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
