//! A real TCP client inside a lab namespace: opens connections one after another and
//! tallies the answers (each lab server answers with its name).

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use super::{LabError, Netns};

/// What a run of connections saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answer (server name) -> connections.
    pub answers: BTreeMap<String, u64>,
    /// Connections that failed (refused, timed out, reset, empty answer).
    pub failures: u64,
    /// First failure, for the report.
    pub first_failure: Option<String>,
    pub elapsed: Duration,
}

impl Tally {
    pub fn ok(&self) -> u64 {
        self.answers.values().sum()
    }
}

/// Opens `count` connections to `target` from inside `ns`, each read to the end.
pub fn connections(
    ns: &Netns,
    target: SocketAddr,
    count: u32,
    timeout: Duration,
) -> Result<Tally, LabError> {
    requests(ns, count, move || answer(target, timeout))
}

/// Runs `one` (a request on a new connection: the answer, or why not) `count`
/// times in a row from inside `ns`, and tallies the answers.
pub fn requests(
    ns: &Netns,
    count: u32,
    one: impl Fn() -> Result<String, String> + Send + 'static,
) -> Result<Tally, LabError> {
    let entry = ns.entry()?;
    let worker = std::thread::spawn(move || -> Result<Tally, LabError> {
        entry.enter()?;
        let start = Instant::now();
        let mut tally = Tally::default();
        for _ in 0..count {
            match one() {
                Ok(answer) => *tally.answers.entry(answer).or_default() += 1,
                Err(e) => {
                    tally.failures += 1;
                    tally.first_failure.get_or_insert(e);
                }
            }
        }
        tally.elapsed = start.elapsed();
        Ok(tally)
    });
    worker.join().map_err(|_| LabError::Command {
        command: "client requests".into(),
        stderr: "client thread panicked".into(),
    })?
}

/// One connection to `target`: the server's answer read to the end, or why not.
pub fn answer(target: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let answer = answer.trim().to_string();
    if answer.is_empty() {
        return Err("empty answer".into());
    }
    Ok(answer)
}

/// One HTTP GET of `/` on a new connection to `target`: the body, or why not.
pub fn http_get(target: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    match reply.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.trim().to_string()),
        Some((head, _)) => Err(format!(
            "answer: {}",
            head.lines().next().unwrap_or_default()
        )),
        None if reply.is_empty() => Err("empty answer".into()),
        None => Err("answer: not HTTP".into()),
    }
}
