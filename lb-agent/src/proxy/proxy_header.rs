//! The PROXY protocol header a proxied connection starts with towards its backend
//! (HAProxy's `send-proxy`, `send-proxy-v2`): the client's address and port and the
//! address it connected to, so the backend (an ingress controller) sees the client.
//! Version 2 also carries the TLS server name (`PP2_TYPE_AUTHORITY`).

use std::net::SocketAddr;

pub use lb_config::proxy::Version;

/// The version 2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const V2_PROXY: u8 = 0x21;
/// Address family and transport: TCP over IPv4, TCP over IPv6.
const V2_TCP4: u8 = 0x11;
const V2_TCP6: u8 = 0x21;
/// TLV carrying the authority (the TLS SNI or Host).
const PP2_TYPE_AUTHORITY: u8 = 0x02;

/// The header for a TCP connection from `client` to `to` (the VIP); `authority`
/// (v2 only) the server name the client asked for. A client and VIP of different
/// families (not expected: the proxy listens on the VIP) are both sent as IPv6.
pub fn header(
    version: Version,
    client: SocketAddr,
    to: SocketAddr,
    authority: Option<&str>,
) -> Vec<u8> {
    let (client, to) = same_family(client, to);
    match version {
        Version::V1 => {
            let proto = if client.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {proto} {} {} {} {}\r\n",
                client.ip(),
                to.ip(),
                client.port(),
                to.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut body = Vec::with_capacity(64);
            let family = match (client, to) {
                (SocketAddr::V4(c), SocketAddr::V4(t)) => {
                    body.extend_from_slice(&c.ip().octets());
                    body.extend_from_slice(&t.ip().octets());
                    V2_TCP4
                }
                (c, t) => {
                    body.extend_from_slice(&v6(c).octets());
                    body.extend_from_slice(&v6(t).octets());
                    V2_TCP6
                }
            };
            body.extend_from_slice(&client.port().to_be_bytes());
            body.extend_from_slice(&to.port().to_be_bytes());
            if let Some(a) = authority.filter(|a| !a.is_empty() && a.len() <= 255) {
                body.push(PP2_TYPE_AUTHORITY);
                body.extend_from_slice(&(a.len() as u16).to_be_bytes());
                body.extend_from_slice(a.as_bytes());
            }
            let mut out = Vec::with_capacity(16 + body.len());
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(V2_PROXY);
            out.push(family);
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(&body);
            out
        }
    }
}

fn v6(a: SocketAddr) -> std::net::Ipv6Addr {
    match a.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        std::net::IpAddr::V6(v6) => v6,
    }
}

fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a.is_ipv4() == b.is_ipv4() {
        return (a, b);
    }
    (
        SocketAddr::new(v6(a).into(), a.port()),
        SocketAddr::new(v6(b).into(), b.port()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn version_1_is_one_line() {
        let h = header(
            Version::V1,
            addr("192.0.2.7:51000"),
            addr("198.51.100.1:443"),
            Some("x"),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n");
        let h = header(
            Version::V1,
            addr("[2001:db8::7]:51000"),
            addr("[2001:db8::1]:443"),
            None,
        );
        assert_eq!(h, b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n");
    }

    #[test]
    fn version_2_carries_addresses_ports_and_the_name() {
        let h = header(
            Version::V2,
            addr("192.0.2.7:51000"),
            addr("198.51.100.1:443"),
            Some("app.example.org"),
        );
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!((h[12], h[13]), (0x21, 0x11));
        let len = u16::from_be_bytes([h[14], h[15]]) as usize;
        assert_eq!(h.len(), 16 + len);
        assert_eq!(&h[16..20], &[192, 0, 2, 7]);
        assert_eq!(&h[20..24], &[198, 51, 100, 1]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 51000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 443);
        assert_eq!(h[28], PP2_TYPE_AUTHORITY);
        assert_eq!(u16::from_be_bytes([h[29], h[30]]), 15);
        assert_eq!(&h[31..], b"app.example.org");
        let h6 = header(
            Version::V2,
            addr("[2001:db8::7]:1"),
            addr("[2001:db8::1]:2"),
            None,
        );
        assert_eq!((h6[13], h6.len()), (0x21, 16 + 36));
    }
}
