//! The host an HTTP/1.x request is for, from the first bytes a client sends: the
//! authority of an absolute-form target, else the one `Host` header (RFC 9112
//! 3.2.2), without its port, bounded in size.

use super::client_hello::host_name;

/// What the bytes so far say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// The request head is not complete yet.
    NeedMore,
    /// The request is for this host (lowercase, no port, no trailing dot; an IPv6
    /// literal without brackets).
    Host(String),
    /// A complete head naming no host (HTTP/1.0 without `Host`).
    NoHost,
    /// Not an HTTP/1.x request this parser accepts; the reason.
    Invalid(&'static str),
}

/// Most headers a request head may have (HAProxy's default `tune.http.maxhdr` is
/// 101 with the request line).
const MAX_HEADERS: usize = 100;

/// Parses the first bytes of a connection (with httparse); `max` bounds the request
/// head.
pub fn parse(buf: &[u8], max: usize) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let end = match req.parse(buf) {
        Ok(httparse::Status::Complete(end)) => end,
        // What came so far is a request's start; more is needed unless it is
        // already too large.
        Ok(httparse::Status::Partial) if buf.len() > max => {
            return Head::Invalid("a request head larger than the bound");
        }
        Ok(httparse::Status::Partial) => return Head::NeedMore,
        Err(e) => return Head::Invalid(invalid(e)),
    };
    if end > max {
        return Head::Invalid("a request head larger than the bound");
    }
    let mut host = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Head::Invalid("two Host headers");
            }
            let Ok(value) = std::str::from_utf8(h.value) else {
                return Head::Invalid("a Host that is not text");
            };
            host = Some(value.trim());
        }
    }
    let target = req.path.unwrap_or_default();
    // An absolute-form target's authority wins over Host (RFC 9112 3.2.2).
    let authority = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .map(|rest| rest.split(['/', '?']).next().unwrap_or_default())
        .or(host);
    match authority {
        None => Head::NoHost,
        Some(a) => match without_port(a) {
            Some(h) if !h.is_empty() => Head::Host(h),
            Some(_) => Head::NoHost,
            None => Head::Invalid("a Host that is not a host name"),
        },
    }
}

/// What httparse refused, in words.
fn invalid(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::TooManyHeaders => "more than 100 headers",
        httparse::Error::HeaderName | httparse::Error::HeaderValue | httparse::Error::NewLine => {
            "a malformed header line"
        }
        _ => "not an HTTP/1.x request line",
    }
}

/// `host[:port]` or `[v6][:port]` as a host name, lowercase.
fn without_port(authority: &str) -> Option<String> {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return v6.parse::<std::net::Ipv6Addr>().ok().map(|a| a.to_string());
    }
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return None,
        None => authority,
    };
    host_name(host.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    #[test]
    fn the_host_header_names_the_host_without_its_port() {
        let req = b"GET /x HTTP/1.1\r\nUser-Agent: t\r\nhOsT:  App.Example.org:8080 \r\n\r\n";
        assert_eq!(parse(req, MAX), Head::Host("app.example.org".into()));
        for cut in 0..req.len() {
            assert_eq!(parse(&req[..cut], MAX), Head::NeedMore, "cut at {cut}");
        }
        assert_eq!(
            parse(b"GET / HTTP/1.1\nHost: a.lan\n\n", MAX),
            Head::Host("a.lan".into())
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: [2001:DB8::1]:80\r\n\r\n", MAX),
            Head::Host("2001:db8::1".into())
        );
    }

    #[test]
    fn an_absolute_target_wins_over_host() {
        let req = b"GET http://Other.lan:81/p?q HTTP/1.1\r\nHost: a.lan\r\n\r\n";
        assert_eq!(parse(req, MAX), Head::Host("other.lan".into()));
    }

    #[test]
    fn no_host_and_bad_requests() {
        assert_eq!(parse(b"GET / HTTP/1.0\r\n\r\n", MAX), Head::NoHost);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", MAX),
            Head::Invalid("two Host headers")
        );
        assert!(matches!(
            parse(b"\x16\x03\x01\x02\x00\x01\n", MAX),
            Head::Invalid(_)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/2.0\r\n\r\n", MAX),
            Head::Invalid(_)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", MAX),
            Head::Invalid(_)
        ));
        let many = format!(
            "GET / HTTP/1.1\r\n{}Host: a\r\n\r\n",
            "X: y\r\n".repeat(100)
        );
        assert_eq!(
            parse(many.as_bytes(), 1 << 20),
            Head::Invalid("more than 100 headers")
        );
        // A 64 KB request line: refused at the bound, not buffered further.
        let long = format!("GET /{} HTTP/1.1", "a".repeat(65536));
        assert_eq!(
            parse(long.as_bytes(), MAX),
            Head::Invalid("a request head larger than the bound")
        );
    }
}
