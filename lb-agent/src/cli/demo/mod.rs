//! `lb-agent demo`: the load balancer at work in a lab of network namespaces.
//!
//! A client, two LB nodes each running the real agent (`lb-agent run`, XDP in native
//! mode, VRRP with 100 ms adverts) and three web backends on one LAN. The client
//! sends HTTP requests to the VIP on new connections all along; a live view shows
//! which node holds the VIP, each backend's health and share, and rates. The script:
//! steady traffic, a backend's web server stops and comes back, the master loses
//! power and comes back. What it measured is printed at the end. Ctrl-C stops it at
//! any point; every namespace, agent, pin and server is removed on the way out.
//!
//! `--stacked` runs the stacked control plane instead (examples/k8s-api.toml): three
//! nodes, each an LB node, an API server (HTTPS stand-in) and a client, plus a
//! client outside; the holder's own API server stops and comes back, then the
//! holder loses power and comes back.
//!
//! With `--config FILE` it runs the agent for real instead (as `lb-agent run`).

mod lab;
mod load;
mod view;
mod watch;

use std::{
    io::{IsTerminal as _, Write as _},
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use lab::{DemoLab, Layout};
use lb_agent::lab::{Netns, http_get, https_get, lan_v4};
use load::Load;
use watch::NodeSeen;

/// How often the view is redrawn and the agents asked.
const TICK: Duration = Duration::from_millis(250);
/// Summary lines in plain mode, every this many ticks.
const LINE_EVERY: u32 = 8;

#[derive(Args)]
pub struct DemoArgs {
    /// Run the agent for real with this config instead of the lab (as `lb-agent run`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Forwarding mode of the demo VIP.
    #[arg(long, value_enum, default_value_t = Mode::Nat)]
    forwarding: Mode,
    /// Seconds each step of the script lasts (at least 2).
    #[arg(long, default_value_t = 8)]
    step_seconds: u64,
    /// After the script, keep the lab running until Ctrl-C (try the CLI on it).
    #[arg(long)]
    keep: bool,
    /// Print events and a summary line every 2 s instead of redrawing the screen
    /// (the default when the output is not a terminal).
    #[arg(long)]
    plain: bool,
    /// The stacked control plane: three nodes, each LB node, API server and client.
    #[arg(long)]
    stacked: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Nat,
    Dsr,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Dsr => "dsr",
        }
    }
}

