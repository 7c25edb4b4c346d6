//! The server name (SNI) of a TLS ClientHello, from the first bytes a client sends,
//! reassembled across segments and across TLS records (a ClientHello with
//! post-quantum key shares is larger than one segment, and may be split over
//! records), bounded in size.

/// What the bytes so far say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// Not complete yet: nothing can change before the buffer holds this many
    /// bytes (read more, within the bound and the inspect timeout).
    NeedMore(usize),
    /// A complete ClientHello naming this server (lowercase, no trailing dot).
    Sni(String),
    /// A complete ClientHello without a server name (or with an empty one).
    NoSni,
    /// Not TLS: the first byte is not a handshake record.
    NotTls,
    /// TLS, but not a ClientHello this parser accepts; the reason.
    Invalid(&'static str),
}

/// TLS record header: type, version, length.
const RECORD_HEADER: usize = 5;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;
/// A record's payload at most (RFC 8446 5.1: 2^14 for plaintext records).
const MAX_RECORD: usize = 1 << 14;

/// Parses the first bytes of a connection, `buf`; `max` bounds the ClientHello
/// (records included): one that needs more is `Invalid`.
pub fn parse(buf: &[u8], max: usize) -> Hello {
    let Some(&first) = buf.first() else {
        return Hello::NeedMore(1);
    };
    if first != CONTENT_HANDSHAKE {
        return Hello::NotTls;
    }
    // The handshake messages, from as many records as it takes.
    let mut handshake = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = buf.get(at..at + RECORD_HEADER) else {
            return more(buf, max, at + RECORD_HEADER);
        };
        if header[0] != CONTENT_HANDSHAKE {
            return Hello::Invalid("a record other than handshake inside the ClientHello");
        }
        if header[1] != 3 {
            return Hello::Invalid("not a TLS record version");
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Hello::Invalid("a record length out of range");
        }
        let Some(payload) = buf.get(at + RECORD_HEADER..at + RECORD_HEADER + len) else {
            return more(buf, max, at + RECORD_HEADER + len);
        };
        handshake.extend_from_slice(payload);
        at += RECORD_HEADER + len;
        if handshake.len() >= 4 {
            if handshake[0] != HANDSHAKE_CLIENT_HELLO {
                return Hello::Invalid("the first handshake message is not a ClientHello");
            }
            let body = (usize::from(handshake[1]) << 16)
                | (usize::from(handshake[2]) << 8)
                | usize::from(handshake[3]);
            if 4 + body > max {
                return Hello::Invalid("a ClientHello larger than the bound");
            }
            if handshake.len() >= 4 + body {
                return server_name(&handshake[4..4 + body]);
            }
        }
        if at > max {
            return Hello::Invalid("a ClientHello larger than the bound");
        }
    }
}

/// More is needed, up to `need` bytes: beyond the bound it never comes.
fn more(buf: &[u8], max: usize, need: usize) -> Hello {
    if buf.len() > max || need > max {
        Hello::Invalid("a ClientHello larger than the bound")
    } else {
        Hello::NeedMore(need)
    }
}

/// A cursor over a ClientHello body; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.buf.get(..n)?, self.buf.get(n..)?);
        self.buf = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one- or two-byte length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<Reader<'a>> {
        let n = self.u16()?;
        self.take(usize::from(n)).map(|buf| Reader { buf })
    }
}

