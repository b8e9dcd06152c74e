//! The `Condition` element: operators, their values, and how a condition is decided.
//!
//! Follows IAM: the values listed for one key are ORed; keys and operators are ANDed
//! by the statement. A key with no value makes the operator false, except that a
//! negated operator (`StringNotEquals`, `NotIpAddress`, ...) is then true, `...IfExists`
//! is true, `ForAllValues:` is true and `Null` is about exactly that. Literal values
//! are validated when the document is parsed, so an operator that could never match
//! is refused up front. Deciding a prepared condition must never allocate: it runs
//! for every PUBLISH.

use std::cmp::Ordering;
use std::net::IpAddr;

use crate::context::ConnectionContext;
use crate::glob::{Pattern, Segment};
use crate::json::{quote, Json};
use crate::template::{Substituted, Template};
use crate::variables::Variable;
use crate::MalformedPolicy;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    StringIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    IpAddress,
    Arn,
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Cmp::Eq => ordering == Ordering::Equal,
            Cmp::Lt => ordering == Ordering::Less,
            Cmp::Le => ordering != Ordering::Greater,
            Cmp::Gt => ordering == Ordering::Greater,
            Cmp::Ge => ordering != Ordering::Less,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Qualifier {
    ForAllValues,
    ForAnyValue,
}

/// The operators, with whether each is the negation of its kind's match.
const OPERATORS: [(&str, Kind, bool); 26] = [
    ("StringEquals", Kind::String, false),
    ("StringNotEquals", Kind::String, true),
    ("StringEqualsIgnoreCase", Kind::StringIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Kind::StringIgnoreCase, true),
    ("StringLike", Kind::StringLike, false),
    ("StringNotLike", Kind::StringLike, true),
    ("NumericEquals", Kind::Numeric(Cmp::Eq), false),
    ("NumericNotEquals", Kind::Numeric(Cmp::Eq), true),
    ("NumericLessThan", Kind::Numeric(Cmp::Lt), false),
    ("NumericLessThanEquals", Kind::Numeric(Cmp::Le), false),
    ("NumericGreaterThan", Kind::Numeric(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Kind::Numeric(Cmp::Ge), false),
    ("DateEquals", Kind::Date(Cmp::Eq), false),
    ("DateNotEquals", Kind::Date(Cmp::Eq), true),
    ("DateLessThan", Kind::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Kind::Date(Cmp::Le), false),
    ("DateGreaterThan", Kind::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Kind::Date(Cmp::Ge), false),
    ("Bool", Kind::Bool, false),
    ("IpAddress", Kind::IpAddress, false),
    ("NotIpAddress", Kind::IpAddress, true),
    // IAM compares ARNs component by component with wildcards for both spellings.
    ("ArnEquals", Kind::Arn, false),
    ("ArnLike", Kind::Arn, false),
    ("ArnNotEquals", Kind::Arn, true),
    ("ArnNotLike", Kind::Arn, true),
    ("Null", Kind::Null, false),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Operator {
    kind: Kind,
    negated: bool,
    qualifier: Option<Qualifier>,
    if_exists: bool,
}

impl Operator {
    fn parse(text: &str) -> Result<Operator, String> {
        let (qualifier, rest) = if let Some(rest) = text.strip_prefix("ForAllValues:") {
            (Some(Qualifier::ForAllValues), rest)
        } else if let Some(rest) = text.strip_prefix("ForAnyValue:") {
            (Some(Qualifier::ForAnyValue), rest)
        } else {
            (None, text)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let Some(&(_, kind, negated)) = OPERATORS.iter().find(|(name, _, _)| *name == base) else {
            let hint = OPERATORS
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(base))
                .map(|(name, _, _)| {
                    format!(" (operators are case-sensitive: did you mean \"{name}\"?)")
                })
                .unwrap_or_default();
            return Err(format!("unknown condition operator {}{hint}", quote(text)));
        };
        if kind == Kind::Null && (if_exists || qualifier.is_some()) {
            return Err(format!(
                "{}: Null takes neither IfExists nor ForAllValues:/ForAnyValue:",
                quote(text)
            ));
        }
        Ok(Operator {
            kind,
            negated,
            qualifier,
            if_exists,
        })
    }
}

/// One operator applied to one key, as written in the document.
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    operator: Operator,
    key: String,
    key_variable: Variable,
    values: Vec<Template>,
}

/// Reads a statement's `Condition` element.
pub(crate) fn parse_block(
    json: &Json,
    path: &str,
    variables: bool,
) -> Result<Vec<Condition>, MalformedPolicy> {
    let Json::Object(operators) = json else {
        return Err(MalformedPolicy::at(
            path,
            format!(
                "expected an object of condition operators, found {}",
                json.describe()
            ),
        ));
    };
    crate::document::refuse_duplicates(operators, path)?;
    let mut conditions = Vec::new();
    for (operator_name, keys) in operators {
        let op_path = format!("{path}.{operator_name}");
        let operator = Operator::parse(operator_name).map_err(|m| MalformedPolicy::at(path, m))?;
        let Json::Object(keys) = keys else {
            return Err(MalformedPolicy::at(
                op_path,
                format!(
                    "expected an object of condition keys, found {}",
                    keys.describe()
                ),
            ));
        };
        if keys.is_empty() {
            return Err(MalformedPolicy::at(op_path, "names no condition key"));
        }
        crate::document::refuse_duplicates(keys, &op_path)?;
        for (key, values) in keys {
            let key_path = format!("{op_path}[{}]", quote(key));
            if key.is_empty() {
                return Err(MalformedPolicy::at(key_path, "empty condition key"));
            }
            let texts = condition_values(values, &key_path)?;
            let mut templates = Vec::with_capacity(texts.len());
            for (i, text) in texts.iter().enumerate() {
                let value_path = match values {
                    Json::Array(_) => format!("{key_path}[{i}]"),
                    _ => key_path.clone(),
                };
                let template = if variables {
                    Template::parse(text).map_err(|m| MalformedPolicy::at(&value_path, m))?
                } else {
                    Template::legacy(text)
                };
                if let Some(literal) = template.literal_text() {
                    validate_value(operator.kind, &literal)
                        .map_err(|m| MalformedPolicy::at(&value_path, m))?;
                }
                templates.push(template);
            }
            conditions.push(Condition {
                operator,
                key: key.clone(),
                key_variable: Variable::parse(key),
                values: templates,
            });
        }
    }
    Ok(conditions)
}

/// A condition value is a string, or a number or boolean taken as its JSON text (IAM
/// accepts `"aws:SecureTransport": true`), or a non-empty array of those.
fn condition_values(json: &Json, path: &str) -> Result<Vec<String>, MalformedPolicy> {
    let scalar = |json: &Json, path: &str| match json {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.clone()),
        Json::Bool(b) => Ok(b.to_string()),
        other => Err(MalformedPolicy::at(
            path,
            format!(
                "expected a string, number or boolean, found {}",
                other.describe()
            ),
        )),
    };
    match json {
        Json::Array(items) if items.is_empty() => {
            Err(MalformedPolicy::at(path, "empty list of values"))
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| scalar(item, &format!("{path}[{i}]")))
            .collect(),
        other => scalar(other, path).map(|v| vec![v]),
    }
}

