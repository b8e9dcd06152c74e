//! The IoT SQL function library: which functions exist, in which SQL
//! version, with how many arguments, and what each returns.
//!
//! For: resolving a name once at parse time ([`lookup`]) and running the
//! resolved [`Func`] on evaluated arguments ([`call`]). Each family lives in
//! its own file; this one holds the table and the context functions (which
//! read the message's [`crate::Context`] rather than their arguments).
//! Never: call out of the process. Functions that need an AWS service
//! (DynamoDB, Lambda, Secrets Manager, shadows, the registry, SageMaker) are
//! known by name only, so that parsing can reject them with a clear message.

mod math;
mod misc;
mod string;
mod time;

use crate::ast::Call;
use crate::error::EvalError;
use crate::eval::{eval, Env, Scope};
use crate::value::Value;

pub(crate) use misc::cast;
pub(crate) use string::{compile_regex, get};

/// Longest string a function or `+` may build: a bound on what one message
/// can make a rule allocate (AWS payloads are at most 128 KiB).
pub(crate) const MAX_STRING_BYTES: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    // Math
    Abs,
    Acos,
    Asin,
    Atan,
    Atan2,
    Cos,
    Cosh,
    Sin,
    Sinh,
    Tan,
    Tanh,
    Exp,
    Ln,
    Log,
    Power,
    Sqrt,
    Ceil,
    Floor,
    Round,
    Sign,
    Mod,
    Trunc,
    Nanvl,
    Rand,
    BitAnd,
    BitOr,
    BitXor,
    BitNot,
    // Strings
    Chr,
    Concat,
    EndsWith,
    StartsWith,
    IndexOf,
    Length,
    NumBytes,
    Lower,
    Upper,
    Lpad,
    Rpad,
    Ltrim,
    Rtrim,
    Trim,
    Replace,
    RegexpMatches,
    RegexpReplace,
    RegexpSubstr,
    Substring,
    Get,
    // Types, encodings, hashes, time
    IsNull,
    IsUndefined,
    GetOrDefault,
    Encode,
    Decode,
    Hash(HashKind),
    Transform,
    ParseTime,
    TimeToEpoch,
    SqlVersion,
    // Context
    Topic,
    ClientId,
    Principal,
    AccountId,
    TraceId,
    Timestamp,
    NewUuid,
    SourceIp,
    GetMqttProperty,
    GetUserProperties,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashKind {
    Md2,
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub name: &'static str,
    pub func: Func,
    pub min_args: usize,
    pub max_args: usize,
    /// Only in SQL version 2016-03-23.
    pub since_2016: bool,
}

const fn f(
    name: &'static str,
    func: Func,
    min_args: usize,
    max_args: usize,
    since_2016: bool,
) -> Entry {
    Entry {
        name,
        func,
        min_args,
        max_args,
        since_2016,
    }
}

