//! Substitution templates: action fields with `${expression}` in them.
//!
//! For: S3 keys, republish topics, HTTP URLs and the like —
//! `${topic()}/${timestamp()}`. Each `${…}` holds one IoT SQL expression,
//! evaluated against the *incoming* payload (SELECT's aliases are not
//! visible; the statement's SET variables are, when the template was made
//! with [`crate::Statement::template`]). Text outside `${…}` is kept as it is,
//! lone `$` included (`$$aws/things/…` republish topics).
//! Never: fail on a value: Strings go in as they are, numbers and Booleans as
//! their String form, Arrays and Objects as compact JSON, and Null and
//! Undefined as nothing.

use std::sync::Arc;

use crate::ast::{Expr, SetVar};
use crate::error::{EvalError, SqlError, SqlErrorKind};
use crate::eval::{eval, eval_sets, Env, Payload};
use crate::lexer::error_at;
use crate::parser::{Parser, MAX_TEXT_BYTES};
use crate::value::Value;
use crate::{Context, SqlVersion};

/// A parsed template; render it once per message.
#[derive(Clone, Debug)]
pub struct Template {
    parts: Vec<Part>,
    version: SqlVersion,
    sets: Arc<[SetVar]>,
    uses_payload: bool,
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Expr(Expr),
}

impl Template {
    pub(crate) fn parse(
        text: &str,
        version: SqlVersion,
        sets: Arc<[SetVar]>,
    ) -> Result<Template, SqlError> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(error_at(text, 0, SqlErrorKind::TooLong(MAX_TEXT_BYTES)));
        }
        let vars: Vec<Box<str>> = sets.iter().map(|s| s.name.clone()).collect();
        let mut parts = Vec::new();
        let mut uses_payload = false;
        let mut literal = String::new();
        let mut pos = 0;
        while let Some(found) = text[pos..].find("${") {
            let start = pos + found;
            literal.push_str(&text[pos..start]);
            let parser = Parser::new(text, start + 2, version, vars.clone());
            let (expr, end, reads_payload) = parser.template_expr()?;
            uses_payload |= reads_payload;
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Expr(expr));
            pos = end;
        }
        literal.push_str(&text[pos..]);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        // SET expressions run before the template's, and may read fields.
        uses_payload |= !sets.is_empty();
        Ok(Template {
            parts,
            version,
            sets,
            uses_payload,
        })
    }

    /// Whether the template has no `${…}`: the same text for every message.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The text for one message.
    pub fn render(&self, payload: &[u8], ctx: &Context<'_>) -> Result<String, EvalError> {
        let v2 = self.version == SqlVersion::V2016_03_23;
        let parsed = if self.uses_payload {
            Payload::parse(payload)
        } else {
            Payload::Bytes
        };
        let scope = parsed.scope(payload, v2);
        let mut env = Env {
            version: self.version,
            v2,
            ctx,
            raw: payload,
            vars: Vec::new(),
        };
        eval_sets(&self.sets, &mut env, &scope)?;
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => {
                    let v = eval(e, &env, &scope)?;
                    if let Some(text) = match v {
                        Value::Null | Value::Undefined | Value::Bytes(_) => None,
                        other => other.to_text(v2),
                    } {
                        out.push_str(&text);
                    }
                }
            }
        }
        Ok(out)
    }
}
