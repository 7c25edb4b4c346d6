//! `cargo xtask verify-deb [FILE]` (and `cargo xtask dist --verify`): the Debian
//! package, installed on this machine and run as its unit says, serves a VIP.
//!
//! 1. Installs the .deb with apt-get; the binary, unit and conffile are where they
//!    belong; the installed default config passes `check-config` and starts (in a
//!    namespace of its own).
//! 2. Builds a LAN in network namespaces: a switch (bridge), the LB node, a client
//!    and two backends running nginx, each answering with its own name.
//! 3. Writes a lab config over the conffile and starts the service: with systemd
//!    (PID 1) through `systemctl` with a drop-in `NetworkNamespacePath=`; without,
//!    the unit's own `ExecStart=` line, read from the installed unit, in the LB's
//!    namespace. The process runs /usr/sbin/lb-agent and its XDP program is attached.
//! 4. The client fetches through the VIP: backend A answers, and its log shows the
//!    request came from the LB's NAT address.
//! 5. The unit's `ExecReload=` with a config naming backend B: B answers; with a
//!    broken config: the reload fails and B still answers.
//! 6. Stops the service (SIGTERM, or `systemctl stop`): it exits, and the pinned data
//!    plane still forwards.
//! 7. Purges the package: nothing of it is left. Then (also on any failure) the
//!    namespaces, processes, pins and files it made are removed.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    bootstrap,
    cmd::{output, require_root, run, step},
    dist::{BIN_PATH, CONFIG_PATH, UNIT_PATH, VERSION},
};

const UNIT: &str = "lb-agent.service";
/// The lab LAN: 198.18.1.0/24 (RFC 2544), inside the namespaces only.
const LB_ADDR: &str = "198.18.1.1";
const VIP: &str = "198.18.1.10";
const BACKEND_A: &str = "198.18.1.11";
const BACKEND_B: &str = "198.18.1.12";
const CLIENT: &str = "198.18.1.100";
/// `api_listen` in the LB's namespace (the default).
const API: &str = "127.0.0.1:9100";

