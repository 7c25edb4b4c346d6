//! New TCP connections per second: client threads in the generator's namespace, each
//! opening a connection, sending one HTTP/1.0 request, reading the answer to its end
//! and closing, over and over. Connect latency (SYN to established) and request time
//! (connect to last byte) are recorded per connection.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};
use lb_agent::lab::Netns;

const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Default)]
pub struct ConnResult {
    pub completed: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
    pub secs: f64,
    pub connect_p50_us: f64,
    pub connect_p99_us: f64,
    pub request_p50_us: f64,
    pub request_p99_us: f64,
}

impl ConnResult {
    pub fn per_s(&self) -> f64 {
        self.completed as f64 / self.secs.max(1e-9)
    }
}

/// What one client thread saw: connect and request times (µs), failures, the first.
#[derive(Default)]
struct Seen {
    connect: Vec<u32>,
    request: Vec<u32>,
    failed: u64,
    first: Option<String>,
}

/// Runs `threads` clients against `targets` (thread i uses target i mod n).
pub fn run(
    ns: &Netns,
    targets: &[SocketAddr],
    threads: usize,
    length: Duration,
) -> Result<ConnResult> {
    let start = Instant::now();
    let mut workers = Vec::new();
    for i in 0..threads {
        let entry = ns.entry()?;
        let target = targets[i % targets.len()];
        workers.push(std::thread::spawn(move || -> Result<Seen> {
            entry.enter()?;
            let mut seen = Seen::default();
            while start.elapsed() < length {
                match one(target) {
                    Ok((c, r)) => {
                        seen.connect.push(c);
                        seen.request.push(r);
                    }
                    Err(e) => {
                        seen.failed += 1;
                        seen.first.get_or_insert(e);
                    }
                }
            }
            Ok(seen)
        }));
    }
    let mut result = ConnResult::default();
    let (mut connect, mut request) = (Vec::new(), Vec::new());
    for w in workers {
        let seen = w.join().map_err(|_| anyhow!("client thread panicked"))??;
        connect.extend(seen.connect);
        request.extend(seen.request);
        result.failed += seen.failed;
        if result.first_failure.is_none() {
            result.first_failure = seen.first;
        }
    }
    result.secs = start.elapsed().as_secs_f64();
    result.completed = request.len() as u64;
    result.connect_p50_us = percentile(&mut connect, 0.50);
    result.connect_p99_us = percentile(&mut connect, 0.99);
    result.request_p50_us = percentile(&mut request, 0.50);
    result.request_p99_us = percentile(&mut request, 0.99);
    Ok(result)
}

/// One connection: (connect µs, request µs) or why it failed.
fn one(target: SocketAddr) -> Result<(u32, u32), String> {
    let t0 = Instant::now();
    let mut s =
        TcpStream::connect_timeout(&target, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let t1 = t0.elapsed();
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    if !buf.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "answer: {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(40)])
        ));
    }
    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    Ok((us(t1), us(t0.elapsed())))
}

/// The `q` quantile of `v` (sorted in place), 0 when empty.
pub fn percentile(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    f64::from(v[i])
}
