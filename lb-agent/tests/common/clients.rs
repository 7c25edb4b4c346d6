//! Clients of routed VIPs: a TLS request (rustls, optionally with its ClientHello
//! split over segments) and a plain HTTP/1.1 request, each answering with the
//! response body and the client's own port.

use std::{
    io::{Read, Write as _},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::Duration,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A client trusting the certificate in `pem`.
pub fn tls_config(pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM"))
        .expect("root");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The body of a response read to its end.
fn body(mut r: impl Read) -> Result<String, String> {
    let mut out = String::new();
    r.read_to_string(&mut out).map_err(text)?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

fn connect(to: SocketAddr) -> Result<(TcpStream, u16), String> {
    let s = TcpStream::connect_timeout(&to, TIMEOUT).map_err(text)?;
    let port = s.local_addr().map_err(text)?.port();
    s.set_read_timeout(Some(TIMEOUT)).map_err(text)?;
    s.set_nodelay(true).map_err(text)?;
    Ok((s, port))
}

/// `GET /` over TLS to `to` for server name `name`; with `split` the ClientHello
/// goes in three segments 50 ms apart. (body, client port), or the error.
pub fn tls_get(
    config: &Arc<rustls::ClientConfig>,
    to: SocketAddr,
    name: &str,
    split: bool,
) -> Result<(String, u16), String> {
    let server = rustls::pki_types::ServerName::try_from(name.to_string()).map_err(text)?;
    let mut conn = rustls::ClientConnection::new(config.clone(), server).map_err(text)?;
    let (mut sock, port) = connect(to)?;
    if split {
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello).map_err(text)?;
        }
        let third = hello.len() / 3;
        for part in [
            &hello[..third],
            &hello[third..2 * third],
            &hello[2 * third..],
        ] {
            sock.write_all(part).map_err(text)?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(text)?;
    Ok((body(tls)?, port))
}

/// `head` (a request) over plain TCP to `to`; (body, client port), or the error.
pub fn http_get(to: SocketAddr, head: &[u8]) -> Result<(String, u16), String> {
    let (mut s, port) = connect(to)?;
    s.write_all(head).map_err(text)?;
    Ok((body(s)?, port))
}

/// A request for host `host` that closes the connection.
pub fn request_for(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}
