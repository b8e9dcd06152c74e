//! String functions, regular expressions, and `get`.
//!
//! For: AWS's string functions, which convert their arguments to String with
//! the standard conversions first (`upper(["a"])` is `"[\"A\"]"`), and the
//! regexp_* family with Java's pattern and replacement syntax.
//! Never: build a string over [`super::MAX_STRING_BYTES`], or run a pattern
//! without bounds: patterns are limited in size and backtracking.
//!
//! Positions and lengths count characters (Unicode scalar values). Java, which
//! AWS runs, counts UTF-16 units; the two differ only for characters outside
//! the Basic Multilingual Plane (most emoji).

use std::borrow::Cow;

use fancy_regex::{Captures, Regex, RegexBuilder};

use super::MAX_STRING_BYTES;
use crate::ast::Call;
use crate::error::EvalError;
use crate::value::{Obj, Value};

/// Longest pattern compiled from a payload value.
const MAX_PATTERN_BYTES: usize = 4096;
/// Backtracking steps one match may take before it counts as no result.
const BACKTRACK_LIMIT: usize = 100_000;
/// Memory the underlying automata may use per pattern.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn too_large(what: &'static str) -> EvalError {
    EvalError::TooLarge {
        what,
        limit: MAX_STRING_BYTES,
    }
}

/// Compiles a pattern with Roost's bounds; the error text is for SqlError.
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!("pattern longer than {MAX_PATTERN_BYTES} bytes"));
    }
    RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        .delegate_size_limit(REGEX_SIZE_LIMIT)
        .delegate_dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

/// The call's precompiled pattern, or the second argument compiled now.
fn pattern<'r>(
    call: &'r Call,
    arg: &Value<'_>,
    v2: bool,
    slot: &'r mut Option<Regex>,
) -> Option<&'r Regex> {
    if let Some(re) = &call.regex {
        return Some(re);
    }
    let text = arg.to_text(v2)?;
    *slot = Some(compile_regex(&text).ok()?);
    slot.as_ref()
}

pub(super) fn chr<'a>(n: &Value<'a>) -> Value<'a> {
    match n.to_int_down() {
        // AWS: "the ASCII character that corresponds to the given Int".
        Some(n @ 0..=127) => Value::string(char::from(n as u8).to_string()),
        _ => Value::Undefined,
    }
}

/// `concat(…)`: with any Array argument, one flat Array (arrays spliced,
/// other values appended); otherwise the arguments as Strings, joined.
pub(super) fn concat<'a>(args: &[Value<'a>], v2: bool) -> Result<Value<'a>, EvalError> {
    if args.iter().any(|a| matches!(a, Value::Array(_))) {
        let mut out = Vec::new();
        for a in args {
            match a {
                Value::Array(_) => out.extend(a.elements(v2)),
                Value::Undefined => return Ok(Value::Undefined),
                other => out.push(other.clone()),
            }
        }
        return Ok(Value::array(out));
    }
    let mut out = String::new();
    for a in args {
        let Some(text) = a.to_text(v2) else {
            return Ok(Value::Undefined);
        };
        if out.len() + text.len() > MAX_STRING_BYTES {
            return Err(too_large("concat() result"));
        }
        out.push_str(&text);
    }
    Ok(Value::string(out))
}

/// A Boolean test on two strings (startswith, endswith).
pub(super) fn test2<'a>(
    s: &Value<'a>,
    t: &Value<'a>,
    v2: bool,
    f: fn(&str, &str) -> bool,
) -> Value<'a> {
    match (s.to_text(v2), t.to_text(v2)) {
        (Some(s), Some(t)) => Value::Bool(f(&s, &t)),
        _ => Value::Undefined,
    }
}

pub(super) fn indexof<'a>(s: &Value<'a>, t: &Value<'a>, v2: bool) -> Value<'a> {
    match (s.to_text(v2), t.to_text(v2)) {
        (Some(s), Some(t)) => Value::Int(match s.find(t.as_ref()) {
            Some(byte) => s[..byte].chars().count() as i128,
            None => -1,
        }),
        _ => Value::Undefined,
    }
}