fn validate_value(kind: Kind, value: &str) -> Result<(), String> {
    let ok = match kind {
        Kind::String | Kind::StringIgnoreCase | Kind::StringLike => true,
        Kind::Numeric(_) => parse_decimal(value).is_some(),
        Kind::Date(_) => parse_date(value).is_some(),
        Kind::Bool | Kind::Null => parse_bool(value).is_some(),
        Kind::IpAddress => Cidr::parse(value).is_some(),
        Kind::Arn => value.split(':').count() >= 6,
    };
    if ok {
        return Ok(());
    }
    let expected = match kind {
        Kind::Numeric(_) => "a decimal number such as \"10\" or \"-2.5\"",
        Kind::Date(_) => "an ISO 8601 date such as \"2024-01-31T12:00:00Z\" or epoch seconds",
        Kind::Bool | Kind::Null => "\"true\" or \"false\"",
        Kind::IpAddress => "an IP address or CIDR block such as \"192.0.2.0/24\"",
        Kind::Arn => "an ARN such as \"arn:aws:iot:us-east-1:123456789012:topic/a\"",
        Kind::String | Kind::StringIgnoreCase | Kind::StringLike => "a string",
    };
    Err(format!("expected {expected}, found {}", quote(value)))
}

/// Where a condition key's values come from once the connection is known.
#[derive(Clone, Debug)]
enum KeySource {
    /// A connection key, resolved at preparation; `None` when it has no value.
    Connection(Option<Vec<String>>),
    /// Any other key: looked up in the request's context values.
    Request,
}

#[derive(Clone, Debug)]
enum Values {
    Strings(Vec<String>),
    /// Lower-cased once, here, so that deciding never allocates.
    LowerCase(Vec<String>),
    Globs(Vec<Pattern>),
    /// Validated decimal text; re-read when compared, which costs no allocation.
    Numbers(Vec<String>),
    Dates(Vec<Instant>),
    Bools(Vec<bool>),
    Cidrs(Vec<Cidr>),
    /// The six colon-separated components of each ARN pattern.
    Arns(Vec<Vec<Pattern>>),
    /// `true` means "the key must be absent".
    Null(Vec<bool>),
}

