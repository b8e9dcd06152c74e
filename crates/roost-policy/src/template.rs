//! Strings that may hold policy variables: `Resource`/`NotResource` entries and
//! condition values.
//!
//! In a `2012-10-17` document `${name}` is a variable and `${*}`, `${?}`, `${$}` (and
//! AWS IoT's spelling `$(*)`, `$(?)`, `$($)`) are a literal `*`, `?`, `$`. In a legacy
//! document none of this applies and the text is taken as written. This module only
//! splits and substitutes; it must never decide how the result is matched.

use crate::context::ConnectionContext;
use crate::glob::Segment;
use crate::variables::Variable;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Policy text; `*` and `?` keep their wildcard meaning.
    Text(String),
    /// An escaped special character.
    Escaped(char),
    Variable {
        name: String,
        variable: Variable,
    },
}

/// A string from a policy, split into text, escapes and variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

/// A template after substitution: text pieces (wildcards live) and literal pieces.
pub(crate) struct Substituted<'a> {
    pieces: Vec<Piece<'a>>,
}

enum Piece<'a> {
    Text(&'a str),
    Literal(String),
}

impl Template {
    /// A legacy (`2008-10-17` or unversioned) string: no variables, no escapes.
    pub(crate) fn legacy(text: &str) -> Template {
        Template {
            parts: vec![Part::Text(text.to_string())],
        }
    }

    /// Splits a `2012-10-17` string. The error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut plain = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            plain.push_str(&rest[..dollar]);
            let at = &rest[dollar..];
            // `${*}`, `${?}`, `${$}` and the `$(*)` spelling: four bytes, all ASCII.
            let escaped = match at.as_bytes() {
                [b'$', b'{', c @ (b'*' | b'?' | b'$'), b'}', ..]
                | [b'$', b'(', c @ (b'*' | b'?' | b'$'), b')', ..] => Some(char::from(*c)),
                _ => None,
            };
            if let Some(c) = escaped {
                flush(&mut plain, &mut parts);
                parts.push(Part::Escaped(c));
                rest = &at[4..];
            } else if let Some(body) = at.strip_prefix("${") {
                // A `${` with no `}` is almost always a typo; taking it literally (as
                // IAM would) would silently grant nothing, so it is refused instead.
                let Some(close) = body.find('}') else {
                    return Err(format!(
                        "unterminated policy variable in {}; write ${{$}} for a literal $",
                        crate::json::quote(text)
                    ));
                };
                let name = &body[..close];
                if name.is_empty() {
                    return Err(format!(
                        "empty policy variable in {}",
                        crate::json::quote(text)
                    ));
                }
                flush(&mut plain, &mut parts);
                parts.push(Part::Variable {
                    name: name.to_string(),
                    variable: Variable::parse(name),
                });
                rest = &body[close + 1..];
            } else {
                plain.push('$');
                rest = &at[1..];
            }
        }
        plain.push_str(rest);
        flush(&mut plain, &mut parts);
        Ok(Template { parts })
    }

    /// The variable names as written, for reports.
    pub(crate) fn variable_names(&self) -> Vec<String> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Variable { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// The text when there is nothing to substitute (escapes resolved).
    pub(crate) fn literal_text(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Escaped(c) => out.push(*c),
                Part::Variable { .. } => return None,
            }
        }
        Some(out)
    }

    /// Substitutes every variable, or returns the names that did not resolve.
    pub(crate) fn substitute(
        &self,
        ctx: &ConnectionContext,
    ) -> Result<Substituted<'_>, Vec<String>> {
        let mut pieces = Vec::with_capacity(self.parts.len());
        let mut missing = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => pieces.push(Piece::Text(t)),
                Part::Escaped(c) => pieces.push(Piece::Literal(c.to_string())),
                Part::Variable { name, variable } => match variable.substitute(ctx) {
                    Some(value) => pieces.push(Piece::Literal(value)),
                    None => missing.push(name.clone()),
                },
            }
        }
        if missing.is_empty() {
            Ok(Substituted { pieces })
        } else {
            Err(missing)
        }
    }
}

fn flush(plain: &mut String, parts: &mut Vec<Part>) {
    if !plain.is_empty() {
        parts.push(Part::Text(std::mem::take(plain)));
    }
}

impl Substituted<'_> {
    /// The pieces for [`crate::glob::Pattern::compile`].
    pub(crate) fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        self.pieces.iter().map(|p| match p {
            Piece::Text(t) => Segment::Glob(t),
            Piece::Literal(l) => Segment::Literal(l),
        })
    }

    /// The plain string, for operators that do not glob.
    pub(crate) fn text(&self) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => *t,
                Piece::Literal(l) => l.as_str(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ThingContext;
    use crate::glob::Pattern;

    fn ctx() -> ConnectionContext {
        ConnectionContext {
            client_id: Some("c*1".into()),
            thing: Some(ThingContext {
                name: "t1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pattern(template: &str) -> Pattern {
        let t = Template::parse(template).unwrap();
        let s = t.substitute(&ctx()).unwrap();
        Pattern::compile(s.segments())
    }

    #[test]
    fn variables_are_substituted_as_literals() {
        let p = pattern("topic/${iot:ClientId}/*");
        assert!(p.matches("topic/c*1/x"));
        // The client id's `*` is not a wildcard.
        assert!(!p.matches("topic/cX1/x"));
        assert!(pattern("client/${iot:Connection.Thing.ThingName}").matches("client/t1"));
    }

    #[test]
    fn escapes_in_both_spellings() {
        for escaped in ["a/${*}/${?}/${$}", "a/$(*)/$(?)/$($)"] {
            let t = Template::parse(escaped).unwrap();
            assert!(t.variable_names().is_empty());
            assert_eq!(t.literal_text().as_deref(), Some("a/*/?/$"));
            let p = pattern(escaped);
            assert!(p.matches("a/*/?/$"));
            assert!(!p.matches("a/b/c/$"));
        }
        // A lone `$` and `$aws` stay text.
        assert_eq!(
            Template::parse("topic/$aws/x$")
                .unwrap()
                .literal_text()
                .as_deref(),
            Some("topic/$aws/x$")
        );
    }

    #[test]
    fn malformed_variables_are_refused() {
        assert!(Template::parse("a/${iot:ClientId")
            .unwrap_err()
            .contains("unterminated"));
        assert!(Template::parse("a/${}").unwrap_err().contains("empty"));
    }

    #[test]
    fn unresolved_variables_are_reported() {
        let t = Template::parse("${iot:Connection.Thing.Attributes[Owner]}/${iot:ClientId}/${x:y}")
            .unwrap();
        let missing = t.substitute(&ctx()).err().unwrap();
        assert_eq!(missing, ["iot:Connection.Thing.Attributes[Owner]", "x:y"]);
    }

    #[test]
    fn legacy_text_is_untouched() {
        let t = Template::legacy("client/${iot:ClientId}");
        assert!(t.variable_names().is_empty());
        let s = t.substitute(&ctx()).unwrap();
        assert_eq!(s.text(), "client/${iot:ClientId}");
    }
}
