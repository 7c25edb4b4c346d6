//! Durations as config values: "1s", "200ms", "1.5s", "2m".

use std::time::Duration;

/// What a duration must look like, for error messages.
pub const EXPECTED: &str = "a duration like \"1s\", \"200ms\" or \"1.5s\" (units: ms, s, m, h)";

/// Parses a duration; `None` if it is not one.
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => value,
        "s" => value * 1e3,
        "m" => value * 60e3,
        "h" => value * 3600e3,
        _ => return None,
    };
    if !millis.is_finite() || millis > 1e12 {
        return None;
    }
    Some(Duration::from_micros((millis * 1e3).round() as u64))
}

/// Formats a duration the way configs write it.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse("0ms"), Some(Duration::ZERO));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "", "1", "s", "1 s", "1sec", "-1s", ".5s", "5.s", "1e3ms", "1s2", "1.2.3s",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} was accepted");
        }
    }

    #[test]
    fn formats_round_trip() {
        for d in [Duration::from_secs(2), Duration::from_millis(250)] {
            assert_eq!(parse(&format(d)), Some(d));
        }
    }
}