/// A condition with its values substituted and compiled for one connection.
#[derive(Clone, Debug)]
pub(crate) struct PreparedCondition {
    operator: Operator,
    key: String,
    source: KeySource,
    values: Values,
}

impl Condition {
    /// Substitutes the condition's values. `Err` lists the variables that did not
    /// resolve (or resolved to something the operator cannot read).
    pub(crate) fn prepare(
        &self,
        ctx: &ConnectionContext,
    ) -> Result<PreparedCondition, Vec<String>> {
        let mut substituted = Vec::with_capacity(self.values.len());
        let mut missing = Vec::new();
        for template in &self.values {
            match template.substitute(ctx) {
                Ok(s) => substituted.push((template, s)),
                Err(names) => missing.extend(names),
            }
        }
        if !missing.is_empty() {
            return Err(missing);
        }
        let kind = self.operator.kind;
        let values = match kind {
            Kind::String => Values::Strings(substituted.iter().map(|(_, s)| s.text()).collect()),
            Kind::StringIgnoreCase => {
                Values::LowerCase(substituted.iter().map(|(_, s)| lower(&s.text())).collect())
            }
            Kind::StringLike => Values::Globs(
                substituted
                    .iter()
                    .map(|(_, s)| Pattern::compile(s.segments()))
                    .collect(),
            ),
            Kind::Numeric(_) => Values::Numbers(read_all(&substituted, |text| {
                parse_decimal(text).map(|_| text.to_string())
            })?),
            Kind::Date(_) => Values::Dates(read_all(&substituted, parse_date)?),
            Kind::Bool => Values::Bools(read_all(&substituted, parse_bool)?),
            Kind::Null => Values::Null(read_all(&substituted, parse_bool)?),
            Kind::IpAddress => Values::Cidrs(read_all(&substituted, Cidr::parse)?),
            Kind::Arn => {
                let mut arns = Vec::with_capacity(substituted.len());
                for (template, s) in &substituted {
                    match arn_components(s) {
                        Some(components) => arns.push(components),
                        None => return Err(template.variable_names()),
                    }
                }
                Values::Arns(arns)
            }
        };
        let source = if self.key_variable.is_connection_key() {
            KeySource::Connection(self.key_variable.values(ctx))
        } else {
            KeySource::Request
        };
        Ok(PreparedCondition {
            operator: self.operator,
            key: self.key.clone(),
            source,
            values,
        })
    }
}

