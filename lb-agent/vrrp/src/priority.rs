//! Effective priority from trackers, keepalived's rules: a passing tracker with
//! weight w > 0 adds w, a failing one with w < 0 subtracts |w|, a failing weight-0
//! tracker puts the instance in FAULT; 255 (address owner) is never adjusted.

/// One tracker's weight and whether it passes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub weight: i32,
    pub passing: bool,
}

/// `Some(priority)` (1..=254, or 255 for an owner), or `None` for FAULT.
pub fn effective(base: u8, trackers: &[Tracked]) -> Option<u8> {
    if trackers.iter().any(|t| t.weight == 0 && !t.passing) {
        return None;
    }
    if base == 255 {
        return Some(255);
    }
    let adjust: i32 = trackers
        .iter()
        .map(|t| match (t.weight, t.passing) {
            (w, true) if w > 0 => w,
            (w, false) if w < 0 => w,
            _ => 0,
        })
        .sum();
    Some((i32::from(base) + adjust).clamp(1, 254) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(weight: i32, passing: bool) -> Tracked {
        Tracked { weight, passing }
    }

    #[test]
    fn weights_add_and_subtract_as_keepalived_does() {
        assert_eq!(effective(40, &[t(6, true), t(6, true)]), Some(52));
        assert_eq!(effective(40, &[t(6, true), t(6, false)]), Some(46));
        assert_eq!(effective(100, &[t(-20, false), t(-5, true)]), Some(80));
        assert_eq!(effective(250, &[t(20, true)]), Some(254));
        assert_eq!(effective(5, &[t(-20, false)]), Some(1));
        assert_eq!(effective(255, &[t(-20, false), t(6, true)]), Some(255));
        assert_eq!(effective(100, &[t(0, false), t(6, true)]), None);
        assert_eq!(effective(100, &[t(0, true)]), Some(100));
    }
}
