//! Hex dumps and failure reports for packet tests.

use std::{fmt::Write as _, net::SocketAddr};

use super::*;

/// Hex dump, 16 bytes per line, each line prefixed with its offset in hex.
pub fn hexdump(bytes: &[u8]) -> String {
    hexdump_marked(bytes, None)
}

fn hexdump_marked(bytes: &[u8], mark: Option<usize>) -> String {
    let mut s = String::new();
    for (n, line) in bytes.chunks(16).enumerate() {
        let _ = write!(s, "{:04x} ", n * 16);
        for (i, b) in line.iter().enumerate() {
            let _ = write!(s, "{}{b:02x}", if i == 8 { "  " } else { " " });
        }
        s.push('\n');
        let col = mark
            .and_then(|m| m.checked_sub(n * 16))
            .filter(|c| *c < line.len());
        if let Some(col) = col {
            let pad = " ".repeat(6 + 3 * col + usize::from(col >= 8));
            let _ = writeln!(s, "{pad}^^ first difference");
        }
    }
    s
}

/// One line describing `frame` as [`decode`] sees it, or why it does not decode.
pub fn summary(frame: &[u8]) -> String {
    let d = match decode(frame) {
        Ok(d) => d,
        Err(e) => return format!("does not decode: {e}"),
    };
    let ep = |a, p: Option<u16>| p.map_or(format!("{a}"), |p| SocketAddr::new(a, p).to_string());
    let (src, dst) = (ep(d.src, d.sport), ep(d.dst, d.dport));
    let mut s = format!(
        "{src} -> {dst} proto {} ttl {} vlan {:?}",
        d.proto, d.ttl, d.vlan
    );
    if let (Some(f), Some(seq), Some(ack)) = (d.tcp_flags, d.seq, d.ack) {
        let _ = write!(s, " flags {f:#04x} seq {seq} ack {ack}");
    }
    if let Some(i) = &d.icmp {
        let _ = write!(
            s,
            " icmp {}/{} mtu {} inner {:?}",
            i.ty, i.code, i.mtu, i.inner
        );
    }
    let _ = write!(s, " payload {} bytes", d.payload.len());
    s
}

/// Test-failure report: hex dumps and [`summary`] lines of `input`, `expected` and
/// `actual`, with the first offset where `expected` and `actual` differ marked.
pub fn diff_report(input: &[u8], expected: &[u8], actual: &[u8]) -> String {
    let common = expected.iter().zip(actual).position(|(e, a)| e != a);
    let unequal = expected.len() != actual.len();
    let first = common.or(unequal.then(|| expected.len().min(actual.len())));
    let mut s = String::new();
    for (name, b, mark) in [
        ("input", input, None),
        ("expected", expected, first),
        ("actual", actual, first),
    ] {
        let _ = writeln!(s, "{name} ({} bytes): {}", b.len(), summary(b));
        s.push_str(&hexdump_marked(b, mark));
    }
    let at = |b: &[u8], i: usize| {
        b.get(i)
            .map_or("end of frame".into(), |v| format!("{v:#04x}"))
    };
    let _ = match first {
        None => writeln!(s, "expected and actual are identical"),
        Some(i) => writeln!(
            s,
            "first difference at offset {i} ({i:#06x}): expected {}, actual {}",
            at(expected, i),
            at(actual, i)
        ),
    };
    s
}
