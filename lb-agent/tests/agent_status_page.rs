//! The `/stats` page rendered by a real browser: headless Chromium loads it (with
//! basic auth) inside the LB's namespace, the DOM shows every backend up, a backend
//! is stopped, and the page, refreshing itself, shows it DOWN with the check's
//! reason. A screenshot proves it renders. Needs root and `chromium`.

mod common;

use std::{net::SocketAddr, process::Command, time::Duration};

use common::{API, AgentLab, BACKENDS, LB, VIP, eventually::eventually_some, name};
use lb_agent::lab::{TcpServer, lan_v4};

fn config() -> String {
    let mut out = format!(
        "[agent.stats_auth]\nuser = \"ops\"\npassword = \"s3cret\"\n\n[[vip]]\nname = \"web\"\n\
         address = \"{}\"\nport = 80\nsnat_address = \"{}\"\n[vip.check]\ninterval = \"300ms\"\n",
        lan_v4(VIP),
        lan_v4(LB)
    );
    for b in BACKENDS {
        out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(b)));
    }
    out
}

/// Chromium in the LB namespace: `--dump-dom` of `url` after its load.
fn chromium(lab: &AgentLab, extra: &[&str], url: &str) -> String {
    let profile = lab.dir.join("chromium-profile");
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.lb.ns.name()))
        .args([
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1400,700",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium (apt-get install chromium)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `<tr>` of backend `index` in the DOM.
fn row(dom: &str, index: u8) -> String {
    let cell = format!(">{}:80<", lan_v4(index));
    let at = dom
        .find(&cell)
        .unwrap_or_else(|| panic!("no row for {cell} in:\n{dom}"));
    let start = dom[..at].rfind("<tr").expect("row start");
    let end = at + dom[at..].find("</tr>").expect("row end");
    dom[start..end].to_string()
}

#[test]
fn status_page_renders_in_chromium_and_shows_a_backend_going_down() {
    let mut lab = AgentLab::new();
    lab.write_config(&config());
    let mut servers: Vec<Option<TcpServer>> = (0..3)
        .map(|i| {
            Some(
                TcpServer::spawn(
                    &lab.backends[i].ns,
                    SocketAddr::new(lan_v4(BACKENDS[i]), 80),
                    &name(BACKENDS[i]),
                )
                .expect("server"),
            )
        })
        .collect();
    lab.start();
    lab.wait_for("up", Duration::from_secs(5), |s| {
        s.vip("web").is_some_and(|v| v.up == 3)
    });

    // Basic auth is enforced.
    assert_eq!(lab.http_get("/stats", None).0, 401);
    assert_eq!(lab.http_get("/stats", Some("b3BzOndyb25n")).0, 401); // ops:wrong
    let (code, body) = lab.http_get("/stats", Some("b3BzOnMzY3JldA==")); // ops:s3cret
    assert_eq!(code, 200, "{body}");

    let url = format!("http://ops:s3cret@{API}/stats");
    let dom = chromium(&lab, &["--dump-dom"], &url);
    assert!(dom.contains("id=\"vip-web\""), "{dom}");
    assert!(
        dom.contains("http-equiv=\"refresh\""),
        "the page refreshes itself"
    );
    for b in BACKENDS {
        let r = row(&dom, b);
        assert!(r.contains("class=\"up\"") && r.contains(">UP<"), "{r}");
    }
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("stats-page.png");
    chromium(&lab, &[&format!("--screenshot={}", shot.display())], &url);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot of the status page: {}", shot.display());

    servers[1] = None;
    lab.wait_for("backend 12 down", Duration::from_secs(3), |s| {
        s.vip("web").is_some_and(|v| v.up == 2)
    });
    // Loaded again (as its refresh does every 2 s), the page shows the change.
    let (dom, _) = eventually_some(
        "the page shows backend 12 down",
        Duration::from_secs(10),
        || {
            let dom = chromium(&lab, &["--dump-dom"], &url);
            row(&dom, 12).contains("class=\"down\"").then_some(dom)
        },
    );
    let r = row(&dom, 12);
    assert!(
        r.contains(">DOWN<") && r.contains("L4 connection refused"),
        "{r}"
    );
    assert!(row(&dom, 11).contains("class=\"up\""));
}
