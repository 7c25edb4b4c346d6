//! Client traffic for agent labs: a steady stream of new connections, and a set of
//! long-lived connections that can be pinged.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use lb_agent::lab::{Netns, answer};

const TIMEOUT: Duration = Duration::from_secs(2);

/// What a stream of connections saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub answers: BTreeMap<String, u64>,
    pub failures: Vec<String>,
}

impl Seen {
    pub fn ok(&self) -> u64 {
        self.answers.values().sum()
    }
}

/// New connections to `target` one after another (each reads the server's name),
/// `pause` apart, until stopped.
pub struct Stream {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Seen>>,
}

impl Stream {
    pub fn start(ns: &Netns, target: SocketAddr, pause: Duration) -> Self {
        let entry = ns.entry().expect("netns");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            entry.enter().expect("enter");
            let mut seen = Seen::default();
            while !flag.load(Ordering::Relaxed) {
                match answer(target, TIMEOUT) {
                    Ok(a) => *seen.answers.entry(a).or_default() += 1,
                    Err(e) => seen.failures.push(e),
                }
                std::thread::sleep(pause);
            }
            seen
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("client thread")
    }
}

/// Long-lived connections to an echo service.
pub struct Persistent {
    conns: Vec<(TcpStream, BufReader<TcpStream>)>,
}

impl Persistent {
    /// Opens `n` connections from `ns` (the sockets stay in that namespace).
    pub fn open(ns: &Netns, target: SocketAddr, n: usize) -> Self {
        let conns = ns
            .run(move || {
                (0..n)
                    .map(|_| {
                        let s = TcpStream::connect_timeout(&target, TIMEOUT).expect("connect");
                        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                        let r = BufReader::new(s.try_clone().expect("clone"));
                        (s, r)
                    })
                    .collect()
            })
            .expect("client namespace");
        Self { conns }
    }

    /// Pings every connection: the backend name, or the error.
    pub fn ping(&mut self) -> Vec<Result<String, String>> {
        self.conns
            .iter_mut()
            .map(|(w, r)| {
                writeln!(w, "ping").map_err(|e| format!("write: {e}"))?;
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) => Err("closed".into()),
                    Ok(_) => Ok(line.trim().to_string()),
                    Err(e) => Err(format!("read: {e}")),
                }
            })
            .collect()
    }
}
