//! `--since 10m`: how far back `roost logs` reads.

use std::time::Duration;

/// The longest `--since` accepted: a year is more than any rotation keeps.
const MAX_SINCE: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinceError {
    #[error("{0:?} is not a duration: expected a number and a unit, like 30s, 10m, 2h or 1d")]
    Invalid(String),
    #[error("{0:?} is more than a year")]
    TooLong(String),
}

/// A whole number followed by `s`, `m`, `h` or `d` (`10m`, `2h`).
pub fn parse_since(text: &str) -> Result<Duration, SinceError> {
    let invalid = || SinceError::Invalid(text.to_owned());
    let unit = text.chars().last().ok_or_else(invalid)?;
    let seconds_per_unit: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(invalid()),
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let count: u64 = digits
        .parse()
        .map_err(|_| SinceError::TooLong(text.to_owned()))?;
    let seconds = count
        .checked_mul(seconds_per_unit)
        .ok_or_else(|| SinceError::TooLong(text.to_owned()))?;
    let since = Duration::from_secs(seconds);
    if since > MAX_SINCE {
        return Err(SinceError::TooLong(text.to_owned()));
    }
    Ok(since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_since("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_since("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_since("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_since("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "m", "10", "-1m", "1.5h", "10 m", "10M", "ten m"] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(parse_since("400d"), Err(SinceError::TooLong(_))));
        assert!(matches!(
            parse_since("99999999999999999999999s"),
            Err(SinceError::TooLong(_))
        ));
    }
}
