//! What the proxy path does with a connection's bytes once it is routed, with
//! real sockets on both sides inside a namespace of the test's own: megabytes
//! each way arrive whole and in order (they cross in the kernel through
//! `splice`), a half-close is passed on as a half-close (the backend reads the
//! end of the request and still answers), a backend's reset reaches the client as
//! a reset, a connection quiet for `idle` is closed while one that moves in either
//! direction is not, and a backend that stops reading stops the client (the proxy
//! holds no more than its pipe). Needs root (namespaces).

mod common;

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use lb_agent::{
    lab::Netns,
    proxy::{
        names::{Pattern, Routes},
        serve::{Limits, Otherwise, Pool, RouteBy, Router, Stats, serve},
    },
};

const PROXY: &str = "127.0.0.10:80";
const BACKEND: &str = "127.0.0.11:8080";
const HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: a.lan\r\n\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// Routes Host a.lan to the backend; no match: reset.
fn router() -> Router {
    Router {
        by: RouteBy::Host,
        routes: Routes::new([(Pattern::parse("a.lan").expect("pattern"), 0)]).expect("routes"),
        otherwise: Otherwise::Reset,
        pools: vec![Pool::new("a", vec![(addr(BACKEND), 1)], None).expect("pool")],
    }
}

/// The proxy with `router()`, on its own runtime in `ns`.
fn proxy(ns: &Netns, idle: Duration) {
    let (ready_tx, ready) = mpsc::channel();
    common::spawn_runtime(ns, move || async move {
        let l = tokio::net::TcpListener::bind(PROXY).await.expect("bind");
        let _ = ready_tx.send(());
        let (_keep, routes) = tokio::sync::watch::channel(Arc::new(router()));
        let limits = Limits {
            idle,
            ..Limits::default()
        };
        serve(l, routes, limits, Arc::new(Stats::new(1)), None).await;
    });
    ready.recv().expect("proxy up");
}

/// Reads `from` to its end, each byte checked against `pattern`; how many.
fn read_pattern(from: &mut TcpStream, what: &str) -> usize {
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = from.read(&mut buf).expect("read");
        if n == 0 {
            return got;
        }
        for (k, byte) in buf[..n].iter().enumerate() {
            assert_eq!(*byte, pattern(got + k), "byte {} {what}", got + k);
        }
        got += n;
    }
}

/// Byte `i` of a test stream.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11)) as u8
}

