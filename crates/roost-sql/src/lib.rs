//! AWS IoT SQL: the language of AWS IoT rules, parsed once and evaluated per
//! message.
//!
//! What this crate is for: turning a rule's SQL ([`parse`]) into a
//! [`Statement`] that decides, for one message (topic, payload bytes, and the
//! [`Context`] AWS's functions read), whether the rule fires and what its
//! actions receive ([`Statement::evaluate`] → [`Output`]); and the `${…}`
//! substitution templates of action fields ([`parse_template`],
//! [`Statement::template`] → [`Template::render`]). It follows AWS's type
//! system — Int and 34-digit Decimal, Undefined, the implicit conversions —
//! in both SQL versions, `2015-10-08` and `2016-03-23`.
//!
//! What it must never do: any I/O, including calling AWS services (functions
//! that need one make [`parse`] fail: "not supported by Roost: get_dynamodb");
//! re-parse SQL or copy the payload when evaluating; panic or recurse without
//! bound on any statement text or payload.
//!
//! ```
//! use roost_sql::{parse, Context, Output, SqlVersion};
//!
//! let rule = parse(
//!     "SELECT message AS msg, topic(1) AS tenant_id FROM '+/audit' WHERE port = 3389",
//!     SqlVersion::V2016_03_23,
//! )
//! .unwrap();
//! assert!(rule.matches_topic("abcde-12345/audit"));
//!
//! let ctx = Context::new("abcde-12345/audit", 1_764_499_200_000);
//! let out = rule
//!     .evaluate(br#"{"message": "intrusion attempt", "port": 3389}"#, &ctx)
//!     .unwrap();
//! assert_eq!(
//!     out,
//!     Some(Output::Json(serde_json::json!({
//!         "msg": "intrusion attempt",
//!         "tenant_id": "abcde-12345"
//!     })))
//! );
//!
//! let key = rule.template("${topic(1)}/${timestamp()}").unwrap();
//! assert_eq!(key.render(b"{}", &ctx).unwrap(), "abcde-12345/1764499200000");
//! ```
#![forbid(unsafe_code)]

mod ast;
mod decimal;
mod error;
mod eval;
mod functions;
mod lexer;
mod ops;
mod parser;
mod template;
mod value;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use roost_topic::{matches, MatchMode};

pub use error::{EvalError, SqlError, SqlErrorKind};
pub use functions::UNSUPPORTED_FUNCTIONS;
pub use template::Template;

/// Which dialect a rule is written in (`awsIotSqlVersion`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SqlVersion {
    /// The original version, AWS's default when a rule names none.
    #[default]
    V2015_10_08,
    /// Adds object and array literals, nested SELECTs, SET, the functions
    /// marked 2016-03-23 (encode, decode, length, …), arrays as the whole
    /// output, and reads whole-number Decimals as Ints (`10.0` is `10`).
    V2016_03_23,
}

impl SqlVersion {
    /// The version as AWS writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SqlVersion::V2015_10_08 => "2015-10-08",
            SqlVersion::V2016_03_23 => "2016-03-23",
        }
    }
}

impl fmt::Display for SqlVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `awsIotSqlVersion` that is not one AWS defines.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown SQL version {0:?} (expected 2015-10-08, 2016-03-23 or beta)")]
pub struct UnknownSqlVersion(pub String);

impl FromStr for SqlVersion {
    type Err = UnknownSqlVersion;

    /// `"2015-10-08"`, `"2016-03-23"`, or `"beta"` (AWS's "latest" channel,
    /// which is 2016-03-23 here: Roost has no newer dialect).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2015-10-08" => Ok(SqlVersion::V2015_10_08),
            "2016-03-23" | "beta" => Ok(SqlVersion::V2016_03_23),
            other => Err(UnknownSqlVersion(other.to_string())),
        }
    }
}

/// What AWS's functions know about the message besides its payload.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The topic as `topic()` sees it: for a Basic Ingest publish
    /// (`$aws/rules/<rule>/<rest>`), only `<rest>`.
    pub topic: &'a str,
    /// `clientid()`; `"n/a"` when absent (not published over MQTT).
    pub client_id: Option<&'a str>,
    /// `principal()`: the certificate id (hex SHA-256) or other principal.
    pub principal: Option<&'a str>,
    /// `timestamp()`: when the rules engine took the message, in milliseconds
    /// since the epoch. One value per message, so SELECT and every template
    /// agree.
    pub timestamp_ms: i64,
    /// `traceid()`.
    pub trace_id: Option<&'a str>,
    /// `accountid()`.
    pub account_id: Option<&'a str>,
    /// `sourceip()`: the publisher's address.
    pub source_ip: Option<&'a str>,
    /// MQTT 5 PUBLISH properties, for `get_mqtt_property` and
    /// `get_user_properties`.
    pub mqtt: MqttProperties<'a>,
}

impl<'a> Context<'a> {
    /// A context with only the topic and time set.
    pub fn new(topic: &'a str, timestamp_ms: i64) -> Self {
        Context {
            topic,
            timestamp_ms,
            ..Context::default()
        }
    }
}