/// Every function Roost runs. Names are matched case-insensitively (AWS's
/// own pages write both `isNull` and `isnull`).
pub(crate) const FUNCTIONS: &[Entry] = &[
    f("abs", Func::Abs, 1, 1, false),
    f("acos", Func::Acos, 1, 1, false),
    f("asin", Func::Asin, 1, 1, false),
    f("atan", Func::Atan, 1, 1, false),
    f("atan2", Func::Atan2, 2, 2, false),
    f("cos", Func::Cos, 1, 1, false),
    f("cosh", Func::Cosh, 1, 1, false),
    f("sin", Func::Sin, 1, 1, false),
    f("sinh", Func::Sinh, 1, 1, false),
    f("tan", Func::Tan, 1, 1, false),
    f("tanh", Func::Tanh, 1, 1, false),
    f("exp", Func::Exp, 1, 1, false),
    f("ln", Func::Ln, 1, 1, false),
    f("log", Func::Log, 1, 1, false),
    f("power", Func::Power, 2, 2, false),
    f("sqrt", Func::Sqrt, 1, 1, false),
    f("ceil", Func::Ceil, 1, 1, false),
    f("floor", Func::Floor, 1, 1, false),
    f("round", Func::Round, 1, 1, false),
    f("sign", Func::Sign, 1, 1, false),
    f("mod", Func::Mod, 2, 2, false),
    f("remainder", Func::Mod, 2, 2, false),
    f("trunc", Func::Trunc, 2, 2, false),
    f("nanvl", Func::Nanvl, 2, 2, false),
    f("rand", Func::Rand, 0, 0, false),
    f("bitand", Func::BitAnd, 2, 2, false),
    f("bitor", Func::BitOr, 2, 2, false),
    f("bitxor", Func::BitXor, 2, 2, false),
    f("bitnot", Func::BitNot, 1, 1, false),
    f("chr", Func::Chr, 1, 1, false),
    f("concat", Func::Concat, 1, usize::MAX, false),
    f("endswith", Func::EndsWith, 2, 2, false),
    f("startswith", Func::StartsWith, 2, 2, false),
    f("indexof", Func::IndexOf, 2, 2, true),
    f("length", Func::Length, 1, 1, true),
    f("numbytes", Func::NumBytes, 1, 1, true),
    f("lower", Func::Lower, 1, 1, false),
    f("upper", Func::Upper, 1, 1, false),
    f("lpad", Func::Lpad, 2, 2, false),
    f("rpad", Func::Rpad, 2, 2, false),
    f("ltrim", Func::Ltrim, 1, 1, false),
    f("rtrim", Func::Rtrim, 1, 1, false),
    f("trim", Func::Trim, 1, 1, false),
    f("replace", Func::Replace, 3, 3, false),
    f("regexp_matches", Func::RegexpMatches, 2, 2, false),
    f("regexp_replace", Func::RegexpReplace, 3, 3, false),
    f("regexp_substr", Func::RegexpSubstr, 2, 2, false),
    f("substring", Func::Substring, 2, 3, false),
    f("get", Func::Get, 2, 2, false),
    f("isnull", Func::IsNull, 1, 1, false),
    f("isundefined", Func::IsUndefined, 1, 1, true),
    f("get_or_default", Func::GetOrDefault, 2, 2, false),
    f("encode", Func::Encode, 2, 2, true),
    f("decode", Func::Decode, 2, 2, true),
    f("md2", Func::Hash(HashKind::Md2), 1, 1, false),
    f("md5", Func::Hash(HashKind::Md5), 1, 1, false),
    f("sha1", Func::Hash(HashKind::Sha1), 1, 1, false),
    f("sha224", Func::Hash(HashKind::Sha224), 1, 1, false),
    f("sha256", Func::Hash(HashKind::Sha256), 1, 1, false),
    f("sha384", Func::Hash(HashKind::Sha384), 1, 1, false),
    f("sha512", Func::Hash(HashKind::Sha512), 1, 1, false),
    f("transform", Func::Transform, 3, 3, true),
    f("parse_time", Func::ParseTime, 2, 3, true),
    f("time_to_epoch", Func::TimeToEpoch, 2, 2, true),
    f("sql_version", Func::SqlVersion, 0, 0, false),
    f("topic", Func::Topic, 0, 1, false),
    f("clientid", Func::ClientId, 0, 0, false),
    f("principal", Func::Principal, 0, 0, false),
    f("accountid", Func::AccountId, 0, 0, false),
    f("traceid", Func::TraceId, 0, 0, false),
    f("timestamp", Func::Timestamp, 0, 0, false),
    f("newuuid", Func::NewUuid, 0, 0, false),
    f("sourceip", Func::SourceIp, 0, 0, false),
    f("get_mqtt_property", Func::GetMqttProperty, 1, 1, true),
    f("get_user_properties", Func::GetUserProperties, 1, 1, true),
];

/// AWS functions that call another AWS service, and what they call.
pub const UNSUPPORTED_FUNCTIONS: &[(&str, &str)] = &[
    ("aws_lambda", "it invokes an AWS Lambda function"),
    ("get_dynamodb", "it reads an Amazon DynamoDB table"),
    ("get_secret", "it reads AWS Secrets Manager"),
    (
        "get_thing_shadow",
        "it reads a device shadow through an IAM role",
    ),
    (
        "get_registry_data",
        "it reads the thing registry through an IAM role",
    ),
    (
        "machinelearning_predict",
        "it calls an Amazon Machine Learning model",
    ),
];