pub fn run(args: &DemoArgs) -> Result<()> {
    if let Some(config) = &args.config {
        let path = std::path::absolute(config)?;
        lb_agent::agent::run(&path, None)?;
        return Ok(());
    }
    if args.step_seconds < 2 {
        bail!(
            "--step-seconds must be at least 2 (got {})",
            args.step_seconds
        );
    }
    if !is_root() {
        bail!("the demo builds network namespaces and attaches XDP: run it as root");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    let exe = std::env::current_exe().context("cannot find the lb-agent executable")?;
    let layout = if args.stacked {
        println!(
            "building the lab: 3 nodes, each an LB node, an API server and a client, and a \
             client outside, on one LAN (network namespaces)"
        );
        Layout::Stacked
    } else {
        println!(
            "building the lab: a client, 2 LB nodes, 3 web backends on one LAN (network namespaces)"
        );
        Layout::Classic
    };
    let lab = DemoLab::build(layout, args.forwarding.name(), &exe)?;
    for n in &lab.nodes {
        println!(
            "  {} config: {}   (try: lb-agent status --config {})",
            lab::node_name(n.lb.index),
            n.config.display(),
            n.config.display()
        );
    }
    let mut demo = Demo::new(lab, args, stop)?;
    let outcome = demo.script();
    // Show the last frame and the results whatever happened, then clean up.
    demo.finish(&outcome);
    println!("cleaning up: agents, pins, servers and namespaces are removed");
    drop(demo);
    outcome.map(|_| ())
}

/// Whether this process runs as root (`/proc/self` belongs to its effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether the script ran to its end or was stopped by Ctrl-C.
enum Ended {
    Done,
    Interrupted,
}

struct Demo {
    lab: DemoLab,
    /// The clients, by name; the first is outside the LB nodes.
    loads: Vec<(String, Load)>,
    client_tls: Arc<rustls::ClientConfig>,
    rt: tokio::runtime::Runtime,
    started: Instant,
    stop: Arc<AtomicBool>,
    forwarding: &'static str,
    step: Duration,
    keep: bool,
    screen: bool,
    ticks: u32,
    phase: String,
    next: String,
    nodes: Vec<NodeSeen>,
    /// Nodes whose power is off (their agent is expected down).
    off: Vec<bool>,
    /// Nodes whose agent was started (and is expected to run unless off).
    spawned: Vec<bool>,
    events: Vec<(f64, String)>,
    results: Vec<String>,
}

impl Demo {
    fn new(lab: DemoLab, args: &DemoArgs, stop: Arc<AtomicBool>) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let nodes = lab
            .nodes
            .iter()
            .map(|n| NodeSeen {
                name: lab::node_name(n.lb.index),
                address: n.lb.v4().to_string(),
                agent: "stopped",
                status: None,
            })
            .collect();
        let client_tls =
            lb_agent::health::client_config(false, None).context("TLS client settings")?;
        Ok(Self {
            off: vec![false; lab.nodes.len()],
            spawned: vec![false; lab.nodes.len()],
            lab,
            loads: Vec::new(),
            client_tls,
            rt,
            started: Instant::now(),
            stop,
            forwarding: args.forwarding.name(),
            step: Duration::from_secs(args.step_seconds),
            keep: args.keep,
            screen: !args.plain && std::io::stdout().is_terminal(),
            ticks: 0,
            phase: String::new(),
            next: String::new(),
            nodes,
            events: Vec::new(),
            results: Vec::new(),
        })
    }

    fn script(&mut self) -> Result<Ended> {
        match self.lab.layout {
            Layout::Classic => self.script_classic(),
            Layout::Stacked => self.script_stacked(),
        }
    }

    fn script_classic(&mut self) -> Result<Ended> {
        let layout = self.lab.layout;
        let nodes = layout.nodes();
        let b = layout.backends()[1];
        let victim = format!("{}", lan_v4(b));
        let (first, second) = (lab::node_name(nodes[0].0), lab::node_name(nodes[1].0));
        self.set(
            "starting both agents",
            &format!("{first} (priority {}) should win the VIP", nodes[0].1),
        );
        for i in 0..self.lab.nodes.len() {
            self.spawn(i)?;
        }
        let Some(took) = self.until(Duration::from_secs(30), |d| {
            d.nodes.iter().all(|n| n.status.is_some()) && d.nodes[0].is_master()
        })?
        else {
            return Ok(Ended::Interrupted);
        };
        self.result(format!(
            "both agents up and {first} MASTER {:.1} s after start",
            took.as_secs_f64()
        ));
        let target = SocketAddr::new(lab::vip(), layout.port());
        self.start_load("client", None, move || {
            http_get(target, Duration::from_millis(50))
        })?;

        self.set(
            "steady traffic: new connections spread over the three backends by Maglev",
            &format!("the web server on {victim} stops"),
        );
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }

        self.set(
            &format!("the web server on {victim} stopped: its health check fails"),
            &format!("{victim} comes back"),
        );
        self.mark();
        self.lab.stop_server(1);
        let Some(took) = self.until(Duration::from_secs(10), |d| {
            d.owner_backend_health(&victim) == Some("down")
        })?
        else {
            return Ok(Ended::Interrupted);
        };
        let failed_before = self.failed();
        self.result(format!(
            "backend {victim} marked DOWN {} ms after its server stopped (check every {} ms, fall {})",
            took.as_millis(),
            lab::CHECK_INTERVAL_MS,
            lab::FALL
        ));
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }
        self.result(format!(
            "after that, requests failed: {} (connections the stopped server refused \
             before the check noticed: {failed_before})",
            self.failed() - failed_before
        ));

        self.set(
            &format!(
                "{victim} serves again: it rejoins after {} good checks",
                lab::RISE
            ),
            &format!("{first}, the MASTER, loses power"),
        );
        self.lab.start_server(1)?;
        let Some(took) = self.until(Duration::from_secs(10), |d| {
            d.owner_backend_health(&victim) == Some("up")
        })?
        else {
            return Ok(Ended::Interrupted);
        };
        self.result(format!(
            "backend {victim} UP again {} ms after its server restarted",
            took.as_millis()
        ));
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }

        self.set(
            &format!("{first} lost power: {second} takes the VIP when the adverts stop"),
            &format!("{first} comes back"),
        );
        self.mark();
        let failed_before = self.failed();
        self.off[0] = true;
        self.lab.nodes[0].power_off()?;
        let Some(took) = self.until(Duration::from_secs(10), |d| d.nodes[1].is_master())? else {
            return Ok(Ended::Interrupted);
        };
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }
        self.result(format!(
            "{second} MASTER {} ms after {first} lost power (adverts every {} ms); the client's \
             longest wait between two answers: {} ms; requests failed: {}",
            took.as_millis(),
            lab::ADVERT_MS,
            self.gap().as_millis(),
            self.failed() - failed_before
        ));

        self.set(
            &format!("{first} back: its agent starts, re-adopts and preempts (higher priority)"),
            "the end",
        );
        self.mark();
        let failed_before = self.failed();
        self.lab.nodes[0].power_on();
        self.off[0] = false;
        self.spawn(0)?;
        let Some(took) = self.until(Duration::from_secs(30), |d| d.nodes[0].is_master())? else {
            return Ok(Ended::Interrupted);
        };
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }
        self.result(format!(
            "{first} MASTER again {:.1} s after its agent started; longest wait between two \
             answers: {} ms; requests failed: {}",
            took.as_secs_f64(),
            self.gap().as_millis(),
            self.failed() - failed_before
        ));
        if self.keep {
            self.set(
                "the script is over; the lab keeps running",
                "Ctrl-C removes it",
            );
            while self.tick()? {}
            return Ok(Ended::Interrupted);
        }
        Ok(Ended::Done)
    }

    fn script_stacked(&mut self) -> Result<Ended> {
        let layout = self.lab.layout;
        let nodes = layout.nodes();
        let names: Vec<String> = nodes.iter().map(|(i, _)| lab::node_name(*i)).collect();
        let (first, second) = (names[0].clone(), names[1].clone());
        let own = lan_v4(layout.backends()[0]).to_string();
        let api1 = layout.server_name(layout.backends()[0]);
        self.set(
            "starting the three agents",
            &format!("{first} (priority {}) should win the VIP", nodes[0].1),
        );
        for i in 0..self.lab.nodes.len() {
            self.spawn(i)?;
        }
        let Some(took) = self.until(Duration::from_secs(30), |d| {
            d.nodes.iter().all(|n| n.status.is_some()) && d.nodes[0].is_master()
        })?
        else {
            return Ok(Ended::Interrupted);
        };
        self.result(format!(
            "three agents up and {first} MASTER {:.1} s after start",
            took.as_secs_f64()
        ));
        let vip = SocketAddr::new(lab::vip(), layout.port());
        let local = SocketAddr::new(std::net::IpAddr::from([127, 0, 0, 1]), layout.port());
        self.start_https("outside -> VIP", None, vip)?;
        self.start_https(&format!("{first} -> VIP"), Some(0), vip)?;
        self.start_https(&format!("{second} -> 127.0.0.1"), Some(1), local)?;
        self.start_https(&format!("{} -> VIP", names[2]), Some(2), vip)?;

        self.set(
            &format!(
                "steady: the outside client reaches all three API servers through {first}'s \
                 XDP program ({first}'s own as a local backend); every node's own clients are \
                 balanced by its socket programs, to the VIP and to 127.0.0.1"
            ),
            &format!("{first}'s own API server stops"),
        );
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }

        self.set(
            &format!(
                "{first}'s API server stopped: every node's checks mark it down; the VIP stays \
                 on {first}, which keeps sending to the other two"
            ),
            &format!("{api1} comes back"),
        );
        self.mark();
        self.lab.stop_server(0);
        let Some(took) = self.until(Duration::from_secs(10), |d| {
            d.nodes
                .iter()
                .all(|n| backend_health(n, &own) == Some("down"))
        })?
        else {
            return Ok(Ended::Interrupted);
        };
        let failed_before = self.failed();
        self.result(format!(
            "{api1} marked DOWN by every node {} ms after it stopped (check every {} ms, fall \
             {}); {first} still holds the VIP",
            took.as_millis(),
            lab::CHECK_INTERVAL_MS,
            lab::FALL
        ));
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }
        self.result(format!(
            "after that, requests failed: {} (before the checks noticed: {failed_before}, \
             refused by the stopped server)",
            self.failed() - failed_before
        ));

        self.set(
            &format!(
                "{api1} serves again: it rejoins after {} good checks",
                lab::RISE
            ),
            &format!("{first}, the VIP holder, loses power"),
        );
        self.lab.start_server(0)?;
        let Some(took) = self.until(Duration::from_secs(10), |d| {
            d.nodes
                .iter()
                .all(|n| backend_health(n, &own) == Some("up"))
        })?
        else {
            return Ok(Ended::Interrupted);
        };
        self.result(format!(
            "{api1} UP again on every node {} ms after it restarted",
            took.as_millis()
        ));
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }

        self.set(
            &format!(
                "{first} lost power: {second} takes the VIP, the others' checks take {api1} \
                 out; the other nodes' clients and the outside one keep going"
            ),
            &format!("{first} comes back"),
        );
        // The powered-off node's own client goes down with it.
        self.loads
            .retain(|(who, _)| !who.starts_with(&format!("{first} ")));
        self.mark();
        let failed_before = self.failed();
        self.off[0] = true;
        self.lab.nodes[0].power_off()?;
        let Some(took) = self.until(Duration::from_secs(10), |d| d.nodes[1].is_master())? else {
            return Ok(Ended::Interrupted);
        };
        let Some(down) = self.until(Duration::from_secs(10), |d| {
            d.nodes[1..]
                .iter()
                .all(|n| backend_health(n, &own) == Some("down"))
        })?
        else {
            return Ok(Ended::Interrupted);
        };
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }
        self.result(format!(
            "{second} MASTER {} ms after {first} lost power (adverts every {} ms), {api1} \
             marked down {} ms later; the clients' longest wait between two answers: {} ms; \
             requests failed: {} (to {api1}, before the checks noticed)",
            took.as_millis(),
            lab::ADVERT_MS,
            down.as_millis(),
            self.gap().as_millis(),
            self.failed() - failed_before
        ));

        self.set(
            &format!("{first} back: its agent starts, re-adopts and preempts (higher priority)"),
            "the end",
        );
        self.mark();
        let failed_before = self.failed();
        self.lab.nodes[0].power_on();
        self.off[0] = false;
        self.spawn(0)?;
        let Some(took) = self.until(Duration::from_secs(30), |d| d.nodes[0].is_master())? else {
            return Ok(Ended::Interrupted);
        };
        self.start_https(&format!("{first} -> VIP"), Some(0), vip)?;
        if !self.hold()? {
            return Ok(Ended::Interrupted);
        }
        self.result(format!(
            "{first} MASTER again {:.1} s after its agent started; longest wait between two \
             answers: {} ms; requests failed: {}",
            took.as_secs_f64(),
            self.gap().as_millis(),
            self.failed() - failed_before
        ));
        self.keep_or_end()
    }

    /// With `--keep`, ticks until Ctrl-C; else the script is done.
    fn keep_or_end(&mut self) -> Result<Ended> {
        if self.keep {
            self.set(
                "the script is over; the lab keeps running",
                "Ctrl-C removes it",
            );
            while self.tick()? {}
            return Ok(Ended::Interrupted);
        }
        Ok(Ended::Done)
    }

    /// Starts a client named `who` on LB node `node` (`None`: the outside client).
    fn start_load(
        &mut self,
        who: &str,
        node: Option<usize>,
        request: impl Fn() -> Result<String, String> + Send + 'static,
    ) -> Result<()> {
        let ns: &Netns = match node {
            Some(i) => &self.lab.nodes[i].lb.ns,
            None => &self.lab.client.ns,
        };
        let load = Load::start(ns, request)?;
        self.loads.push((who.to_string(), load));
        Ok(())
    }

    /// A client of HTTPS GETs to `target` (an API server's answer is its name).
    fn start_https(&mut self, who: &str, node: Option<usize>, target: SocketAddr) -> Result<()> {
        let tls = self.client_tls.clone();
        self.start_load(who, node, move || {
            https_get(target, &tls, Duration::from_millis(300))
        })
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let exe = self.lab.exe.clone();
        self.lab.nodes[i].spawn(&exe)?;
        self.spawned[i] = true;
        Ok(())
    }

    /// Names the current step and the next one (an event too).
    fn set(&mut self, phase: &str, next: &str) {
        self.phase = phase.to_string();
        self.next = next.to_string();
        self.event(format!("== {phase}"));
    }

    fn event(&mut self, what: String) {
        let t = self.started.elapsed().as_secs_f64();
        if !self.screen {
            println!("  {t:>6.2} s  {what}");
        }
        self.events.push((t, what));
    }

    fn result(&mut self, what: String) {
        self.event(format!("measured: {what}"));
        self.results.push(what);
    }

    fn mark(&self) {
        for (_, l) in &self.loads {
            l.mark();
        }
    }

    /// Failed requests of every client so far.
    fn failed(&self) -> u64 {
        self.loads.iter().map(|(_, l)| l.view().failed).sum()
    }

    /// The longest wait between two answers of any client since `mark`.
    fn gap(&self) -> Duration {
        self.loads
            .iter()
            .map(|(_, l)| l.view().longest_gap)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// The health of backend `addr` as the VIP's owner sees it.
    fn owner_backend_health(&self, addr: &str) -> Option<&str> {
        backend_health(self.nodes.iter().find(|n| n.is_master())?, addr)
    }

    /// Ticks for one step's length; false when interrupted.
    fn hold(&mut self) -> Result<bool> {
        let end = Instant::now() + self.step;
        while Instant::now() < end {
            if !self.tick()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Ticks until `ok` holds: how long it took, `None` when interrupted; an error
    /// after `limit`.
    fn until(&mut self, limit: Duration, ok: impl Fn(&Self) -> bool) -> Result<Option<Duration>> {
        let start = Instant::now();
        loop {
            if !self.tick()? {
                return Ok(None);
            }
            if ok(self) {
                return Ok(Some(start.elapsed()));
            }
            if start.elapsed() > limit {
                bail!("{}: not done within {} s", self.phase, limit.as_secs());
            }
        }
    }

    /// One look at the agents and one frame; false when Ctrl-C was pressed.
    fn tick(&mut self) -> Result<bool> {
        std::thread::sleep(TICK);
        if self.stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let mut seen = Vec::new();
        for (i, node) in self.lab.nodes.iter_mut().enumerate() {
            let running = node.running();
            if !running && self.spawned[i] && !self.off[i] {
                let log = node.log();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "the agent on {} exited; its log ends:\n{}",
                    self.nodes[i].name,
                    tail.join("\n")
                );
            }
            // A running agent that answered before but not this time (a slow answer
            // on a loaded machine) keeps its last status: no event is invented or lost.
            let status = if running {
                watch::status(&self.rt, &node.socket())
                    .or_else(|| self.nodes[i].status.clone().filter(|_| self.spawned[i]))
            } else {
                None
            };
            let agent = match (self.off[i], running, status.is_some()) {
                (true, _, _) => "powered off",
                (false, true, true) => "running",
                (false, true, false) => "starting",
                (false, false, _) => "stopped",
            };
            seen.push(NodeSeen {
                name: self.nodes[i].name.clone(),
                address: self.nodes[i].address.clone(),
                agent,
                status,
            });
        }
        for change in watch::changes(&self.nodes, &seen) {
            self.event(change);
        }
        self.nodes = seen;
        self.ticks += 1;
        self.draw(self.screen || self.ticks.is_multiple_of(LINE_EVERY));
        Ok(true)
    }

    fn draw(&self, now: bool) {
        if !now {
            return;
        }
        let loads: Vec<(String, load::LoadView)> = self
            .loads
            .iter()
            .map(|(who, l)| (who.clone(), l.view()))
            .collect();
        let frame = view::Frame {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            layout: self.lab.layout,
            forwarding: self.forwarding,
            phase: &self.phase,
            next: &self.next,
            nodes: &self.nodes,
            loads: &loads,
            events: &self.events,
        };
        let text = if self.screen {
            view::screen(&frame)
        } else {
            view::line(&frame)
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// The last frame, then what was measured.
    fn finish(&mut self, outcome: &Result<Ended>) {
        self.draw(true);
        match outcome {
            Ok(Ended::Done) => println!("\nthe demo ran to its end. Measured:"),
            Ok(Ended::Interrupted) => println!("\nstopped. Measured so far:"),
            Err(e) => println!("\nthe demo failed: {e:#}\nMeasured so far:"),
        }
        for r in &self.results {
            println!("  - {r}");
        }
        for (who, l) in &self.loads {
            let v = l.view();
            println!(
                "  - {who}: {} requests answered, {} failed",
                v.answered, v.failed
            );
        }
    }
}

/// The health of backend `addr` of the first VIP as node `n` sees it.
fn backend_health<'a>(n: &'a NodeSeen, addr: &str) -> Option<&'a str> {
    n.status
        .as_ref()?
        .vips
        .first()?
        .backends
        .iter()
        .find(|b| b.address == addr)
        .map(|b| b.health.as_str())
}
