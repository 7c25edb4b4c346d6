//! The PROXY protocol headers the proxy path writes are what a real receiver
//! reads: HAProxy with `accept-proxy` answers each request with the client address
//! and port, the address connected to and the v2 authority it took from our header
//! (`src`, `src_port`, `dst`, `dst_port`, `fc_pp_authority`). Inside a namespace of
//! the test's own. Needs root and haproxy.

mod common;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use common::{
    eventually::eventually_some,
    haproxy::{HEAD, Haproxy},
};
use lb_agent::{
    lab::Netns,
    proxy::proxy_header::{Version, header},
};

const PORT: u16 = 18_080;

fn haproxy(ns: &Netns) -> Haproxy {
    let config = format!(
        "{HEAD}frontend f\n  bind 127.0.0.1:{PORT} accept-proxy\n  bind [::1]:{PORT} accept-proxy\n\
         \x20 http-request return status 200 content-type text/plain lf-string \
         \"%[src] %[src_port] %[dst] %[dst_port] %[fc_pp_authority]\"\n"
    );
    Haproxy::spawn(ns, "header", &config, &[])
}

/// Sends `head` then a request to HAProxy in `ns` at `at`; returns the body.
fn ask(ns: &Netns, at: SocketAddr, head: Vec<u8>) -> String {
    ns.run(move || {
        let (mut s, _) = eventually_some(
            &format!("HAProxy accepts on {at}"),
            Duration::from_secs(5),
            || TcpStream::connect(at).ok(),
        );
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(&head).expect("header");
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("response");
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
    })
    .expect("in the namespace")
}

#[test]
fn haproxy_reads_the_client_from_our_v1_and_v2_headers() {
    let ns = Netns::new("lbpx").expect("namespace");
    let _h = haproxy(&ns);
    let v4: SocketAddr = format!("127.0.0.1:{PORT}").parse().expect("addr");
    let v6: SocketAddr = format!("[::1]:{PORT}").parse().expect("addr");
    let client: SocketAddr = "192.0.2.7:51000".parse().expect("addr");
    let vip: SocketAddr = "198.51.100.1:443".parse().expect("addr");
    let client6: SocketAddr = "[2001:db8::7]:51001".parse().expect("addr");
    let vip6: SocketAddr = "[2001:db8::1]:443".parse().expect("addr");

    let v1 = ask(&ns, v4, header(Version::V1, client, vip, None));
    assert_eq!(v1, "192.0.2.7 51000 198.51.100.1 443 ", "v1 over IPv4");
    let v2 = ask(
        &ns,
        v4,
        header(Version::V2, client, vip, Some("app.example.org")),
    );
    assert_eq!(
        v2, "192.0.2.7 51000 198.51.100.1 443 app.example.org",
        "v2 over IPv4"
    );
    let v1 = ask(&ns, v6, header(Version::V1, client6, vip6, None));
    assert_eq!(v1, "2001:db8::7 51001 2001:db8::1 443 ", "v1, IPv6");
    let v2 = ask(&ns, v6, header(Version::V2, client6, vip6, Some("b.lan")));
    assert_eq!(v2, "2001:db8::7 51001 2001:db8::1 443 b.lan", "v2, IPv6");
}
