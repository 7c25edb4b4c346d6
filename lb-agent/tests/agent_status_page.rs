//! The `/stats` page rendered by a real browser: headless Chromium loads it (with
//! basic auth) inside the LB's namespace, the DOM shows every backend up, with its
//! charts (traffic sent through the VIP drawn as a line that is not flat, a state
//! strip), a backend is stopped, and the page, refreshing itself, shows it DOWN with
//! the check's reason and its state strip ending down. A screenshot proves it
//! renders. Needs root and `chromium`.

mod common;

use std::{net::SocketAddr, process::Command, time::Duration};

use common::{API, AgentLab, BACKENDS, LB, VIP, eventually::eventually_some, name};
use lb_agent::{
    history::BackendMark,
    lab::{TcpServer, connections, lan_v4},
    status::Status,
};

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

/// The y of each point of the traffic sparkline in `row`.
fn sparkline_ys(row: &str) -> Vec<f64> {
    let at = row
        .find("<svg class=\"spark\"")
        .unwrap_or_else(|| panic!("no sparkline in {row}"));
    let points = row[at..]
        .split("points=\"")
        .nth(1)
        .and_then(|p| p.split('"').next())
        .unwrap_or_else(|| panic!("no polyline points in {row}"));
    points
        .split_whitespace()
        .map(|p| {
            let (_, y) = p.split_once(',').expect("x,y");
            y.parse().expect("y")
        })
        .collect()
}

/// The class of the last run of the state strip in `row` (`st-up`, `st-down`, ...).
fn strip_ends_in(row: &str) -> String {
    let at = row
        .find("<svg class=\"strip\"")
        .unwrap_or_else(|| panic!("no state strip in {row}"));
    let strip = &row[at..at + row[at..].find("</svg>").expect("strip end")];
    let last = &strip[strip
        .rfind("<rect")
        .unwrap_or_else(|| panic!("no run in {strip}"))..];
    last.split("class=\"")
        .nth(1)
        .and_then(|c| c.split('"').next())
        .expect("run class")
        .to_string()
}

/// Backend `index`'s samples in the history the status carries.
fn samples(s: &Status, index: u8) -> Vec<lb_agent::history::BackendSample> {
    s.history
        .as_ref()
        .map(|h| h.backend("web", &lan_v4(index).to_string(), 80).to_vec())
        .unwrap_or_default()
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

    // Traffic through the VIP, sampled after quiet samples: every backend's line rises.
    let sent = connections(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), 80),
        60,
        Duration::from_secs(2),
    )
    .expect("client");
    assert_eq!(sent.failures, 0, "{:?}", sent.first_failure);
    lab.wait_for(
        "the traffic in every backend's history",
        Duration::from_secs(6),
        |s| {
            BACKENDS.iter().all(|&b| {
                let rates: Vec<f64> = samples(s, b).iter().map(|x| x.packets_per_s).collect();
                rates.contains(&0.0) && rates.iter().any(|r| *r > 0.0)
            })
        },
    );

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
        let ys = sparkline_ys(&r);
        assert!(
            ys.len() >= 2 && ys.iter().any(|y| *y != ys[0]),
            "backend {b}: a flat traffic line {ys:?} in {r}"
        );
        assert!(r.contains("<title>packets/s, last 10 min: latest "), "{r}");
        assert_eq!(strip_ends_in(&r), "st-up", "{r}");
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

    // Its state strip ends down once a sample (every 2 s) has seen it.
    lab.wait_for(
        "backend 12 down in the history",
        Duration::from_secs(5),
        |s| {
            samples(s, 12)
                .last()
                .is_some_and(|x| x.state == BackendMark::Down)
        },
    );
    let r = row(&chromium(&lab, &["--dump-dom"], &url), 12);
    assert_eq!(strip_ends_in(&r), "st-down", "{r}");
    assert!(
        r.contains("<title>state, last 10 min: now down</title>"),
        "{r}"
    );
}