pub(crate) enum Lookup {
    Found(Entry),
    NeedsAws(&'static str),
    Unknown,
}

/// Resolves a lower-cased function name.
pub(crate) fn lookup(lower: &str) -> Lookup {
    if let Some(entry) = FUNCTIONS.iter().find(|e| e.name == lower) {
        return Lookup::Found(*entry);
    }
    match UNSUPPORTED_FUNCTIONS
        .iter()
        .find(|(name, _)| *name == lower)
    {
        Some((_, reason)) => Lookup::NeedsAws(reason),
        None => Lookup::Unknown,
    }
}

/// Evaluates a call: arguments left to right, then the function.
pub(crate) fn call<'a>(
    c: &'a Call,
    env: &Env<'a>,
    scope: &Scope<'a>,
) -> Result<Value<'a>, EvalError> {
    if !c.arity_ok {
        return Ok(Value::Undefined);
    }
    // encode(*, …) encodes the payload's bytes exactly as they arrived, JSON
    // or not; everywhere else `*` is the parsed row.
    if c.func == Func::Encode && scope.top && matches!(c.args.first(), Some(crate::ast::Expr::Star))
    {
        let scheme = eval(&c.args[1], env, scope)?;
        return Ok(misc::encode_bytes(env.raw, &scheme));
    }
    let mut args: smallvec_args::Args<'a> = smallvec_args::Args::new();
    for a in &c.args {
        args.push(eval(a, env, scope)?);
    }
    let args = args.as_slice();
    let v2 = env.v2;
    Ok(match c.func {
        Func::Abs => math::abs(&args[0], v2),
        Func::Acos => math::unary_f64(&args[0], f64::acos, v2),
        Func::Asin => math::unary_f64(&args[0], f64::asin, v2),
        Func::Atan => math::unary_f64(&args[0], f64::atan, v2),
        Func::Atan2 => math::binary_f64(&args[0], &args[1], f64::atan2, v2),
        Func::Cos => math::unary_f64(&args[0], f64::cos, v2),
        Func::Cosh => math::unary_f64(&args[0], f64::cosh, v2),
        Func::Sin => math::unary_f64(&args[0], f64::sin, v2),
        Func::Sinh => math::unary_f64(&args[0], f64::sinh, v2),
        Func::Tan => math::unary_f64(&args[0], f64::tan, v2),
        Func::Tanh => math::unary_f64(&args[0], f64::tanh, v2),
        Func::Exp => math::unary_f64(&args[0], f64::exp, v2),
        Func::Ln => math::unary_f64(&args[0], f64::ln, v2),
        Func::Log => math::unary_f64(&args[0], f64::log10, v2),
        Func::Power => math::binary_f64(&args[0], &args[1], f64::powf, v2),
        Func::Sqrt => math::unary_f64(&args[0], f64::sqrt, v2),
        Func::Ceil => math::to_int(&args[0], crate::decimal::Rounding::Ceiling),
        Func::Floor => math::to_int(&args[0], crate::decimal::Rounding::Floor),
        Func::Round => math::to_int(&args[0], crate::decimal::Rounding::HalfUp),
        Func::Sign => math::sign(&args[0]),
        Func::Mod => crate::ops::arith(crate::ast::BinOp::Rem, &args[0], &args[1], v2)?,
        Func::Trunc => math::trunc(&args[0], &args[1], v2),
        Func::Nanvl => match &args[0] {
            Value::Undefined | Value::Null => args[1].clone(),
            other => other.clone(),
        },
        Func::Rand => Value::double(fastrand::f64(), false),
        Func::BitAnd => math::bits(&args[0], &args[1], |a, b| a & b),
        Func::BitOr => math::bits(&args[0], &args[1], |a, b| a | b),
        Func::BitXor => math::bits(&args[0], &args[1], |a, b| a ^ b),
        Func::BitNot => args[0]
            .to_int_down()
            .map_or(Value::Undefined, |a| Value::Int(!a)),
        Func::Chr => string::chr(&args[0]),
        Func::Concat => string::concat(args, v2)?,
        Func::EndsWith => string::test2(&args[0], &args[1], v2, |s, t| s.ends_with(t)),
        Func::StartsWith => string::test2(&args[0], &args[1], v2, |s, t| s.starts_with(t)),
        Func::IndexOf => string::indexof(&args[0], &args[1], v2),
        Func::Length => string::map(&args[0], v2, |s| Value::Int(s.chars().count() as i128)),
        Func::NumBytes => string::map(&args[0], v2, |s| Value::Int(s.len() as i128)),
        Func::Lower => string::map(&args[0], v2, |s| Value::string(s.to_lowercase())),
        Func::Upper => string::map(&args[0], v2, |s| Value::string(s.to_uppercase())),
        Func::Lpad => string::pad(&args[0], &args[1], v2, true),
        Func::Rpad => string::pad(&args[0], &args[1], v2, false),
        Func::Ltrim => string::trim(&args[0], v2, true, false),
        Func::Rtrim => string::trim(&args[0], v2, false, true),
        Func::Trim => string::trim(&args[0], v2, true, true),
        Func::Replace => string::replace(&args[0], &args[1], &args[2], v2)?,
        Func::RegexpMatches => string::regexp_matches(c, args, v2),
        Func::RegexpReplace => string::regexp_replace(c, args, v2)?,
        Func::RegexpSubstr => string::regexp_substr(c, args, v2),
        Func::Substring => string::substring(args, v2),
        Func::Get => get(&args[0], &args[1], v2),
        Func::IsNull => Value::Bool(matches!(args[0], Value::Null)),
        Func::IsUndefined => Value::Bool(args[0].is_undefined()),
        Func::GetOrDefault => match &args[0] {
            Value::Undefined | Value::Null => args[1].clone(),
            other => other.clone(),
        },
        Func::Encode => misc::encode(&args[0], &args[1], v2),
        Func::Decode => misc::decode(&args[0], &args[1], v2),
        Func::Hash(kind) => misc::hash(kind, &args[0], v2),
        Func::Transform => misc::transform(&args[0], &args[1], &args[2], v2),
        Func::ParseTime => time::parse_time(args, v2),
        Func::TimeToEpoch => time::time_to_epoch(&args[0], &args[1], v2),
        Func::SqlVersion => Value::str(env.version.as_str()),
        Func::Topic => topic(env, args),
        Func::ClientId => Value::str(env.ctx.client_id.unwrap_or("n/a")),
        Func::Principal => opt_str(env.ctx.principal),
        Func::AccountId => opt_str(env.ctx.account_id),
        Func::TraceId => opt_str(env.ctx.trace_id),
        Func::Timestamp => Value::Int(i128::from(env.ctx.timestamp_ms)),
        Func::NewUuid => Value::string(uuid::Uuid::new_v4().hyphenated().to_string()),
        Func::SourceIp => opt_str(env.ctx.source_ip),
        Func::GetMqttProperty => mqtt_property(env, &args[0]),
        Func::GetUserProperties => user_properties(env, &args[0]),
    })
}

