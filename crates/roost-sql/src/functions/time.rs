//! `parse_time` and `time_to_epoch`: dates as text, with Java's pattern letters.
//!
//! For: AWS's two time functions. `parse_time(pattern, millis[, zone])`
//! formats with a Joda-Time pattern (`yyyy.MM.dd G 'at' HH:mm:ss z`);
//! `time_to_epoch(text, pattern)` parses with a `java.time` pattern and
//! returns epoch milliseconds. Both are translated here letter by letter onto
//! `jiff`, whose bundled IANA database supplies zones and their
//! abbreviations (`CST`), so results do not depend on the host.
//! Never: guess. A pattern letter this module does not know, a zone it cannot
//! find, or text that does not fit the pattern gives Undefined, as Java's
//! exceptions do in AWS.
//!
//! Supported letters — formatting: G C Y y x w e E M d D a K h H k m s S z Z
//! (long zone names, `zzzz`, print the zone id: the database has no English
//! names); parsing: G y u M L d D E a h K k H m s S n z V O X x Z, with
//! lenient widths (a field not followed directly by another number takes as
//! many digits as are there).

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ZonedDateTime};

use crate::value::Value;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
/// Longest pattern or text handled: a bound on work per call.
const MAX_LEN: usize = 256;

#[derive(Debug, PartialEq)]
enum PatTok {
    Field(char, usize),
    Lit(String),
}

/// Splits a Java date pattern: runs of one letter are fields, `'…'` is
/// literal text (`''` a quote), everything else literal.
fn tokenize(pattern: &str) -> Option<Vec<PatTok>> {
    if pattern.len() > MAX_LEN {
        return None;
    }
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    let push_lit = |out: &mut Vec<PatTok>, c: char| match out.last_mut() {
        Some(PatTok::Lit(s)) => s.push(c),
        _ => out.push(PatTok::Lit(c.to_string())),
    };
    while let Some(c) = chars.next() {
        if c.is_ascii_alphabetic() {
            let mut n = 1;
            while chars.peek() == Some(&c) {
                chars.next();
                n += 1;
            }
            out.push(PatTok::Field(c, n));
        } else if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                push_lit(&mut out, '\'');
                continue;
            }
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        push_lit(&mut out, '\'');
                    }
                    Some('\'') => break,
                    Some(c) => push_lit(&mut out, c),
                    None => return None,
                }
            }
        } else {
            push_lit(&mut out, c);
        }
    }
    Some(out)
}

/// A zone by IANA name, `UTC`/`GMT`/`Z`, a fixed offset (`+01:00`,
/// `UTC+01:00`, `GMT-5`), or a common abbreviation (`PST` is
/// America/Los_Angeles, as Java reads it).
fn zone(name: &str) -> Option<TimeZone> {
    match name {
        "Z" | "UTC" | "GMT" | "UT" | "Etc/UTC" | "Etc/GMT" => return Some(TimeZone::UTC),
        _ => {}
    }
    for prefix in ["UTC", "GMT", "UT"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return offset_text(rest).map(TimeZone::fixed);
            }
        }
    }
    if name.starts_with(['+', '-']) {
        return offset_text(name).map(TimeZone::fixed);
    }
    let alias = match name {
        "EST" | "EDT" => "America/New_York",
        "CST" | "CDT" => "America/Chicago",
        "MST" | "MDT" => "America/Denver",
        "PST" | "PDT" => "America/Los_Angeles",
        "AKST" | "AKDT" => "America/Anchorage",
        "HST" => "Pacific/Honolulu",
        "BST" => "Europe/London",
        "CET" | "CEST" => "Europe/Paris",
        "EET" | "EEST" => "Europe/Athens",
        "IST" => "Asia/Kolkata",
        "JST" => "Asia/Tokyo",
        "AEST" | "AEDT" => "Australia/Sydney",
        other => other,
    };
    TimeZone::get(alias).ok()
}