/// The MQTT 5 properties of the PUBLISH that carried the message.
#[derive(Clone, Copy, Debug, Default)]
pub struct MqttProperties<'a> {
    /// 0 (unspecified bytes) or 1 (UTF-8): `get_mqtt_property('format_indicator')`
    /// reads `UNSPECIFIED_BYTES` or `UTF8_DATA`.
    pub payload_format_indicator: Option<u8>,
    pub content_type: Option<&'a str>,
    pub response_topic: Option<&'a str>,
    /// Read back base64-encoded, as AWS returns it.
    pub correlation_data: Option<&'a [u8]>,
    pub user_properties: &'a [(String, String)],
}

/// What a rule's actions receive for one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A JSON document: the SELECT object, or any value with `SELECT VALUE`.
    Json(serde_json::Value),
    /// Bytes that are not JSON: `SELECT *` on a non-JSON payload passes it
    /// through unchanged; a `SELECT VALUE` that is Undefined is empty.
    Bytes(Vec<u8>),
}

impl Output {
    /// The payload an action sends: JSON text, or the bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Output::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            Output::Bytes(b) => b.clone(),
        }
    }

    /// The content type an HTTP action sends by default.
    pub fn content_type(&self) -> &'static str {
        match self {
            Output::Json(_) => "application/json",
            Output::Bytes(_) => "application/octet-stream",
        }
    }
}

/// A parsed rule statement: evaluate it on as many messages as you like.
#[derive(Clone, Debug)]
pub struct Statement {
    version: SqlVersion,
    /// Shared with the templates made from this statement, which evaluate
    /// the same SET variables.
    sets: Arc<[ast::SetVar]>,
    select: ast::Select,
    from: Option<String>,
    uses_payload: bool,
}

/// Parses a rule's SQL.
///
/// Fails, with the position, on syntax errors; unknown functions; functions
/// that need an AWS service ([`UNSUPPORTED_FUNCTIONS`]); features of SQL
/// 2016-03-23 under 2015-10-08; an invalid FROM topic filter; and literal
/// regular expressions that do not compile.
pub fn parse(sql: &str, version: SqlVersion) -> Result<Statement, SqlError> {
    if sql.len() > parser::MAX_TEXT_BYTES {
        return Err(lexer::error_at(
            sql,
            0,
            SqlErrorKind::TooLong(parser::MAX_TEXT_BYTES),
        ));
    }
    let parsed = parser::Parser::new(sql, 0, version, Vec::new()).statement()?;
    Ok(Statement {
        version,
        sets: parsed.sets.into(),
        select: parsed.select,
        from: parsed.from,
        uses_payload: parsed.uses_payload,
    })
}

/// Parses an action field with `${expression}` substitutions. SET variables
/// are not visible here; use [`Statement::template`] for that.
pub fn parse_template(text: &str, version: SqlVersion) -> Result<Template, SqlError> {
    Template::parse(text, version, Arc::from(Vec::new()))
}

impl Statement {
    /// The FROM topic filter; empty for a rule without FROM (reachable only
    /// through Basic Ingest).
    pub fn from_topic(&self) -> &str {
        self.from.as_deref().unwrap_or("")
    }

    /// Whether a message on `topic` reaches this rule through its FROM
    /// filter, matched as AWS matches (`a/#` does not match `a`; wildcards do
    /// not match `$` topics). Always false without FROM.
    pub fn matches_topic(&self, topic: &str) -> bool {
        self.from
            .as_deref()
            .is_some_and(|filter| matches(filter, topic, MatchMode::Aws))
    }

    pub fn version(&self) -> SqlVersion {
        self.version
    }

    /// Functions in this statement that need an AWS service. Always empty:
    /// [`parse`] rejects such statements (see
    /// [`SqlError::unsupported_function`]); kept so callers can say so.
    pub fn unsupported_functions(&self) -> Vec<String> {
        Vec::new()
    }

    /// Evaluates the statement on one message. `Ok(None)`: the WHERE clause
    /// filtered it out, and no action runs.
    pub fn evaluate(&self, payload: &[u8], ctx: &Context<'_>) -> Result<Option<Output>, EvalError> {
        eval::evaluate(self, payload, ctx)
    }

    /// Parses an action field's template in this statement's SQL version,
    /// with its SET variables visible.
    pub fn template(&self, text: &str) -> Result<Template, SqlError> {
        Template::parse(text, self.version, self.sets.clone())
    }
}

impl fmt::Display for Statement {
    /// An equivalent statement, fully parenthesised; it parses back to the
    /// same statement.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.sets.is_empty() {
            f.write_str("SET ")?;
            for (i, set) in self.sets.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "@{} = {}", set.name, set.expr)?;
            }
            f.write_str(" ")?;
        }
        let ast::Select {
            value,
            items,
            filter,
            ..
        } = &self.select;
        f.write_str("SELECT ")?;
        if *value {
            f.write_str("VALUE ")?;
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            ast::write_item(f, item, *value)?;
        }
        if let Some(from) = &self.from {
            f.write_str(" FROM ")?;
            ast::write_quoted(f, from)?;
        }
        if let Some(filter) = filter {
            write!(f, " WHERE {filter}")?;
        }
        Ok(())
    }
}