fn opt_str<'a>(s: Option<&'a str>) -> Value<'a> {
    s.map_or(Value::Undefined, Value::str)
}

/// `topic()` is the whole topic; `topic(n)` its n-th level from 1, Undefined
/// past either end.
fn topic<'a>(env: &Env<'a>, args: &[Value<'a>]) -> Value<'a> {
    let topic = env.ctx.topic;
    let Some(n) = args.first() else {
        return Value::str(topic);
    };
    match n.to_int_implicit().and_then(|n| usize::try_from(n).ok()) {
        Some(n) => opt_str(roost_topic::topic_level(topic, n)),
        None => Value::Undefined,
    }
}

/// MQTT 5 PUBLISH properties, by the names AWS uses.
fn mqtt_property<'a>(env: &Env<'a>, name: &Value<'a>) -> Value<'a> {
    let Value::Str(name) = name else {
        return Value::Undefined;
    };
    let mqtt = &env.ctx.mqtt;
    match name.as_ref() {
        "content_type" => opt_str(mqtt.content_type),
        "response_topic" => opt_str(mqtt.response_topic),
        "format_indicator" => match mqtt.payload_format_indicator {
            Some(0) => Value::str("UNSPECIFIED_BYTES"),
            Some(1) => Value::str("UTF8_DATA"),
            _ => Value::Undefined,
        },
        "correlation_data" => mqtt.correlation_data.map_or(Value::Undefined, |data| {
            use base64::Engine as _;
            Value::string(base64::engine::general_purpose::STANDARD.encode(data))
        }),
        _ => Value::Undefined,
    }
}

/// The values of every user property with this key, in order (MQTT allows
/// repeats); Undefined when there is none.
fn user_properties<'a>(env: &Env<'a>, key: &Value<'a>) -> Value<'a> {
    let Value::Str(key) = key else {
        return Value::Undefined;
    };
    let values: Vec<Value<'a>> = env
        .ctx
        .mqtt
        .user_properties
        .iter()
        .filter(|(k, _)| k == key.as_ref())
        .map(|(_, v)| Value::str(v))
        .collect();
    if values.is_empty() {
        Value::Undefined
    } else {
        Value::array(values)
    }
}

/// Arguments without a heap allocation for the usual one to three.
mod smallvec_args {
    use crate::value::Value;

    pub(crate) struct Args<'a> {
        inline: [Value<'a>; 3],
        len: usize,
        spill: Vec<Value<'a>>,
    }

    impl<'a> Args<'a> {
        pub(crate) fn new() -> Self {
            Args {
                inline: [Value::Undefined, Value::Undefined, Value::Undefined],
                len: 0,
                spill: Vec::new(),
            }
        }

        pub(crate) fn push(&mut self, v: Value<'a>) {
            if self.spill.is_empty() && self.len < 3 {
                self.inline[self.len] = v;
                self.len += 1;
            } else {
                if self.spill.is_empty() {
                    self.spill
                        .extend(self.inline.iter_mut().map(std::mem::take));
                }
                self.spill.push(v);
            }
        }

        pub(crate) fn as_slice(&self) -> &[Value<'a>] {
            if self.spill.is_empty() {
                &self.inline[..self.len]
            } else {
                &self.spill
            }
        }
    }
}