pub fn verify(deb: &Path) -> Result<()> {
    require_root("it installs a package, runs its service and builds network namespaces")?;
    let started = Instant::now();
    let deb = fs::canonicalize(deb).with_context(|| {
        format!(
            "{} not found: build it with `cargo xtask dist`",
            deb.display()
        )
    })?;
    preflight()?;
    let systemd = Path::new("/run/systemd/system").is_dir();
    let mut lab = Lab::new()?;
    let unit = install(&mut lab, &deb)?;

    step("verify 2/7: lab: switch, LB node, client, backends A and B (nginx)");
    lab.build()?;
    lab.default_config_starts(&unit.exec_start)?;

    let pid = serve(&mut lab, systemd, &unit)?;
    reload(&lab, systemd, &unit)?;

    step("verify 6/7: stopping the service");
    lab.stop(systemd, pid)?;
    lab.expect_answer("backend B", "with the agent stopped (pinned data plane)")?;

    purge(&mut lab)?;
    drop(lab);
    step(&format!(
        "verify: the package installs, serves a VIP, reloads, stops and purges ({:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The command lines of the installed unit.
struct Unit {
    exec_start: Vec<String>,
    exec_reload: Vec<String>,
}

/// Step 1: the package installed, checked; its unit read.
fn install(lab: &mut Lab, deb: &Path) -> Result<Unit> {
    step(&format!("verify 1/7: installing {}", deb.display()));
    lab.installed = true;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .arg(deb)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    installed_as_expected()?;
    let text = fs::read_to_string(Path::new("/").join(UNIT_PATH))
        .with_context(|| format!("the package installed no /{UNIT_PATH}"))?;
    let unit = Unit {
        exec_start: unit_command(&text, "ExecStart")?,
        exec_reload: unit_command(&text, "ExecReload")?,
    };
    if unit.exec_start.first().map(String::as_str) != Some(&format!("/{BIN_PATH}")) {
        bail!(
            "the unit's ExecStart runs {:?}, not /{BIN_PATH}",
            unit.exec_start
        );
    }
    if let Ok(analyze) = which("systemd-analyze") {
        step("  systemd-analyze verify on the installed unit");
        // Not the Documentation= man pages: some images leave /usr/share/man out.
        run(Command::new(analyze)
            .args(["verify", "--man=no"])
            .arg(Path::new("/").join(UNIT_PATH)))?;
    }
    step("  lb-agent check-config on the installed default config");
    run(Command::new(Path::new("/").join(BIN_PATH))
        .args(["check-config", "--config"])
        .arg(Path::new("/").join(CONFIG_PATH)))?;
    Ok(unit)
}

/// Steps 3 and 4: the service started on the lab config, serving backend A through
/// the VIP; its main process id.
fn serve(lab: &mut Lab, systemd: bool, unit: &Unit) -> Result<u32> {
    step(&format!(
        "verify 3/7: the service, {}",
        if systemd {
            "started by systemd with NetworkNamespacePath= (drop-in)"
        } else {
            "no systemd as PID 1 here: the unit's ExecStart in the LB namespace"
        }
    ));
    lab.write_config(BACKEND_A)?;
    if !systemd {
        // What the unit's ExecStartPre does: the host's bpffs, for the pins.
        bootstrap::bpffs()?;
    }
    let pid = lab.start(systemd, &unit.exec_start)?;
    lab.wait_ready()?;
    // Once ready (nsenter has exec'd the agent by then).
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .with_context(|| format!("the service's process {pid} is gone"))?;
    if exe != Path::new("/").join(BIN_PATH) {
        bail!("the service runs {}, not /{BIN_PATH}", exe.display());
    }
    step(&format!(
        "  running and ready: pid {pid}, {}",
        exe.display()
    ));
    let links = lab.ns_out(&lab.lb, &["ip", "link", "show", "eth0"])?;
    if !links.contains("xdpgeneric") {
        bail!("no XDP program on the LB's eth0 after the start:\n{links}");
    }

    step(&format!("verify 4/7: the client fetches http://{VIP}/"));
    lab.expect_answer("backend A", "through the VIP")?;
    // The client's request (its path is the lab's tag; health checks ask for /),
    // with the LB's NAT address as its source.
    let log = fs::read_to_string(lab.dir.join("a.access")).unwrap_or_default();
    let seen = format!("{LB_ADDR} GET /{} ", lab.tag);
    if !log.lines().any(|l| l.starts_with(&seen)) {
        bail!(
            "backend A's log has no {seen:?}: the request did not come through the LB's NAT:\n{log}"
        );
    }
    step(&format!(
        "  backend A answered, the request came from the LB's NAT address {LB_ADDR}"
    ));
    Ok(pid)
}

/// Step 5: a reload onto backend B, then one of a broken file, which must fail.
fn reload(lab: &Lab, systemd: bool, unit: &Unit) -> Result<()> {
    step("verify 5/7: reload (the unit's ExecReload) onto backend B");
    lab.write_config(BACKEND_B)?;
    lab.reload(systemd, &unit.exec_reload)
        .context("the reload of a valid config failed")?;
    lab.expect_answer("backend B", "after the reload")?;
    // Broken in a VIP, the [agent] section (the control socket) intact.
    let config = Path::new("/").join(CONFIG_PATH);
    let text = fs::read_to_string(&config)?.replace("interval = \"500ms\"", "interval = \"soon\"");
    fs::write(&config, text)?;
    match lab.reload(systemd, &unit.exec_reload) {
        Ok(()) => bail!("the reload of a broken config succeeded"),
        Err(e) if format!("{e:#}").contains("interval") => {
            step("  a broken config (interval = \"soon\"): the reload failed naming it");
        }
        Err(e) => bail!("the reload of a broken config failed, but not naming it: {e:#}"),
    }
    lab.expect_answer("backend B", "after the refused reload")
}

/// Step 7: the package purged, nothing of it left.
fn purge(lab: &mut Lab) -> Result<()> {
    step("verify 7/7: purging the package");
    run(Command::new("apt-get")
        .args(["purge", "-y", "-q", "lb-agent"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    lab.installed = false;
    for left in [BIN_PATH, UNIT_PATH, CONFIG_PATH] {
        if Path::new("/").join(left).exists() {
            bail!("/{left} is still there after the purge");
        }
    }
    if package_status()?.contains("installed") {
        bail!("dpkg still lists lb-agent after the purge");
    }
    Ok(())
}

/// What the verification needs, and that it will not clobber a real installation.
fn preflight() -> Result<()> {
    if package_status()?.contains("installed") {
        bail!(
            "lb-agent is installed on this machine already ({}): the verification \
             installs and purges its own; remove it first",
            package_status()?.trim()
        );
    }
    let missing: Vec<&str> = [
        ("nginx", "nginx-light"),
        ("curl", "curl"),
        ("ethtool", "ethtool"),
        ("nsenter", "util-linux"),
    ]
    .into_iter()
    .filter(|(bin, _)| which(bin).is_err())
    .map(|(_, pkg)| pkg)
    .collect();
    if !missing.is_empty() {
        step(&format!("installing {}", missing.join(" ")));
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    Ok(())
}

/// `dpkg-query`'s status of lb-agent ("" when dpkg never knew it).
fn package_status() -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", "lb-agent"])
        .output()
        .context("cannot run dpkg-query")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn installed_as_expected() -> Result<()> {
    let status = package_status()?;
    if status.trim() != format!("install ok installed {VERSION}") {
        bail!("dpkg-query says {status:?} after the install");
    }
    let bin = Path::new("/").join(BIN_PATH);
    let version = output(Command::new(&bin).arg("--version"))?;
    if !version.contains(VERSION) {
        bail!(
            "{} --version says {version:?}, not {VERSION}",
            bin.display()
        );
    }
    let conffiles =
        output(Command::new("dpkg-query").args(["-W", "-f", "${Conffiles}", "lb-agent"]))?;
    if !conffiles.contains(&format!("/{CONFIG_PATH} ")) {
        bail!("/{CONFIG_PATH} is not a conffile of the installed package: {conffiles:?}");
    }
    // Neither enabled nor started by the install (docs/operations.md says why).
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants").join(UNIT);
    if wants.symlink_metadata().is_ok() {
        bail!("the install enabled the service ({})", wants.display());
    }
    if Path::new("/run/systemd/system").is_dir()
        && output(Command::new("systemctl").args(["is-active", UNIT]))
            .is_ok_and(|s| s.trim() == "active")
    {
        bail!("the install started the service");
    }
    step(&format!(
        "  installed, not enabled, not started: {} ({}), /{UNIT_PATH}, conffile /{CONFIG_PATH}",
        bin.display(),
        version.trim()
    ));
    Ok(())
}

/// A command line of the unit (`ExecStart=`), split on whitespace, systemd's
/// executable prefixes (`-`, `+`, `@`, ...) removed.
fn unit_command(unit: &str, key: &str) -> Result<Vec<String>> {
    let lines: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('='))
        .collect();
    let [line] = lines.as_slice() else {
        bail!(
            "the installed unit sets {key}= {} times, not once",
            lines.len()
        );
    };
    let argv: Vec<String> = line
        .trim()
        .trim_start_matches(['-', '+', '@', ':', '!'])
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if argv.is_empty() || argv.iter().any(|a| a.contains(['"', '\'', '$'])) {
        bail!("{key}={line}: not a plain command line this check can run");
    }
    Ok(argv)
}

fn which(bin: &str) -> Result<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.exists())
        .with_context(|| format!("{bin} is not installed"))
}

/// Everything the verification made, removed on drop (also after a failure).
struct Lab {
    tag: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    switch: String,
    lb: String,
    client: String,
    pins: PathBuf,
    socket: PathBuf,
    children: Vec<Child>,
    agent: Option<Child>,
    dropin: Option<PathBuf>,
    installed: bool,
}

impl Lab {
    fn new() -> Result<Self> {
        let tag = format!("lbv{}", std::process::id());
        let dir = std::env::temp_dir().join(&tag);
        fs::create_dir_all(&dir)?;
        Ok(Self {
            switch: format!("{tag}sw"),
            lb: format!("{tag}lb"),
            client: format!("{tag}c"),
            // No dots in pin paths (libbpf rewrites them).
            pins: PathBuf::from("/sys/fs/bpf").join(&tag),
            socket: PathBuf::from("/run").join(format!("{tag}.sock")),
            namespaces: Vec::new(),
            children: Vec::new(),
            agent: None,
            dropin: None,
            installed: false,
            dir,
            tag,
        })
    }

    fn netns(&mut self, name: &str) -> Result<()> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        self.namespaces.push(name.to_string());
        run(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]))
    }

    /// A host on the switch: `eth0` with `addr`/24, sending whole checksums (as a NIC
    /// does; XDP forwards the bytes a veth hands it).
    fn host(&mut self, name: &str, port: &str, addr: &str) -> Result<()> {
        self.netns(name)?;
        run(Command::new("ip").args([
            "-n",
            name,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            &self.switch,
        ]))?;
        run(Command::new("ip").args([
            "-n",
            &self.switch,
            "link",
            "set",
            port,
            "master",
            "br0",
            "up",
        ]))?;
        run(Command::new("ip")
            .args(["netns", "exec", name, "ethtool", "-K", "eth0", "tx", "off"])
            .stdout(Stdio::null()))?;
        run(Command::new("ip").args(["-n", name, "link", "set", "eth0", "up"]))?;
        run(Command::new("ip").args([
            "-n",
            name,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]))
    }

    fn build(&mut self) -> Result<()> {
        let switch = self.switch.clone();
        self.netns(&switch)?;
        run(Command::new("ip").args(["-n", &switch, "link", "add", "br0", "type", "bridge"]))?;
        run(Command::new("ip").args(["-n", &switch, "link", "set", "br0", "up"]))?;
        let (lb, client, tag) = (self.lb.clone(), self.client.clone(), self.tag.clone());
        self.host(&lb, "plb", LB_ADDR)?;
        // No VRRP here: the VIP is put on the LB's interface, as an operator would.
        run(Command::new("ip").args([
            "-n",
            &lb,
            "addr",
            "add",
            &format!("{VIP}/32"),
            "dev",
            "eth0",
        ]))?;
        self.host(&client, "pc", CLIENT)?;
        for (name, addr) in [("a", BACKEND_A), ("b", BACKEND_B)] {
            let ns = format!("{tag}{name}");
            self.host(&ns, &format!("p{name}"), addr)?;
            self.nginx(&ns, name, addr)?;
        }
        Ok(())
    }

    /// nginx in `ns` on `addr`:80, answering "backend NAME", logging client addresses.
    fn nginx(&mut self, ns: &str, name: &str, addr: &str) -> Result<()> {
        let d = self.dir.display();
        let upper = name.to_uppercase();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/{name}.pid;\nerror_log {d}/{name}.err;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  log_format peer '$remote_addr $request';\n  access_log {d}/{name}.access peer;\n\
               client_body_temp_path {d}/{name}-body;\n  proxy_temp_path {d}/{name}-proxy;\n\
               fastcgi_temp_path {d}/{name}-fcgi;\n  uwsgi_temp_path {d}/{name}-uwsgi;\n\
               scgi_temp_path {d}/{name}-scgi;\n\
               server {{\n    listen {addr}:80;\n    location / {{ return 200 \"backend {upper}\\n\"; }}\n  }}\n}}\n"
        );
        let path = self.dir.join(format!("{name}.conf"));
        fs::write(&path, conf)?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "nginx", "-c"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        self.children.push(child);
        // Listening before the first request.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "1",
                ])
                .arg(format!("http://{addr}/"))
                .status()?;
            if probe.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx of backend {upper} does not answer on {addr}:80: {}",
                    fs::read_to_string(self.dir.join(format!("{name}.err"))).unwrap_or_default()
                );
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// `ns` runs `args`; its stdout.
    fn ns_out(&self, ns: &str, args: &[&str]) -> Result<String> {
        output(Command::new("ip").args(["netns", "exec", ns]).args(args))
    }

    /// The installed default config starts an agent (in the LB namespace through `ip
    /// netns exec`, whose fresh /sys gets a bpffs of the agent's own, so its pins at
    /// the default pin_path vanish with it); it answers /healthz, then stops on SIGTERM.
    fn default_config_starts(&mut self, exec_start: &[String]) -> Result<()> {
        let socket = Path::new("/run/lb-agent.sock");
        if socket.exists() {
            step(
                "  (an agent's control socket is at /run/lb-agent.sock: the default config is not started)",
            );
            return Ok(());
        }
        step("  the installed default config starts (ExecStart, LB namespace)");
        let log = self.dir.join("default.log");
        let mut child = spawn_agent(&["ip", "netns", "exec", &self.lb], exec_start, &log)?;
        let up = self.wait_http(&format!("http://{API}/healthz"), "200", &mut child, &log);
        let _ = terminate(&mut child, Duration::from_secs(15));
        up.context("the default config did not start")?;
        let _ = fs::remove_file(socket);
        step("  the default config started (/healthz 200) and stopped");
        Ok(())
    }

    /// The lab config, over the installed conffile: one NAT VIP on port 80 to `backend`.
    fn write_config(&self, backend: &str) -> Result<()> {
        let text = format!(
            "# Written by cargo xtask verify-deb.\n[agent]\ninterfaces = [\"eth0\"]\n\
             # Generic: native XDP_TX into a veth needs an XDP program on the far end.\n\
             xdp_mode = \"generic\"\npin_path = \"{}\"\ncontrol_socket = \"{}\"\n\
             api_listen = \"{API}\"\nflow_table_size = 65536\nsocket_lb = false\n\n\
             [[vip]]\nname = \"web\"\naddress = \"{VIP}\"\nport = 80\nsnat_address = \"{LB_ADDR}\"\n\
             [vip.check]\ntype = \"http\"\ninterval = \"500ms\"\n\
             [[vip.backend]]\naddress = \"{backend}\"\n",
            self.pins.display(),
            self.socket.display()
        );
        let path = Path::new("/").join(CONFIG_PATH);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Starts the service; returns its main process id.
    fn start(&mut self, systemd: bool, exec_start: &[String]) -> Result<u32> {
        if systemd {
            let dir = PathBuf::from(format!("/run/systemd/system/{UNIT}.d"));
            fs::create_dir_all(&dir)?;
            let dropin = dir.join(format!("{}.conf", self.tag));
            fs::write(
                &dropin,
                format!("[Service]\nNetworkNamespacePath=/run/netns/{}\n", self.lb),
            )?;
            self.dropin = Some(dropin);
            run(Command::new("systemctl").arg("daemon-reload"))?;
            run(Command::new("systemctl").args(["start", UNIT]))?;
            let pid =
                output(Command::new("systemctl").args(["show", "-p", "MainPID", "--value", UNIT]))?;
            return match pid.trim().parse::<u32>() {
                Ok(pid) if pid > 0 => Ok(pid),
                _ => bail!(
                    "{UNIT} has no main process after the start: {}",
                    self.journal()
                ),
            };
        }
        // nsenter enters the network namespace only (as NetworkNamespacePath= does),
        // so the pins go to the host's bpffs and outlive the agent as in production;
        // `ip netns exec` would give it a fresh /sys. nsenter execs: the child is the agent.
        let log = self.dir.join("agent.log");
        let net = format!("--net=/run/netns/{}", self.lb);
        let child = spawn_agent(&["nsenter", &net, "--"], exec_start, &log)?;
        let pid = child.id();
        self.agent = Some(child);
        Ok(pid)
    }

    /// /ready answers 200 in the LB namespace.
    fn wait_ready(&mut self) -> Result<()> {
        let url = format!("http://{API}/ready");
        let log = self.dir.join("agent.log");
        match self.agent.take() {
            Some(mut child) => {
                let r = self.wait_http(&url, "200", &mut child, &log);
                self.agent = Some(child);
                r
            }
            None => {
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    if self.http_code(&url)? == "200" {
                        return Ok(());
                    }
                    sleep(Duration::from_millis(200));
                }
                bail!("{url} never answered 200: {}", self.journal())
            }
        }
    }

    /// `url` answers `code` in the LB namespace while `child` runs (20 s at most).
    fn wait_http(&self, url: &str, code: &str, child: &mut Child, log: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the agent exited ({status}); its log:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            if self.http_code(url)? == code {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{url} never answered {code} in 20 s; the agent's log:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            sleep(Duration::from_millis(200));
        }
    }

    fn http_code(&self, url: &str) -> Result<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.lb,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "1",
                url,
            ])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The client gets `want` from http://VIP/ on a new connection (within 10 s).
    fn expect_answer(&self, want: &str, when: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last;
        loop {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.client,
                    "curl",
                    "-sS",
                    "--max-time",
                    "2",
                ])
                .arg(format!("http://{VIP}/{}", self.tag))
                .output()?;
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            if out.status.success() && last == want {
                step(&format!("  {when}: {want:?}"));
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{when}: the client got {last:?} from http://{VIP}/, not {want:?}; {}",
                    self.journal()
                );
            }
            sleep(Duration::from_millis(200));
        }
    }

    /// `systemctl reload`, or the unit's ExecReload in the LB namespace.
    fn reload(&self, systemd: bool, exec_reload: &[String]) -> Result<()> {
        if systemd {
            // ExecReload's output (the agent's answer) is in the journal.
            return output(Command::new("systemctl").args(["reload", UNIT]))
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e:#}; {}", self.journal()));
        }
        let (bin, args) = exec_reload.split_first().context("an empty ExecReload")?;
        output(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.lb))
                .arg("--")
                .arg(bin)
                .args(args),
        )
        .map(|_| ())
    }

    /// `systemctl stop`, or SIGTERM (the unit's KillSignal) and the agent's exit.
    fn stop(&mut self, systemd: bool, pid: u32) -> Result<()> {
        if systemd {
            run(Command::new("systemctl").args(["stop", UNIT]))?;
            let state = output(Command::new("systemctl").args([
                "show",
                "-p",
                "ActiveState",
                "--value",
                UNIT,
            ]))?;
            if state.trim() != "inactive" {
                bail!(
                    "{UNIT} is {} after the stop: {}",
                    state.trim(),
                    self.journal()
                );
            }
        } else {
            let mut child = self
                .agent
                .take()
                .context("the agent was not started here")?;
            let status = terminate(&mut child, Duration::from_secs(15))?;
            if !status.success() {
                bail!(
                    "the agent exited with {status} on SIGTERM: {}",
                    self.journal()
                );
            }
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            bail!("the agent (pid {pid}) still runs after the stop");
        }
        step(&format!("  stopped (pid {pid} exited)"));
        Ok(())
    }

    /// The service's log, for failure messages.
    fn journal(&self) -> String {
        if self.dropin.is_some() {
            let out = Command::new("journalctl")
                .args(["-u", UNIT, "-n", "40", "--no-pager"])
                .output();
            return match out {
                Ok(o) => format!("journal:\n{}", String::from_utf8_lossy(&o.stdout)),
                Err(e) => format!("(no journal: {e})"),
            };
        }
        format!(
            "the agent's log:\n{}",
            fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
        )
    }
}