/// A function of one string.
pub(super) fn map<'a>(s: &Value<'a>, v2: bool, f: impl FnOnce(&str) -> Value<'a>) -> Value<'a> {
    match s.to_text(v2) {
        Some(s) => f(&s),
        None => Value::Undefined,
    }
}

/// `lpad(s, n)` / `rpad(s, n)`: n spaces added (not padding *to* n), n
/// clamped to 0..=1000 as AWS does.
pub(super) fn pad<'a>(s: &Value<'a>, n: &Value<'a>, v2: bool, left: bool) -> Value<'a> {
    let (Some(s), Some(n)) = (s.to_text(v2), n.to_int_clamped()) else {
        return Value::Undefined;
    };
    let n = n.clamp(0, 1000) as usize;
    let spaces = " ".repeat(n);
    Value::string(if left {
        spaces + &s
    } else {
        let mut s = s.into_owned();
        s.push_str(&spaces);
        s
    })
}

/// Java's `String.trim` set: every character up to and including space.
fn is_trimmed(c: char) -> bool {
    c <= ' '
}

pub(super) fn trim<'a>(s: &Value<'a>, v2: bool, start: bool, end: bool) -> Value<'a> {
    let Some(s) = s.to_text(v2) else {
        return Value::Undefined;
    };
    let trimmed = |s: &'_ str| -> (usize, usize) {
        let mut t = s;
        if start {
            t = t.trim_start_matches(is_trimmed);
        }
        let begin = s.len() - t.len();
        if end {
            t = t.trim_end_matches(is_trimmed);
        }
        (begin, begin + t.len())
    };
    let (b, e) = trimmed(&s);
    Value::Str(match s {
        Cow::Borrowed(s) => Cow::Borrowed(&s[b..e]),
        Cow::Owned(s) => Cow::Owned(s[b..e].to_string()),
    })
}

pub(super) fn replace<'a>(
    s: &Value<'a>,
    from: &Value<'a>,
    to: &Value<'a>,
    v2: bool,
) -> Result<Value<'a>, EvalError> {
    let (Some(s), Some(from), Some(to)) = (s.to_text(v2), from.to_text(v2), to.to_text(v2)) else {
        return Ok(Value::Undefined);
    };
    let count = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from.as_ref()).count()
    };
    let size = s.len() + count.saturating_mul(to.len());
    if size > MAX_STRING_BYTES {
        return Err(too_large("replace() result"));
    }
    Ok(Value::string(s.replace(from.as_ref(), &to)))
}

pub(super) fn regexp_matches<'a>(call: &Call, args: &[Value<'a>], v2: bool) -> Value<'a> {
    let Some(s) = args[0].to_text(v2) else {
        return Value::Undefined;
    };
    let mut slot = None;
    let Some(re) = pattern(call, &args[1], v2, &mut slot) else {
        return Value::Undefined;
    };
    match re.is_match(s.as_ref()) {
        Ok(found) => Value::Bool(found),
        Err(_) => Value::Undefined,
    }
}

/// The first match, whole. No match is Undefined (UNCONFIRMED: AWS does not
/// say; there is no text to return).
pub(super) fn regexp_substr<'a>(call: &Call, args: &[Value<'a>], v2: bool) -> Value<'a> {
    let Some(s) = args[0].to_text(v2) else {
        return Value::Undefined;
    };
    let mut slot = None;
    let Some(re) = pattern(call, &args[1], v2, &mut slot) else {
        return Value::Undefined;
    };
    match re.find(s.as_ref()) {
        Ok(Some(m)) => Value::string(m.as_str().to_string()),
        _ => Value::Undefined,
    }
}