/// `+HH`, `+HHMM`, `+HH:MM`, `+HH:MM:SS`, `+H` (and `-`).
fn offset_text(s: &str) -> Option<Offset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).and_then(|d| d.parse::<i32>().ok());
    let (h, m, sec) = match digits.len() {
        1 | 2 => (num(0..digits.len())?, 0, 0),
        4 => (num(0..2)?, num(2..4)?, 0),
        6 => (num(0..2)?, num(2..4)?, num(4..6)?),
        _ => return None,
    };
    if h > 18 || m > 59 || sec > 59 {
        return None;
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60 + sec)).ok()
}

fn pad(out: &mut String, n: i64, width: usize) {
    if n < 0 {
        out.push('-');
    }
    let digits = n.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

fn write_offset(out: &mut String, seconds: i32, colon: bool) {
    out.push(if seconds < 0 { '-' } else { '+' });
    let s = seconds.unsigned_abs();
    pad(out, i64::from(s / 3600), 2);
    if colon {
        out.push(':');
    }
    pad(out, i64::from(s % 3600 / 60), 2);
}

/// Formats with a Joda-Time pattern; None for letters Joda rejects.
fn format_joda(pattern: &str, zdt: &ZonedDateTime) -> Option<String> {
    let mut out = String::new();
    let year = i64::from(zdt.year());
    for tok in tokenize(pattern)? {
        let (c, n) = match tok {
            PatTok::Lit(s) => {
                out.push_str(&s);
                continue;
            }
            PatTok::Field(c, n) => (c, n),
        };
        match c {
            'G' => out.push_str(if year > 0 { "AD" } else { "BC" }),
            'C' => pad(&mut out, year.abs() / 100, n),
            'y' | 'Y' => {
                let y = if c == 'Y' && year <= 0 {
                    1 - year
                } else {
                    year
                };
                if n == 2 {
                    pad(&mut out, y.rem_euclid(100), 2);
                } else {
                    pad(&mut out, y, n);
                }
            }
            'x' | 'w' => {
                let iso = zdt.date().iso_week_date();
                if c == 'x' {
                    let y = i64::from(iso.year());
                    if n == 2 {
                        pad(&mut out, y.rem_euclid(100), 2);
                    } else {
                        pad(&mut out, y, n);
                    }
                } else {
                    pad(&mut out, i64::from(iso.week()), n);
                }
            }
            'e' => pad(&mut out, i64::from(zdt.weekday().to_monday_one_offset()), n),
            'E' => {
                let name = DAYS[zdt.weekday().to_monday_zero_offset() as usize];
                out.push_str(if n >= 4 { name } else { &name[..3] });
            }
            'M' => {
                let m = zdt.month();
                if n >= 3 {
                    let name = MONTHS[(m - 1) as usize];
                    out.push_str(if n >= 4 { name } else { &name[..3] });
                } else {
                    pad(&mut out, i64::from(m), n);
                }
            }
            'd' => pad(&mut out, i64::from(zdt.day()), n),
            'D' => pad(&mut out, i64::from(zdt.day_of_year()), n),
            'a' => out.push_str(if zdt.hour() < 12 { "AM" } else { "PM" }),
            'H' => pad(&mut out, i64::from(zdt.hour()), n),
            'k' => pad(
                &mut out,
                i64::from(if zdt.hour() == 0 { 24 } else { zdt.hour() }),
                n,
            ),
            'K' => pad(&mut out, i64::from(zdt.hour() % 12), n),
            'h' => {
                let h = zdt.hour() % 12;
                pad(&mut out, i64::from(if h == 0 { 12 } else { h }), n);
            }
            'm' => pad(&mut out, i64::from(zdt.minute()), n),
            's' => pad(&mut out, i64::from(zdt.second()), n),
            'S' => {
                // Joda keeps milliseconds: the fraction's first n digits.
                let millis = format!("{:03}", zdt.millisecond());
                for i in 0..n {
                    out.push(millis.as_bytes().get(i).map_or('0', |b| *b as char));
                }
            }
            'z' => {
                let tz = zdt.time_zone();
                if n >= 4 {
                    out.push_str(tz.iana_name().unwrap_or("UTC"));
                } else {
                    let info = tz.to_offset_info(zdt.timestamp());
                    let abbreviation = info.abbreviation();
                    if abbreviation.starts_with(['+', '-']) {
                        // Zones without an abbreviation print their offset.
                        write_offset(&mut out, zdt.offset().seconds(), true);
                    } else {
                        out.push_str(abbreviation);
                    }
                }
            }
            'Z' => match n {
                1 => write_offset(&mut out, zdt.offset().seconds(), false),
                2 => write_offset(&mut out, zdt.offset().seconds(), true),
                _ => out.push_str(zdt.time_zone().iana_name().unwrap_or("UTC")),
            },
            _ => return None,
        }
    }
    Some(out)
}

/// `parse_time(pattern, epochMillis[, zone])`; the zone defaults to UTC.
pub(super) fn parse_time<'a>(args: &[Value<'a>], v2: bool) -> Value<'a> {
    let (Some(pattern), Some(millis)) = (args[0].to_text(v2), args[1].to_int_implicit()) else {
        return Value::Undefined;
    };
    let tz = match args.get(2) {
        Some(z) => match z.to_text(v2).and_then(|z| zone(&z)) {
            Some(tz) => tz,
            None => return Value::Undefined,
        },
        None => TimeZone::UTC,
    };
    let Some(ts) = i64::try_from(millis)
        .ok()
        .and_then(|m| Timestamp::from_millisecond(m).ok())
    else {
        return Value::Undefined;
    };
    let zdt = ts.to_zoned_datetime(tz);
    format_joda(&pattern, &zdt).map_or(Value::Undefined, Value::string)
}

