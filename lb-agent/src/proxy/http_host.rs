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

/// Parses the first bytes of a connection; `max` bounds the request head.
pub fn parse(buf: &[u8], max: usize) -> Head {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2));
    let Some(end) = end else {
        // A request line that cannot be HTTP fails at once, not at the bound.
        if let Some(line_end) = buf.iter().position(|&b| b == b'\n')
            && request_line(&buf[..line_end]).is_err()
        {
            return Head::Invalid("not an HTTP/1.x request line");
        }
        if buf.len() > max {
            return Head::Invalid("a request head larger than the bound");
        }
        return Head::NeedMore;
    };
    if end > max {
        return Head::Invalid("a request head larger than the bound");
    }
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Head::Invalid("a request head that is not text");
    };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let target = match request_line(first.as_bytes()) {
        Ok(t) => t,
        Err(why) => return Head::Invalid(why),
    };
    let mut host = None;
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Head::Invalid("a header line without a colon");
        };
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Head::Invalid("two Host headers");
            }
            host = Some(value.trim());
        }
    }
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

/// The request target of `METHOD SP target SP HTTP/1.x`.
fn request_line(line: &[u8]) -> Result<&str, &'static str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| "a request line that is not text")?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not an HTTP/1.x request line");
    };
    let token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !token || target.is_empty() || !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err("not an HTTP/1.x request line");
    }
    Ok(target)
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
        // A 64 KB request line: refused at the bound, not buffered further.
        let long = format!("GET /{} HTTP/1.1", "a".repeat(65536));
        assert_eq!(
            parse(long.as_bytes(), MAX),
            Head::Invalid("a request head larger than the bound")
        );
    }
}