/// Every match replaced, `$1`/`${name}` and `\` escapes as in Java's
/// `Matcher.replaceAll`. A replacement that names a missing group is
/// Undefined (Java throws).
pub(super) fn regexp_replace<'a>(
    call: &Call,
    args: &[Value<'a>],
    v2: bool,
) -> Result<Value<'a>, EvalError> {
    let (Some(s), Some(replacement)) = (args[0].to_text(v2), args[2].to_text(v2)) else {
        return Ok(Value::Undefined);
    };
    let mut slot = None;
    let Some(re) = pattern(call, &args[1], v2, &mut slot) else {
        return Ok(Value::Undefined);
    };
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for caps in re.captures_iter(s.as_ref()) {
        let Ok(caps) = caps else {
            return Ok(Value::Undefined);
        };
        let Some(whole) = caps.get(0) else {
            continue;
        };
        out.push_str(&s[last..whole.start()]);
        if !expand_java(&caps, re, &replacement, &mut out) {
            return Ok(Value::Undefined);
        }
        last = whole.end();
        if out.len() > MAX_STRING_BYTES {
            return Err(too_large("regexp_replace() result"));
        }
    }
    out.push_str(&s[last..]);
    if out.len() > MAX_STRING_BYTES {
        return Err(too_large("regexp_replace() result"));
    }
    Ok(Value::string(out))
}

/// Java's replacement syntax: `\c` is `c`; `$n` takes as many digits as still
/// name a group; `${name}` a named group. False where Java would throw.
fn expand_java(caps: &Captures<'_, str>, re: &Regex, replacement: &str, out: &mut String) -> bool {
    let groups = re.captures_len() - 1;
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => out.push(next),
                None => return false,
            },
            '$' => match chars.peek() {
                Some('{') => {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() => name.push(c),
                            _ => return false,
                        }
                    }
                    if !re.capture_names().flatten().any(|n| n == name) {
                        return false;
                    }
                    if let Some(m) = caps.name(&name) {
                        out.push_str(m.as_str());
                    }
                }
                Some(d) if d.is_ascii_digit() => {
                    let mut n = d.to_digit(10).unwrap_or(0) as usize;
                    chars.next();
                    if n > groups {
                        return false;
                    }
                    while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                        let longer = n * 10 + d as usize;
                        if longer > groups {
                            break;
                        }
                        n = longer;
                        chars.next();
                    }
                    if let Some(m) = caps.get(n) {
                        out.push_str(m.as_str());
                    }
                }
                _ => return false,
            },
            c => out.push(c),
        }
    }
    true
}

/// `substring(s, start[, end])`: 0-based, end exclusive, both clamped to the
/// string; non-integral positions truncated.
pub(super) fn substring<'a>(args: &[Value<'a>], v2: bool) -> Value<'a> {
    let Some(s) = args[0].to_text(v2) else {
        return Value::Undefined;
    };
    let len = s.chars().count() as i128;
    let Some(start) = args[1].to_int_clamped() else {
        return Value::Undefined;
    };
    let end = match args.get(2) {
        Some(e) => match e.to_int_clamped() {
            Some(e) => e,
            None => return Value::Undefined,
        },
        None => len,
    };
    let start = start.clamp(0, len) as usize;
    let end = end.clamp(0, len) as usize;
    if start >= end {
        return Value::str("");
    }
    let byte = |n: usize| s.char_indices().nth(n).map_or(s.len(), |(b, _)| b);
    let (b, e) = (byte(start), byte(end));
    Value::Str(match s {
        Cow::Borrowed(s) => Cow::Borrowed(&s[b..e]),
        Cow::Owned(s) => Cow::Owned(s[b..e].to_string()),
    })
}

/// `get(collection, key)`, also what `x[key]` means: an Array element or a
/// String's character by 0-based index, or an Object member by String key.
pub(crate) fn get<'a>(coll: &Value<'a>, key: &Value<'a>, v2: bool) -> Value<'a> {
    match coll {
        Value::Array(_) => match key.to_int_implicit().and_then(|i| usize::try_from(i).ok()) {
            Some(i) => coll.index(i, v2),
            None => Value::Undefined,
        },
        Value::Object(Obj::Json(_) | Obj::Owned(_)) => match key {
            Value::Str(k) => coll.member(k, v2),
            _ => Value::Undefined,
        },
        Value::Str(s) => match key.to_int_implicit().and_then(|i| usize::try_from(i).ok()) {
            Some(i) => s
                .chars()
                .nth(i)
                .map_or(Value::Undefined, |c| Value::string(c.to_string())),
            None => Value::Undefined,
        },
        _ => Value::Undefined,
    }
}
