//! `X-Amz-Date` timestamps (`yyyyMMdd'T'HHmmss'Z'`, always UTC) to and from
//! seconds since the Unix epoch.
//!
//! Hand-written rather than pulled from a date crate because SigV4 needs
//! exactly one strict format, and a strict parser is the point: anything but
//! sixteen characters of that shape must be refused, never guessed at. Must
//! never panic, whatever the input or the clock says (times before 1970 and
//! far-future years included).

use std::time::SystemTime;

/// Seconds since the Unix epoch, negative before it. Saturates rather than
/// wrapping for clocks beyond what an `i64` of seconds can hold.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs())
            .map(|s| -s)
            .unwrap_or(i64::MIN),
    }
}

/// Formats `secs` as `yyyyMMddTHHmmssZ`.
pub(crate) fn format(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses a strict `yyyyMMddTHHmmssZ` into seconds since the epoch.
pub(crate) fn parse(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // No leap seconds: AWS's clients never produce :60 and neither do we.
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The `yyyyMMdd` part of a validated timestamp.
pub(crate) fn date_part(amz_date: &str) -> &str {
    amz_date.get(..8).unwrap_or("")
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

// Howard Hinnant's proleptic-Gregorian day counting, valid for every i64 day
// count a `SystemTime` can produce.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(parse("19700101T000000Z"), Some(0));
        assert_eq!(parse("20261130T104227Z"), Some(1_796_035_347));
        assert_eq!(parse("20240229T235959Z"), Some(1_709_251_199));
        assert_eq!(format(1_796_035_347), "20261130T104227Z");
        assert_eq!(format(-1), "19691231T235959Z");
        assert_eq!(format(0), "19700101T000000Z");
    }

    #[test]
    fn round_trips_across_centuries() {
        let mut s = -10_000_000_000i64;
        while s < 20_000_000_000 {
            assert_eq!(parse(&format(s)), Some(s), "{s}");
            s += 86_399 * 37 + 13;
        }
    }

    #[test]
    fn rejects_anything_but_the_strict_form() {
        for bad in [
            "",
            "20261130T104227",
            "20261130T104227z",
            "20261130 104227Z",
            "2026-11-30T10:42:27Z",
            "20261130T104227ZZ",
            "20261330T104227Z",
            "20261100T104227Z",
            "20230229T000000Z",
            "21000229T000000Z",
            "20261131T000000Z",
            "20261130T244227Z",
            "20261130T106027Z",
            "20261130T104260Z",
            "2026113OT104227Z",
            "+0261130T104227Z",
            "２０２６1130T10422",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert!(parse("20000229T000000Z").is_some());
    }

    #[test]
    fn clock_extremes_do_not_panic() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        let _ = format(unix_seconds(far));
        let _ = format(i64::MAX);
        let _ = format(i64::MIN);
        assert!(unix_seconds(SystemTime::UNIX_EPOCH - Duration::from_secs(5)) == -5);
    }
}