/// Reads every substituted value with `read`; a value that does not read (only
/// possible after substitution, literals were validated) counts as unresolved.
fn read_all<T>(
    substituted: &[(&Template, Substituted<'_>)],
    read: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, Vec<String>> {
    substituted
        .iter()
        .map(|(template, s)| read(&s.text()).ok_or_else(|| template.variable_names()))
        .collect()
}

fn arn_components(s: &Substituted<'_>) -> Option<Vec<Pattern>> {
    // Split on every colon, wildcards keeping their meaning per piece, the sixth
    // component taking the rest (a resource may contain colons).
    let mut components: Vec<Vec<Segment<'_>>> = vec![Vec::new()];
    for segment in s.segments() {
        let (text, glob) = match segment {
            Segment::Glob(t) => (t, true),
            Segment::Literal(t) => (t, false),
        };
        for (i, piece) in text.split(':').enumerate() {
            if i > 0 {
                if components.len() < 6 {
                    components.push(Vec::new());
                } else if let Some(last) = components.last_mut() {
                    last.push(Segment::Literal(":"));
                }
            }
            if let Some(last) = components.last_mut() {
                last.push(if glob {
                    Segment::Glob(piece)
                } else {
                    Segment::Literal(piece)
                });
            }
        }
    }
    (components.len() == 6).then(|| components.into_iter().map(Pattern::compile).collect())
}

fn lower(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

impl PreparedCondition {
    /// Decides the condition. `on_missing` is told the key when it has no value and
    /// the operator needed one.
    pub(crate) fn holds(
        &self,
        context_values: &[(&str, &[&str])],
        on_missing: &mut dyn FnMut(&str),
    ) -> bool {
        let present = match &self.source {
            KeySource::Connection(values) => match values {
                Some(v) if !v.is_empty() => Some(KeyValues::Owned(v)),
                _ => None,
            },
            KeySource::Request => context_values
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(&self.key))
                .map(|(_, values)| *values)
                .filter(|values| !values.is_empty())
                .map(KeyValues::Borrowed),
        };
        let op = self.operator;
        if let Values::Null(expect_absent) = &self.values {
            let absent = present.is_none();
            return expect_absent.contains(&absent);
        }
        let Some(values) = present else {
            if !op.if_exists {
                on_missing(&self.key);
            }
            return op.if_exists
                || match op.qualifier {
                    Some(Qualifier::ForAllValues) => true,
                    Some(Qualifier::ForAnyValue) => false,
                    None => op.negated,
                };
        };
        let matches = |v: &str| self.values.any_matches(op.kind, v);
        match (op.qualifier, op.negated) {
            (None | Some(Qualifier::ForAnyValue), false) => values.any(matches),
            (None, true) => !values.any(matches),
            (Some(Qualifier::ForAnyValue), true) => values.any(|v| !matches(v)),
            (Some(Qualifier::ForAllValues), false) => values.all(matches),
            (Some(Qualifier::ForAllValues), true) => values.all(|v| !matches(v)),
        }
    }
}

/// A key's values from either source, iterated without collecting.
enum KeyValues<'a> {
    Owned(&'a [String]),
    Borrowed(&'a [&'a str]),
}

impl KeyValues<'_> {
    fn any(&self, f: impl Fn(&str) -> bool) -> bool {
        match self {
            KeyValues::Owned(v) => v.iter().any(|s| f(s)),
            KeyValues::Borrowed(v) => v.iter().any(|s| f(s)),
        }
    }

    fn all(&self, f: impl Fn(&str) -> bool) -> bool {
        !self.any(|s| !f(s))
    }
}

impl Values {
    /// Whether one request value matches any of the policy's values (the ORed list).
    fn any_matches(&self, kind: Kind, value: &str) -> bool {
        match self {
            Values::Strings(list) => list.iter().any(|p| p == value),
            Values::LowerCase(list) => list
                .iter()
                .any(|p| p.chars().eq(value.chars().flat_map(char::to_lowercase))),
            Values::Globs(list) => list.iter().any(|p| p.matches(value)),
            Values::Numbers(list) => {
                let (Kind::Numeric(cmp), Some(v)) = (kind, parse_decimal(value)) else {
                    return false;
                };
                list.iter()
                    .filter_map(|p| parse_decimal(p))
                    .any(|p| cmp.holds(compare_decimal(&v, &p)))
            }
            Values::Dates(list) => {
                let (Kind::Date(cmp), Some(v)) = (kind, parse_date(value)) else {
                    return false;
                };
                list.iter().any(|p| cmp.holds(v.cmp(p)))
            }
            Values::Bools(list) => parse_bool(value).is_some_and(|v| list.contains(&v)),
            Values::Cidrs(list) => match value.parse::<IpAddr>() {
                Ok(ip) => list.iter().any(|c| c.contains(ip)),
                Err(_) => false,
            },
            Values::Arns(list) => list.iter().any(|components| arn_matches(components, value)),
            Values::Null(_) => false,
        }
    }
}

fn arn_matches(components: &[Pattern], arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    for component in components {
        match parts.next() {
            Some(part) if component.matches(part) => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// An exact decimal, borrowed from its text: serial numbers and counters exceed what
/// an `f64` holds exactly, and comparing digit strings needs no allocation.
struct Decimal<'a> {
    negative: bool,
    /// Integer digits without leading zeros.
    int: &'a str,
    /// Fraction digits without trailing zeros.
    frac: &'a str,
}

fn parse_decimal(text: &str) -> Option<Decimal<'_>> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !digits(int) || !digits(frac) {
        return None;
    }
    Some(Decimal {
        negative,
        int: int.trim_start_matches('0'),
        frac: frac.trim_end_matches('0'),
    })
}

fn compare_decimal(a: &Decimal<'_>, b: &Decimal<'_>) -> Ordering {
    let sign = |d: &Decimal<'_>| -> i8 {
        if d.int.is_empty() && d.frac.is_empty() {
            0
        } else if d.negative {
            -1
        } else {
            1
        }
    };
    let (sa, sb) = (sign(a), sign(b));
    if sa != sb {
        return sa.cmp(&sb);
    }
    let magnitude = a
        .int
        .len()
        .cmp(&b.int.len())
        .then_with(|| a.int.cmp(b.int))
        .then_with(|| a.frac.cmp(b.frac));
    if sa < 0 {
        magnitude.reverse()
    } else {
        magnitude
    }
}

/// A point in time: seconds since the Unix epoch and nanoseconds.
type Instant = (i64, u32);

