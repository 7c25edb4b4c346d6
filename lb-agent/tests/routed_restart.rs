//! A restart of the agent cuts no proxied connection: connections through a routed
//! VIP are open when the real agent gets SIGTERM; it exits at once, handing them to
//! `lb-agent hold-connections`, and they go on carrying bytes both ways (with the
//! bytes sent while no agent ran) while the next agent starts and takes new
//! connections; the holder exits when the last of them ends. The client is in its
//! own namespace across the lab's veths, the backend a line echo server. Needs root.

mod common;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{AgentLab, BACKENDS, VIP, eventually::eventually, servers::EchoServer};
use lb_agent::lab::lan_v4;

const PORT: u16 = 7000;

/// One routed VIP by Host; a short idle timeout, so a holder a failed run leaves
/// behind ends soon.
fn config() -> String {
    format!(
        "[[vip]]\nname = \"front\"\naddress = \"{}\"\nport = 80\nroute_by = \"host\"\n\
         otherwise = \"a\"\nidle_timeout = \"30s\"\n\
         [[vip.pool]]\nname = \"a\"\nnames = [\"a.lan\"]\n\
         [vip.pool.check]\ninterval = \"300ms\"\nrise = 1\n\
         [[vip.pool.backend]]\naddress = \"{}\"\nport = {PORT}\n",
        lan_v4(VIP),
        lan_v4(BACKENDS[0])
    )
}

/// A client connection kept open in the client's namespace: each request is a
/// line to send, each answer the line that came back (or the error).
struct Client {
    ask: mpsc::Sender<Option<String>>,
    answers: mpsc::Receiver<Result<String, String>>,
}

impl Client {
    fn open(lab: &AgentLab) -> Self {
        let entry = lab.client.ns.entry().expect("netns");
        let (ask, asked) = mpsc::channel::<Option<String>>();
        let (answer, answers) = mpsc::channel();
        std::thread::spawn(move || {
            entry.enter().expect("enter");
            let to = SocketAddr::new(lan_v4(VIP), 80);
            let run = || -> Result<(TcpStream, BufReader<TcpStream>), String> {
                let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))
                    .map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .map_err(|e| e.to_string())?;
                s.write_all(b"GET / HTTP/1.1\r\nHost: a.lan\r\n\r\n")
                    .map_err(|e| e.to_string())?;
                let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
                // One echo per line of the head.
                for _ in 0..3 {
                    let mut l = String::new();
                    r.read_line(&mut l).map_err(|e| e.to_string())?;
                }
                Ok((s, r))
            };
            let (mut s, mut r) = match run() {
                Ok(c) => c,
                Err(e) => {
                    let _ = answer.send(Err(e));
                    return;
                }
            };
            let _ = answer.send(Ok("open".into()));
            while let Ok(Some(line)) = asked.recv() {
                let got = (|| {
                    writeln!(s, "{line}").map_err(|e| e.to_string())?;
                    let mut l = String::new();
                    match r.read_line(&mut l) {
                        Ok(0) => Err("closed".to_string()),
                        Ok(_) => Ok(l.trim().to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                })();
                let _ = answer.send(got);
            }
        });
        let c = Self { ask, answers };
        let opened = c.answers.recv_timeout(Duration::from_secs(10));
        assert_eq!(opened, Ok(Ok("open".into())), "the connection opened");
        c
    }

    fn line(&self, text: &str) -> Result<String, String> {
        self.ask
            .send(Some(text.into()))
            .map_err(|e| e.to_string())?;
        self.answers
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?
    }

    fn close(self) {
        let _ = self.ask.send(None);
    }
}

/// Process ids of running `lb-agent hold-connections`.
fn holders() -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains("hold-connections") {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_restart_cuts_no_proxied_connection() {
    let mut lab = AgentLab::new();
    let _echo = EchoServer::spawn(
        &lab.backends[0].ns,
        SocketAddr::new(lan_v4(BACKENDS[0]), PORT),
        "b11",
    );
    lab.write_config(&config());
    lab.start();
    lab.wait_for("pool up", Duration::from_secs(10), |s| {
        s.vip("front/a").is_some_and(|v| v.up == 1)
    });
    let before = holders();
    let clients: Vec<Client> = (0..3).map(|_| Client::open(&lab)).collect();
    for c in &clients {
        assert_eq!(c.line("before"), Ok("b11".into()));
    }

    // SIGTERM: the agent exits at once (terminate waits for it), its connections
    // handed over.
    let stopping = Instant::now();
    lab.terminate();
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the agent took {took:?} to exit"
    );
    let log = lab.log();
    assert!(
        log.contains("3 proxied connection(s) go on in process"),
        "{log}"
    );
    let holding: Vec<u32> = holders()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(holding.len(), 1, "one holder: {holding:?}");

    // No agent runs: the connections still carry bytes both ways.
    for c in &clients {
        assert_eq!(c.line("while no agent runs"), Ok("b11".into()));
    }

    // The next agent listens again: new connections are served next to the old.
    lab.start();
    lab.wait_for("pool up again", Duration::from_secs(10), |s| {
        s.vip("front/a").is_some_and(|v| v.up == 1)
    });
    let fresh = Client::open(&lab);
    assert_eq!(fresh.line("new"), Ok("b11".into()));
    for c in &clients {
        assert_eq!(c.line("after"), Ok("b11".into()));
    }

    // The holder leaves once its last connection has ended.
    for c in clients {
        c.close();
    }
    eventually(
        "the holder leaves after its connections ended",
        Duration::from_secs(5),
        || !holders().iter().any(|p| holding.contains(p)),
    );
    assert!(
        lab.log().contains("the 3 handed-over connection(s) ended"),
        "{}",
        lab.log()
    );
    fresh.close();
}