fn client() -> TcpStream {
    let mut s = TcpStream::connect(addr(PROXY)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(HEAD).expect("head");
    s
}

/// Accepts one connection on `l` and reads the request head the proxy passed on.
fn accepted(l: &TcpListener) -> TcpStream {
    let (mut s, _) = l.accept().expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = vec![0u8; HEAD.len()];
    s.read_exact(&mut head).expect("head");
    assert_eq!(head, HEAD);
    s
}

#[test]
fn bytes_half_closes_resets_and_idle_go_through_as_sent() {
    let ns = Netns::new("lbrl").expect("namespace");
    proxy(&ns, Duration::from_millis(800));
    ns.run(|| {
        let l = TcpListener::bind(BACKEND).expect("backend");
        const SIZE: usize = 24 << 20;

        // 24 MiB up, the client's half-close, then 24 MiB down on the same connection.
        let backend = std::thread::scope(|scope| {
            let b = scope.spawn(|| {
                let mut s = accepted(&l);
                let got = read_pattern(&mut s, "up");
                // The client's end arrived as an end, and we can still answer.
                let down: Vec<u8> = (0..SIZE).map(pattern).collect();
                s.write_all(&down).expect("backend answer");
                got
            });
            let mut c = client();
            let up: Vec<u8> = (0..SIZE).map(pattern).collect();
            c.write_all(&up).expect("client send");
            c.shutdown(Shutdown::Write).expect("half-close");
            let mut down = Vec::with_capacity(SIZE);
            c.read_to_end(&mut down).expect("client read");
            assert_eq!(down.len(), SIZE, "the answer, whole");
            assert!(
                down.iter().enumerate().all(|(i, b)| *b == pattern(i)),
                "the answer, in order"
            );
            b.join().expect("backend")
        });
        assert_eq!(backend, SIZE, "the request, whole");

        // The backend resets: so does the proxy, toward the client.
        let mut c = client();
        let mut s = accepted(&l);
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        s.write_all(b"partial").expect("write");
        drop(s);
        let mut buf = vec![0u8; 64];
        let mut seen = Vec::new();
        let err = loop {
            match c.read(&mut buf) {
                Ok(0) => panic!("a clean end instead of a reset"),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");

        // Quiet both ways for `idle` (800 ms): closed. Moving one way only: kept.
        let start = Instant::now();
        let mut c = client();
        let _s = accepted(&l);
        let n = c.read(&mut buf);
        let quiet = start.elapsed();
        assert!(matches!(n, Ok(0) | Err(_)), "a quiet connection got {n:?}");
        assert!(
            quiet >= Duration::from_millis(700) && quiet < Duration::from_secs(5),
            "closed after {quiet:?}"
        );
        let mut c = client();
        let mut s = accepted(&l);
        let start = Instant::now();
        let mut got = 0;
        while start.elapsed() < Duration::from_millis(2400) {
            s.write_all(b"tick").expect("the backend's pushes go on");
            let mut four = [0u8; 4];
            c.read_exact(&mut four).expect("each push arrives");
            got += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(got >= 7, "{got} pushes");
        c.write_all(b"still open")
            .expect("the client's side is open too");

        // A backend that stops reading stops the client: the proxy takes what its
        // pipe and the sockets' buffers hold, then the client's sends block.
        let mut c = client();
        let _s = accepted(&l);
        c.set_nonblocking(true).expect("nonblocking");
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0usize;
        let start = Instant::now();
        let mut stalled_for = Duration::ZERO;
        let mut last_progress = Instant::now();
        while start.elapsed() < Duration::from_secs(3) && stalled_for < Duration::from_millis(300) {
            match c.write(&chunk) {
                Ok(n) => {
                    sent += n;
                    last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("send: {e}"),
            }
            stalled_for = last_progress.elapsed();
        }
        assert!(
            stalled_for >= Duration::from_millis(300),
            "the client could send on ({sent} bytes): nothing pushed back"
        );
        assert!(
            sent < 64 << 20,
            "{sent} bytes taken while the backend read nothing"
        );
        eprintln!("held while the backend did not read: {} KiB", sent >> 10);
    })
    .expect("lab");
}

/// Megabytes in flight when the relay is stopped and handed over (some in the
/// sockets' buffers, some in the pipes): resumed from what was handed over (as the
/// holder process does), every byte arrives once and in order.
#[test]
fn a_handover_with_bytes_in_flight_loses_none() {
    use lb_agent::proxy::{handover, serve::resume};
    let ns = Netns::new("lbrh").expect("namespace");
    let (ready_tx, ready) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let (handed_tx, handed) = mpsc::channel::<usize>();
    common::spawn_runtime(&ns, move || async move {
        let l = tokio::net::TcpListener::bind(PROXY).await.expect("bind");
        let (_keep, routes) = tokio::sync::watch::channel(Arc::new(router()));
        let (mut control, connections) = handover::channel();
        let task = tokio::spawn(serve(
            l,
            routes,
            Limits::default(),
            Arc::new(Stats::new(1)),
            Some(connections),
        ));
        let _ = ready_tx.send(());
        let _ = tokio::task::spawn_blocking(move || go.recv()).await;
        task.abort();
        control.request();
        let h = control
            .handed
            .recv()
            .await
            .expect("a connection handed over");
        let _ = handed_tx.send(h.up.pending().unwrap_or(0));
        resume(h).await;
    });
    ready.recv().expect("proxy up");
    ns.run(move || {
        let l = TcpListener::bind(BACKEND).expect("backend");
        const SIZE: usize = 16 << 20;
        let mut c = client();
        let mut s = accepted(&l);
        // The backend reads nothing yet: the client's bytes pile up in the
        // backend's receive buffer, the proxy's pipe and sockets, the client's.
        let writer = std::thread::spawn(move || {
            let up: Vec<u8> = (0..SIZE).map(pattern).collect();
            c.write_all(&up).expect("client send");
            c.shutdown(Shutdown::Write).expect("half-close");
            c
        });
        std::thread::sleep(Duration::from_millis(300));
        go_tx.send(()).expect("hand over");
        let in_pipe = handed.recv_timeout(Duration::from_secs(5)).expect("handed");
        assert_eq!(read_pattern(&mut s, "up"), SIZE, "every byte, once");
        s.write_all(b"done").expect("answer");
        drop(s);
        let mut c = writer.join().expect("writer");
        let mut answer = Vec::new();
        c.read_to_end(&mut answer).expect("client read");
        assert_eq!(answer, b"done");
        eprintln!("bytes in the pipe at the handover: {in_pipe}");
    })
    .expect("lab");
}