/// Reads epoch seconds (`1700000000`, optionally with a fraction) or ISO 8601:
/// `YYYY-MM-DD`, optionally `THH:MM[:SS[.fraction]]`, then `Z`, `±HH:MM`, `±HHMM`,
/// `±HH` or nothing (UTC).
fn parse_date(text: &str) -> Option<Instant> {
    let b = text.as_bytes();
    if !text.is_empty() && !text.contains('-') || text.starts_with('-') && !text[1..].contains('-')
    {
        let d = parse_decimal(text)?;
        let secs: i64 = if d.int.is_empty() {
            0
        } else {
            d.int.parse().ok()?
        };
        let mut nanos = 0u32;
        for (i, c) in d.frac.bytes().take(9).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        return Some(if d.negative {
            if nanos == 0 {
                (-secs, 0)
            } else {
                (-secs - 1, 1_000_000_000 - nanos)
            }
        } else {
            (secs, nanos)
        });
    }
    let num = |s: &[u8]| -> Option<u32> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut rest = &b[10..];
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0u32);
    if let Some((&sep, time)) = rest.split_first() {
        if sep == b'T' || sep == b't' {
            if time.len() < 5 || time[2] != b':' {
                return None;
            }
            hour = num(&time[0..2])?;
            minute = num(&time[3..5])?;
            rest = &time[5..];
            if rest.first() == Some(&b':') {
                second = num(rest.get(1..3)?)?;
                rest = &rest[3..];
                if rest.first() == Some(&b'.') {
                    let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    if digits == 0 {
                        return None;
                    }
                    for (i, c) in rest[1..=digits].iter().take(9).enumerate() {
                        nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
                    }
                    rest = &rest[1 + digits..];
                }
            }
            if hour > 23 || minute > 59 || second > 59 {
                return None;
            }
        }
    }
    let offset_secs: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (h, m) = match zone {
                [h1, h2] => (num(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (num(&[*h1, *h2])?, num(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let offset = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    Some((secs, nanos))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An address block for `IpAddress`/`NotIpAddress`; a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    v4: bool,
    network: u128,
    prefix: u32,
}

impl Cidr {
    fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => {
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (addr, Some(prefix.parse::<u32>().ok()?))
            }
            None => (text, None),
        };
        let (v4, bits, width) = match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => (true, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (false, u128::from(a), 128),
        };
        let prefix = prefix.unwrap_or(width);
        if prefix > width {
            return None;
        }
        Some(Cidr {
            v4,
            network: bits & mask(prefix, width),
            prefix,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (v4, bits, width) = match ip.to_canonical() {
            IpAddr::V4(a) => (true, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (false, u128::from(a), 128),
        };
        v4 == self.v4 && bits & mask(self.prefix, width) == self.network
    }
}

fn mask(prefix: u32, width: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        let ones = u128::MAX << (128 - prefix);
        ones >> (128 - width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(json: &str, ctx: &ConnectionContext, request: &[(&str, &[&str])]) -> bool {
        let block: Json = serde_json::from_str(json).unwrap();
        let conditions = parse_block(&block, "Condition", true).unwrap();
        conditions
            .iter()
            .all(|c| c.prepare(ctx).unwrap().holds(request, &mut |_| {}))
    }

    fn parse_err(json: &str) -> String {
        let block: Json = serde_json::from_str(json).unwrap();
        parse_block(&block, "Condition", true)
            .unwrap_err()
            .to_string()
    }

    fn client(id: &str) -> ConnectionContext {
        ConnectionContext {
            client_id: Some(id.to_string()),
            source_ip: Some("192.0.2.10".parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn string_operators() {
        let c = client("dev-1");
        assert!(decide(
            r#"{"StringEquals": {"iot:ClientId": ["x", "dev-1"]}}"#,
            &c,
            &[]
        ));
        assert!(!decide(
            r#"{"StringEquals": {"iot:ClientId": "DEV-1"}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"StringEqualsIgnoreCase": {"iot:ClientId": "DEV-1"}}"#,
            &c,
            &[]
        ));
        assert!(!decide(
            r#"{"StringNotEqualsIgnoreCase": {"iot:ClientId": "DEV-1"}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"StringNotEquals": {"iot:ClientId": ["a", "b"]}}"#,
            &c,
            &[]
        ));
        assert!(!decide(
            r#"{"StringNotEquals": {"iot:ClientId": ["a", "dev-1"]}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"StringLike": {"iot:ClientId": "dev-?"}}"#,
            &c,
            &[]
        ));
        assert!(!decide(
            r#"{"StringLike": {"iot:ClientId": "dev-${?}"}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"StringNotLike": {"iot:ClientId": "prod-*"}}"#,
            &c,
            &[]
        ));
        // `*` is literal for StringEquals.
        assert!(!decide(
            r#"{"StringEquals": {"iot:ClientId": "dev-*"}}"#,
            &c,
            &[]
        ));
        // Values may hold variables.
        assert!(decide(
            r#"{"StringEquals": {"iot:ClientId": "${iot:ClientId}"}}"#,
            &c,
            &[]
        ));
    }

    #[test]
    fn keys_and_operators_are_anded() {
        let c = client("dev-1");
        assert!(!decide(
            r#"{"StringEquals": {"iot:ClientId": "dev-1", "iot:DomainName": "x"}}"#,
            &c,
            &[]
        ));
        assert!(!decide(
            r#"{"StringEquals": {"iot:ClientId": "dev-1"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"StringEquals": {"iot:ClientId": "dev-1"}, "IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}"#,
            &c,
            &[]
        ));
    }

    #[test]
    fn missing_keys_follow_iam() {
        let c = ConnectionContext::default();
        assert!(!decide(
            r#"{"StringEquals": {"iot:ClientId": "a"}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"StringNotEquals": {"iot:ClientId": "a"}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"StringEqualsIfExists": {"iot:ClientId": "a"}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"ForAllValues:StringEquals": {"iot:ConnectAttributes": "a"}}"#,
            &c,
            &[]
        ));
        assert!(!decide(
            r#"{"ForAnyValue:StringEquals": {"iot:ConnectAttributes": "a"}}"#,
            &c,
            &[]
        ));
        assert!(decide(r#"{"Null": {"iot:ClientId": "true"}}"#, &c, &[]));
        assert!(!decide(r#"{"Null": {"iot:ClientId": false}}"#, &c, &[]));
        assert!(decide(
            r#"{"Null": {"iot:ClientId": "false"}}"#,
            &client("x"),
            &[]
        ));

        let block: Json =
            serde_json::from_str(r#"{"StringEquals": {"iot:LastWillTopic": "a"}}"#).unwrap();
        let prepared = parse_block(&block, "C", true).unwrap()[0]
            .prepare(&c)
            .unwrap();
        let mut missing = Vec::new();
        assert!(!prepared.holds(&[], &mut |k| missing.push(k.to_string())));
        assert_eq!(missing, ["iot:LastWillTopic"]);
        // An empty list counts as absent.
        assert!(!prepared.holds(&[("iot:LastWillTopic", &[])], &mut |_| {}));
        assert!(prepared.holds(&[("IOT:lastwilltopic", &["a"])], &mut |_| {}));
    }

    #[test]
    fn set_qualifiers() {
        let c = ConnectionContext::default();
        let attrs: &[(&str, &[&str])] =
            &[("iot:ConnectAttributes", &["PersistentConnect", "LastWill"])];
        let only_persistent: &[(&str, &[&str])] =
            &[("iot:ConnectAttributes", &["PersistentConnect"])];
        let all =
            r#"{"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}"#;
        assert!(!decide(all, &c, attrs));
        assert!(decide(all, &c, only_persistent));
        let any = r#"{"ForAnyValue:StringEquals": {"iot:ConnectAttributes": "LastWill"}}"#;
        assert!(decide(any, &c, attrs));
        assert!(!decide(any, &c, only_persistent));
        let none_will =
            r#"{"ForAllValues:StringNotEquals": {"iot:ConnectAttributes": "LastWill"}}"#;
        assert!(!decide(none_will, &c, attrs));
        assert!(decide(none_will, &c, only_persistent));
        let some_not_will =
            r#"{"ForAnyValue:StringNotEquals": {"iot:ConnectAttributes": "LastWill"}}"#;
        assert!(decide(some_not_will, &c, attrs));
        // Without a qualifier a multi-valued key matches when any value does.
        assert!(decide(
            r#"{"StringEquals": {"iot:ConnectAttributes": "LastWill"}}"#,
            &c,
            attrs
        ));
        assert!(!decide(
            r#"{"StringNotEquals": {"iot:ConnectAttributes": "LastWill"}}"#,
            &c,
            attrs
        ));
    }

    #[test]
    fn numeric_operators_are_exact() {
        let c = ConnectionContext::default();
        let ctx = |v: &'static [&'static str]| -> Vec<(&'static str, &'static [&'static str])> {
            vec![("n", v)]
        };
        assert!(decide(
            r#"{"NumericEquals": {"n": "10"}}"#,
            &c,
            &ctx(&["010.00"])
        ));
        assert!(decide(r#"{"NumericEquals": {"n": 10}}"#, &c, &ctx(&["10"])));
        assert!(decide(
            r#"{"NumericLessThan": {"n": "10"}}"#,
            &c,
            &ctx(&["9.999"])
        ));
        assert!(!decide(
            r#"{"NumericLessThan": {"n": "10"}}"#,
            &c,
            &ctx(&["10"])
        ));
        assert!(decide(
            r#"{"NumericLessThanEquals": {"n": "10"}}"#,
            &c,
            &ctx(&["10"])
        ));
        assert!(decide(
            r#"{"NumericGreaterThan": {"n": "-1"}}"#,
            &c,
            &ctx(&["-0.5"])
        ));
        assert!(decide(
            r#"{"NumericGreaterThanEquals": {"n": "0"}}"#,
            &c,
            &ctx(&["-0"])
        ));
        assert!(decide(
            r#"{"NumericNotEquals": {"n": "1"}}"#,
            &c,
            &ctx(&["2"])
        ));
        assert!(!decide(
            r#"{"NumericEquals": {"n": "x"}}"#.replace('x', "1").as_str(),
            &c,
            &ctx(&["abc"])
        ));
        // Beyond f64 precision.
        assert!(decide(
            r#"{"NumericGreaterThan": {"n": "10525622389124227206"}}"#,
            &c,
            &ctx(&["10525622389124227207"])
        ));
        assert!(parse_err(r#"{"NumericEquals": {"n": "ten"}}"#).contains("decimal number"));
    }

    #[test]
    fn date_operators() {
        let c = ConnectionContext::default();
        let now: &[(&str, &[&str])] = &[("aws:CurrentTime", &["2024-06-01T12:00:00Z"])];
        assert!(decide(
            r#"{"DateLessThan": {"aws:CurrentTime": "2024-06-02"}}"#,
            &c,
            now
        ));
        assert!(decide(
            r#"{"DateGreaterThan": {"aws:CurrentTime": "2024-06-01T11:59:59.5Z"}}"#,
            &c,
            now
        ));
        assert!(decide(
            r#"{"DateEquals": {"aws:CurrentTime": "2024-06-01T14:00:00+02:00"}}"#,
            &c,
            now
        ));
        assert!(decide(
            r#"{"DateEquals": {"aws:CurrentTime": 1717243200}}"#,
            &c,
            now
        ));
        assert!(decide(
            r#"{"DateNotEquals": {"aws:CurrentTime": "1717243201"}}"#,
            &c,
            now
        ));
        assert!(decide(
            r#"{"DateLessThanEquals": {"aws:CurrentTime": "2024-06-01T12:00Z"}}"#,
            &c,
            now
        ));
        assert!(decide(
            r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2024-06-01T07:00:00-0500"}}"#,
            &c,
            now
        ));
        assert!(
            parse_err(r#"{"DateEquals": {"aws:CurrentTime": "2024-02-30"}}"#).contains("ISO 8601")
        );
    }

    #[test]
    fn dates_parse() {
        assert_eq!(parse_date("1970-01-01"), Some((0, 0)));
        assert_eq!(
            parse_date("1970-01-01T00:00:01.25Z"),
            Some((1, 250_000_000))
        );
        assert_eq!(parse_date("2000-03-01T00:00:00Z"), Some((951_868_800, 0)));
        assert_eq!(parse_date("1969-12-31T23:59:59Z"), Some((-1, 0)));
        assert_eq!(parse_date("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_date("2024-02-29"), parse_date("1709164800"));
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T24:00Z",
            "2024-01-01X",
            "2024-1-1",
            "12a",
            "-",
            "2024-01-01T10",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn ip_operators() {
        let c = client("x");
        assert!(decide(
            r#"{"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.0/24"]}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"IpAddress": {"aws:SourceIp": "192.0.2.10"}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            &c,
            &[]
        ));
        assert!(decide(
            r#"{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#,
            &c,
            &[]
        ));
        assert!(!decide(
            r#"{"IpAddress": {"aws:SourceIp": "::/0"}}"#,
            &c,
            &[]
        ));
        let v6 = ConnectionContext {
            source_ip: Some("2001:db8::1".parse().unwrap()),
            ..Default::default()
        };
        assert!(decide(
            r#"{"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}"#,
            &v6,
            &[]
        ));
        assert!(!decide(
            r#"{"IpAddress": {"aws:SourceIp": "2001:db9::/32"}}"#,
            &v6,
            &[]
        ));
        let mapped = ConnectionContext {
            source_ip: Some("::ffff:10.1.2.3".parse().unwrap()),
            ..Default::default()
        };
        assert!(decide(
            r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            &mapped,
            &[]
        ));
        assert!(parse_err(r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}"#).contains("CIDR"));
        assert!(parse_err(r#"{"IpAddress": {"aws:SourceIp": "10.0.0/8"}}"#).contains("CIDR"));
    }

    #[test]
    fn bool_operator() {
        let attached = ConnectionContext {
            thing: Some(Default::default()),
            ..Default::default()
        };
        let cond = r#"{"Bool": {"iot:Connection.Thing.IsAttached": "true"}}"#;
        assert!(decide(cond, &attached, &[]));
        assert!(!decide(cond, &ConnectionContext::default(), &[]));
        assert!(decide(
            r#"{"Bool": {"iot:Connection.Thing.IsAttached": false}}"#,
            &ConnectionContext::default(),
            &[]
        ));
        assert!(parse_err(r#"{"Bool": {"k": "yes"}}"#).contains("\"true\" or \"false\""));
    }

    #[test]
    fn arn_operators_compare_components() {
        let c = ConnectionContext::default();
        let will: &[(&str, &[&str])] = &[(
            "iot:LastWillTopic",
            &["arn:aws:iot:us-east-1:000000000000:topic/will/dev-1"],
        )];
        assert!(decide(
            r#"{"ArnLike": {"iot:LastWillTopic": "arn:aws:iot:*:*:topic/will/*"}}"#,
            &c,
            will
        ));
        assert!(decide(
            r#"{"ArnEquals": {"iot:LastWillTopic": "arn:aws:iot:us-east-1:000000000000:topic/will/dev-1"}}"#,
            &c,
            will
        ));
        // A `*` in one component does not run into the next.
        let extra: &[(&str, &[&str])] = &[("k", &["arn:aws:iot:us-east-1:x:000000000000:topic/a"])];
        assert!(!decide(
            r#"{"ArnLike": {"k": "arn:aws:iot:*:000000000000:topic/a"}}"#,
            &c,
            extra
        ));
        assert!(decide(
            r#"{"ArnNotLike": {"iot:LastWillTopic": "arn:aws:iot:*:*:topic/other"}}"#,
            &c,
            will
        ));
        let not_arn: &[(&str, &[&str])] = &[("iot:LastWillTopic", &["will/dev-1"])];
        assert!(!decide(
            r#"{"ArnLike": {"iot:LastWillTopic": "arn:*:*:*:*:*"}}"#,
            &c,
            not_arn
        ));
        // The resource part keeps its colons.
        let colons: &[(&str, &[&str])] = &[("k", &["arn:aws:iot:r:a:topic/x:y"])];
        assert!(decide(
            r#"{"ArnLike": {"k": "arn:aws:iot:r:a:topic/x:*"}}"#,
            &c,
            colons
        ));
        assert!(parse_err(r#"{"ArnLike": {"k": "topic/x"}}"#).contains("ARN"));
    }

    #[test]
    fn operator_grammar() {
        assert!(parse_err(r#"{"StringEqual": {"k": "v"}}"#)
            .contains("unknown condition operator \"StringEqual\""));
        assert!(
            parse_err(r#"{"stringequals": {"k": "v"}}"#).contains("did you mean \"StringEquals\"")
        );
        assert!(parse_err(r#"{"NullIfExists": {"k": "true"}}"#).contains("Null takes neither"));
        assert!(parse_err(r#"{"ForAnyValue:Null": {"k": "true"}}"#).contains("Null takes neither"));
        assert!(parse_err(r#"{"StringEquals": {}}"#).contains("names no condition key"));
        assert!(parse_err(r#"{"StringEquals": {"k": []}}"#).contains("empty list"));
        assert_eq!(
            parse_err(r#"{"StringEquals": {"k": ["a", null]}}"#),
            "Condition.StringEquals[\"k\"][1]: expected a string, number or boolean, found null"
        );
        assert!(
            parse_err(r#"{"StringEquals": "k"}"#).contains("expected an object of condition keys")
        );
        assert!(
            parse_err(r#"{"StringEquals": {"k": "a"}, "StringEquals": {"k": "b"}}"#)
                .contains("duplicate")
        );
        for ok in [
            "ForAllValues:StringLikeIfExists",
            "ForAnyValue:ArnNotLike",
            "DateGreaterThanEqualsIfExists",
            "NotIpAddressIfExists",
        ] {
            assert!(Operator::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn decimals_compare() {
        let cmp = |a: &str, b: &str| {
            compare_decimal(&parse_decimal(a).unwrap(), &parse_decimal(b).unwrap())
        };
        assert_eq!(cmp("0.5", "0.49"), Ordering::Greater);
        assert_eq!(cmp("0.4", "0.45"), Ordering::Less);
        assert_eq!(cmp("-0", "+0.000"), Ordering::Equal);
        assert_eq!(cmp("-2", "-10"), Ordering::Greater);
        assert_eq!(cmp("100", "99.9"), Ordering::Greater);
        assert_eq!(cmp(".5", "0.5"), Ordering::Equal);
        for bad in ["", "-", ".", "1e3", "1.2.3", " 1"] {
            assert!(parse_decimal(bad).is_none(), "{bad}");
        }
    }
}