/// Fields read from text, resolved into an instant at the end.
#[derive(Default)]
struct Parsed {
    year: Option<i64>,
    bc: bool,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    hour24: Option<i64>,
    hour12: Option<i64>,
    pm: Option<bool>,
    minute: i64,
    second: i64,
    nanos: i64,
    tz: Option<TimeZone>,
}

struct Cursor<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> Cursor<'t> {
    fn rest(&self) -> &'t str {
        &self.text[self.pos..]
    }

    /// Between `min` and `max` ASCII digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let rest = self.rest().as_bytes();
        let len = rest
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if len < min || len == 0 {
            return None;
        }
        let value = self.rest()[..len].parse().ok()?;
        self.pos += len;
        Some((value, len))
    }

    /// One of `names` (full, or its first three letters), any case; the
    /// index.
    fn name(&mut self, names: &[&str]) -> Option<usize> {
        let rest = self.rest();
        for (i, full) in names.iter().enumerate() {
            for candidate in [*full, &full[..3]] {
                if rest.len() >= candidate.len()
                    && rest.is_char_boundary(candidate.len())
                    && rest[..candidate.len()].eq_ignore_ascii_case(candidate)
                {
                    self.pos += candidate.len();
                    return Some(i);
                }
            }
        }
        None
    }

    fn word(&mut self, allowed: impl Fn(char) -> bool) -> &'t str {
        let rest = self.rest();
        let len = rest.find(|c: char| !allowed(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }
}

fn is_numeric_field(tok: Option<&PatTok>) -> bool {
    match tok {
        Some(PatTok::Field(c, n)) => {
            matches!(
                c,
                'y' | 'u' | 'd' | 'D' | 'H' | 'k' | 'K' | 'h' | 'm' | 's' | 'S' | 'n'
            ) || (matches!(c, 'M' | 'L') && *n < 3)
        }
        _ => false,
    }
}