/// SIGTERM, then the exit (SIGKILL after `grace`).
fn terminate(child: &mut Child, grace: Duration) -> Result<std::process::ExitStatus> {
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let status = child.wait()?;
            bail!(
                "no exit {} s after SIGTERM (killed: {status})",
                grace.as_secs()
            );
        }
        sleep(Duration::from_millis(50));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = terminate(&mut agent, Duration::from_secs(5));
        }
        if let Some(dropin) = self.dropin.take() {
            let _ = Command::new("systemctl").args(["stop", UNIT]).status();
            let _ = fs::remove_file(&dropin);
            if let Some(dir) = dropin.parent() {
                let _ = fs::remove_dir(dir);
            }
            let _ = Command::new("systemctl").arg("daemon-reload").status();
        }
        if self.installed {
            eprintln!("xtask: cleaning up: purging lb-agent");
            let _ = Command::new("apt-get")
                .args(["purge", "-y", "-q", "lb-agent"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status();
        }
        for child in &mut self.children {
            let _ = terminate(child, Duration::from_secs(5));
        }
        // Whatever else still runs in the lab's namespaces.
        for ns in &self.namespaces {
            if let Ok(pids) = output(Command::new("ip").args(["netns", "pids", ns])) {
                for pid in pids
                    .split_whitespace()
                    .filter_map(|p| p.parse::<libc::pid_t>().ok())
                {
                    // SAFETY: kill(2) of a process inside a namespace this lab made.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        // The links go with their pins: XDP leaves the LB's interface.
        let _ = fs::remove_dir_all(&self.pins);
        let _ = fs::remove_file(&self.socket);
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Starts `exec_start` (the unit's command) behind `enter` (what puts it in the LB's
/// namespace), its stdout and stderr in `log`: one open file, so the two append to it
/// in turn instead of writing over each other.
fn spawn_agent(enter: &[&str], exec_start: &[String], log: &Path) -> Result<Child> {
    let out = fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    Command::new(enter[0])
        .args(&enter[1..])
        .args(exec_start)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("cannot start the agent")
}