/// The server name of a complete ClientHello body.
fn server_name(body: &[u8]) -> Hello {
    let mut r = Reader { buf: body };
    let bad = Hello::Invalid("a truncated ClientHello");
    // Legacy version, random, session id, cipher suites, compression methods.
    if r.take(2 + 32).is_none() || r.vec8().is_none() || r.vec16().is_none() || r.vec8().is_none() {
        return bad;
    }
    if r.buf.is_empty() {
        // No extensions at all (a TLS 1.0 client): no name.
        return Hello::NoSni;
    }
    let Some(mut exts) = r.vec16() else {
        return bad;
    };
    while !exts.buf.is_empty() {
        let (Some(kind), Some(mut data)) = (exts.u16(), exts.vec16()) else {
            return bad;
        };
        if kind != EXT_SERVER_NAME {
            continue;
        }
        let Some(mut list) = data.vec16() else {
            return bad;
        };
        while !list.buf.is_empty() {
            let (Some(name_type), Some(name)) = (list.u8(), list.vec16()) else {
                return bad;
            };
            if name_type == NAME_TYPE_HOST {
                return match host_name(name.buf) {
                    Some(n) if n.is_empty() => Hello::NoSni,
                    Some(n) => Hello::Sni(n),
                    None => Hello::Invalid("a server name that is not a host name"),
                };
            }
        }
        return Hello::NoSni;
    }
    Hello::NoSni
}

pub use lb_config::names::host_name;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The ClientHello a real TLS client (rustls) sends for `name`.
    pub(crate) fn client_hello(name: &str) -> Vec<u8> {
        let roots = rustls::RootCertStore::empty();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server).expect("client");
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).expect("write");
        }
        out
    }

    #[test]
    fn a_real_client_hello_names_its_server_even_byte_by_byte() {
        let hello = client_hello("App.Example.org");
        assert_eq!(parse(&hello, 16384), Hello::Sni("app.example.org".into()));
        for cut in 0..hello.len() {
            match parse(&hello[..cut], 16384) {
                Hello::NeedMore(n) => assert!(n > cut && n <= hello.len(), "cut at {cut}: {n}"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_client_hello_split_over_records_is_reassembled() {
        let hello = client_hello("split.example.org");
        // The handshake message re-framed as records of 100 bytes each.
        let message = &hello[RECORD_HEADER..];
        let mut framed = Vec::new();
        for chunk in message.chunks(100) {
            framed.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
            framed.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            framed.extend_from_slice(chunk);
        }
        assert!(framed.len() > hello.len() + 5);
        assert_eq!(
            parse(&framed, 16384),
            Hello::Sni("split.example.org".into())
        );
        for cut in 0..framed.len() {
            assert!(
                matches!(parse(&framed[..cut], 16384), Hello::NeedMore(n) if n > cut),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn garbage_truncation_and_size_are_refused() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n", 16384), Hello::NotTls);
        assert_eq!(parse(&[22, 9, 9, 0, 5, 1, 2, 3, 4, 5], 16384), {
            Hello::Invalid("not a TLS record version")
        });
        // A record claiming more than TLS allows.
        assert!(matches!(
            parse(&[22, 3, 1, 0xff, 0xff], 16384),
            Hello::Invalid(_)
        ));
        // A ClientHello whose own length exceeds the record it came in, then a
        // non-handshake record.
        let hello = client_hello("a.example.org");
        let mut bad = hello[..hello.len() - 10].to_vec();
        let len = (bad.len() - RECORD_HEADER) as u16;
        bad[3..5].copy_from_slice(&len.to_be_bytes());
        bad.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
        assert!(
            matches!(parse(&bad, 16384), Hello::Invalid(_)),
            "{:?}",
            parse(&bad, 16384)
        );
        // Over the bound.
        assert!(matches!(parse(&hello, 100), Hello::Invalid(_)));
        // Random bytes never panic.
        let mut x = 0x1234_5678u32;
        for len in 0..600 {
            let bytes: Vec<u8> = std::iter::once(22)
                .chain((0..len).map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                }))
                .collect();
            let _ = parse(&bytes, 16384);
        }
    }

    #[test]
    fn host_names_are_checked_and_lowercased() {
        assert_eq!(
            host_name(b"WWW.Example.ORG."),
            Some("www.example.org".into())
        );
        assert_eq!(
            host_name(b"under_score.lan"),
            Some("under_score.lan".into())
        );
        assert_eq!(host_name(b"bad name"), None);
        assert_eq!(host_name("é.org".as_bytes()), None);
    }
}