/// `time_to_epoch(text, pattern)`: the instant in epoch milliseconds; text
/// without a zone is UTC.
pub(super) fn time_to_epoch<'a>(text: &Value<'a>, pattern: &Value<'a>, v2: bool) -> Value<'a> {
    let (Some(text), Some(pattern)) = (text.to_text(v2), pattern.to_text(v2)) else {
        return Value::Undefined;
    };
    if text.len() > MAX_LEN {
        return Value::Undefined;
    }
    parse_java(&text, &pattern).map_or(Value::Undefined, |ms| Value::Int(i128::from(ms)))
}

fn parse_java(text: &str, pattern: &str) -> Option<i64> {
    let toks = tokenize(pattern)?;
    let mut cur = Cursor { text, pos: 0 };
    let mut p = Parsed::default();
    for (i, tok) in toks.iter().enumerate() {
        let (c, n) = match tok {
            PatTok::Lit(s) => {
                cur.rest().starts_with(s.as_str()).then_some(())?;
                cur.pos += s.len();
                continue;
            }
            PatTok::Field(c, n) => (*c, *n),
        };
        // A number directly followed by another takes exactly its width.
        let fixed = is_numeric_field(toks.get(i + 1));
        let width = |default_max: usize| {
            if fixed {
                (n, n)
            } else {
                (1, default_max.max(n))
            }
        };
        match c {
            'y' | 'u' => {
                if n == 2 {
                    let (y, _) = cur.digits(2, 2)?;
                    p.year = Some(2000 + y);
                } else {
                    let (min, max) = width(9);
                    p.year = Some(cur.digits(min, max)?.0);
                }
            }
            'G' => {
                let era = cur.word(|c| c.is_ascii_alphabetic());
                p.bc = match era.to_ascii_uppercase().as_str() {
                    "AD" | "CE" => false,
                    "BC" | "BCE" => true,
                    _ => return None,
                };
            }
            'M' | 'L' if n >= 3 => p.month = Some(cur.name(&MONTHS)? as i64 + 1),
            'M' | 'L' => {
                let (min, max) = width(2);
                p.month = Some(cur.digits(min, max)?.0);
            }
            'd' => {
                let (min, max) = width(2);
                p.day = Some(cur.digits(min, max)?.0);
            }
            'D' => {
                let (min, max) = width(3);
                p.day_of_year = Some(cur.digits(min, max)?.0);
            }
            'E' => {
                cur.name(&DAYS)?;
            }
            'a' => {
                let ampm = cur.word(|c| c.is_ascii_alphabetic());
                p.pm = Some(match ampm.to_ascii_uppercase().as_str() {
                    "AM" => false,
                    "PM" => true,
                    _ => return None,
                });
            }
            'H' | 'k' => {
                let (min, max) = width(2);
                let h = cur.digits(min, max)?.0;
                p.hour24 = Some(if c == 'k' && h == 24 { 0 } else { h });
            }
            'h' | 'K' => {
                let (min, max) = width(2);
                let h = cur.digits(min, max)?.0;
                p.hour12 = Some(if c == 'h' && h == 12 { 0 } else { h });
            }
            'm' => {
                let (min, max) = width(2);
                p.minute = cur.digits(min, max)?.0;
            }
            's' => {
                let (min, max) = width(2);
                p.second = cur.digits(min, max)?.0;
            }
            'S' => {
                let (min, max) = width(9);
                let (f, len) = cur.digits(min, max.min(9))?;
                p.nanos = f * 10i64.pow(9 - len as u32);
            }
            'n' => {
                let (min, max) = width(9);
                p.nanos = cur.digits(min, max)?.0;
            }
            'z' | 'V' => {
                let name = cur.word(|c| c.is_ascii_alphanumeric() || "/_+-:".contains(c));
                p.tz = Some(zone(name)?);
            }
            'O' => {
                let name = cur.word(|c| c.is_ascii_alphanumeric() || "+-:".contains(c));
                p.tz = Some(zone(name)?);
            }
            'X' | 'x' | 'Z' => {
                if c != 'x' && cur.rest().starts_with('Z') {
                    cur.pos += 1;
                    p.tz = Some(TimeZone::UTC);
                } else {
                    let off = cur.word(|c| c.is_ascii_digit() || c == '+' || c == '-' || c == ':');
                    p.tz = Some(TimeZone::fixed(offset_text(off)?));
                }
            }
            _ => return None,
        }
    }
    if cur.pos != text.len() {
        return None;
    }
    resolve(p)
}

fn resolve(p: Parsed) -> Option<i64> {
    let mut year = p.year?;
    if p.bc {
        year = 1 - year;
    }
    let year = i16::try_from(year).ok()?;
    let date = match (p.month, p.day, p.day_of_year) {
        (Some(m), Some(d), _) => {
            Date::new(year, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()?
        }
        (None, None, Some(doy)) => Date::new(year, 1, 1)
            .ok()?
            .with()
            .day_of_year(i16::try_from(doy).ok()?)
            .build()
            .ok()?,
        _ => return None,
    };
    let hour = match (p.hour24, p.hour12) {
        (Some(h), _) => h,
        (None, Some(h)) => h + if p.pm == Some(true) { 12 } else { 0 },
        (None, None) => 0,
    };
    let dt = DateTime::new(
        date.year(),
        date.month(),
        date.day(),
        i8::try_from(hour).ok()?,
        i8::try_from(p.minute).ok()?,
        i8::try_from(p.second).ok()?,
        i32::try_from(p.nanos).ok()?,
    )
    .ok()?;
    let tz = p.tz.unwrap_or(TimeZone::UTC);
    let zdt = dt.to_zoned_datetime(tz).ok()?;
    Some(zdt.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(pattern: &str, millis: i64, zone_name: &str) -> Option<String> {
        let tz = zone(zone_name)?;
        let zdt = Timestamp::from_millisecond(millis)
            .ok()?
            .to_zoned_datetime(tz);
        format_joda(pattern, &zdt)
    }

    #[test]
    fn joda_formatting() {
        assert_eq!(
            fmt(
                "yyyy.MM.dd G 'at' HH:mm:ss z",
                100_000_000,
                "America/Belize"
            )
            .as_deref(),
            Some("1970.01.01 AD at 21:46:40 CST")
        );
        assert_eq!(
            fmt("EEE, d MMM yyyy HH:mm:ss Z", 1_585_903_518_000, "UTC").as_deref(),
            Some("Fri, 3 Apr 2020 08:45:18 +0000")
        );
        assert_eq!(
            fmt("yy-M-d h:mm a SSS", 1_585_903_518_592, "UTC").as_deref(),
            Some("20-4-3 8:45 AM 592")
        );
        assert_eq!(fmt("'it''s' HH''", 0, "UTC").as_deref(), Some("it's 00'"));
        assert_eq!(fmt("q", 0, "UTC"), None);
    }

    #[test]
    fn java_parsing() {
        assert_eq!(
            parse_java("2020-04-03 09:45:18 UTC+01:00", "yyyy-MM-dd HH:mm:ss VV"),
            Some(1_585_903_518_000)
        );
        assert_eq!(
            parse_java("18 December 2015", "dd MMMM yyyy"),
            Some(1_450_396_800_000)
        );
        assert_eq!(
            parse_java(
                "2007-12-03 10:15:30.592 America/Los_Angeles",
                "yyyy-MM-dd HH:mm:ss.SSS z"
            ),
            Some(1_196_705_730_592)
        );
        assert_eq!(
            parse_java("20201231235959", "yyyyMMddHHmmss"),
            Some(1_609_459_199_000)
        );
        assert_eq!(parse_java("2020-13-01", "yyyy-MM-dd"), None);
        assert_eq!(parse_java("2020-01-01 extra", "yyyy-MM-dd"), None);
        assert_eq!(parse_java("01/02", "MM/dd"), None);
    }
}
