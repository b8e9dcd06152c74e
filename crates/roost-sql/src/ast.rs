//! The parsed form of a statement: what the evaluator walks.
//!
//! For: holding everything evaluation needs, resolved once at parse time —
//! function names to [`Func`], SET variables to slots, literal regular
//! expressions compiled, output keys decided — so that evaluating a message
//! never looks at SQL text again. `Display` writes an equivalent statement
//! (fully parenthesised) that parses back to the same tree.
//! Never: hold anything tied to one message.

use std::fmt;
use std::sync::Arc;

use crate::decimal::Dec;
use crate::functions::Func;

#[derive(Clone, Debug)]
pub(crate) enum Expr {
    Null,
    Bool(bool),
    Int(i128),
    Dec(Dec),
    Str(Box<str>),
    /// A top-level field of the current row (the payload, or an element in a
    /// nested SELECT).
    Field(Box<str>),
    /// `*`: the whole row; for a non-JSON payload, its bytes.
    Star,
    /// A SET variable: its slot and name.
    Var(usize, Box<str>),
    Member(Box<Expr>, Box<str>),
    Index(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Box<Call>),
    Cast(Box<Expr>, CastType),
    Case(Box<Case>),
    Object(Vec<(Box<str>, Expr)>),
    Array(Vec<Expr>),
    Select(Box<Select>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "OR",
            BinOp::And => "AND",
            BinOp::Eq => "=",
            BinOp::Ne => "<>",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CastType {
    String,
    Int,
    Double,
    Decimal,
    Bool,
}

impl CastType {
    fn name(self) -> &'static str {
        match self {
            CastType::String => "String",
            CastType::Int => "Int",
            CastType::Double => "Double",
            CastType::Decimal => "Decimal",
            CastType::Bool => "Boolean",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub func: Func,
    /// The name as written, for `Display` and unaliased output keys.
    pub name: Box<str>,
    pub args: Vec<Expr>,
    /// Whether the argument count is one the function takes. AWS evaluates a
    /// call with the wrong number of arguments to Undefined rather than
    /// rejecting the rule.
    pub arity_ok: bool,
    /// The pattern of a regexp_* call, compiled once when it is a literal.
    pub regex: Option<Arc<fancy_regex::Regex>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Case {
    /// `CASE v WHEN …`; `None` for the searched form `CASE WHEN cond …`.
    pub operand: Option<Expr>,
    pub whens: Vec<(Expr, Expr)>,
    pub otherwise: Option<Expr>,
}

/// A SELECT: the statement's own, or a nested one (which has a FROM
/// expression instead of a topic filter).
#[derive(Clone, Debug)]
pub(crate) struct Select {
    pub value: bool,
    pub items: Vec<Item>,
    /// Nested SELECTs only: what to iterate over.
    pub from: Option<Expr>,
    pub filter: Option<Expr>,
}

#[derive(Clone, Debug)]
pub(crate) enum Item {
    Star,
    Expr {
        expr: Expr,
        /// Where the value goes in the output object: the alias, split at
        /// dots, or a key derived from the expression.
        path: Vec<Box<str>>,
        aliased: bool,
    },
}

/// `SET @name = expr`.
#[derive(Clone, Debug)]
pub(crate) struct SetVar {
    pub name: Box<str>,
    pub expr: Expr,
}

// ---- Display ------------------------------------------------------------------

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Null => f.write_str("NULL"),
            Expr::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Expr::Int(i) => write!(f, "{i}"),
            Expr::Dec(d) => write!(f, "{d}"),
            Expr::Str(s) => write_quoted(f, s),
            Expr::Field(name) => f.write_str(name),
            Expr::Star => f.write_str("*"),
            Expr::Var(_, name) => write!(f, "@{name}"),
            Expr::Member(base, key) => {
                write_postfix_base(f, base)?;
                write!(f, ".{key}")
            }
            Expr::Index(base, index) => {
                write_postfix_base(f, base)?;
                write!(f, "[{index}]")
            }
            Expr::Neg(e) => write!(f, "-({e})"),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Expr::Call(call) => {
                write!(f, "{}(", call.name)?;
                write_list(f, &call.args)?;
                f.write_str(")")
            }
            Expr::Cast(e, ty) => write!(f, "cast({e} AS {})", ty.name()),
            Expr::Case(case) => {
                f.write_str("CASE")?;
                if let Some(op) = &case.operand {
                    write!(f, " {op}")?;
                }
                for (when, then) in &case.whens {
                    write!(f, " WHEN {when} THEN {then}")?;
                }
                if let Some(e) = &case.otherwise {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END")
            }
            Expr::Object(members) => {
                f.write_str("{")?;
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_quoted(f, k)?;
                    write!(f, ": {v}")?;
                }
                f.write_str("}")
            }
            Expr::Array(items) => {
                f.write_str("[")?;
                write_list(f, items)?;
                f.write_str("]")
            }
            Expr::Select(select) => write!(f, "({select})"),
        }
    }
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        if self.value {
            f.write_str("VALUE ")?;
        }
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_item(f, item, self.value)?;
        }
        if let Some(from) = &self.from {
            write!(f, " FROM {from}")?;
        }
        if let Some(filter) = &self.filter {
            write!(f, " WHERE {filter}")?;
        }
        Ok(())
    }
}

/// The base of `.name` or `[i]`, parenthesised where a prefix operator
/// would otherwise take the postfix with it (`(-1)[0]` is not `-(1[0])`).
fn write_postfix_base(f: &mut fmt::Formatter<'_>, base: &Expr) -> fmt::Result {
    let loose = match base {
        Expr::Neg(_) => true,
        Expr::Int(i) => *i < 0,
        Expr::Dec(d) => d.signum() < 0,
        _ => false,
    };
    if loose {
        write!(f, "({base})")
    } else {
        write!(f, "{base}")
    }
}

/// One SELECT item. After VALUE the expression is parenthesised so that it
/// cannot read as a field called `value` (`SELECT value - 1`).
pub(crate) fn write_item(f: &mut fmt::Formatter<'_>, item: &Item, value: bool) -> fmt::Result {
    match item {
        Item::Star => f.write_str("*"),
        Item::Expr { expr, .. } if value => write!(f, "({expr})"),
        Item::Expr {
            expr,
            path,
            aliased,
        } => {
            // `value[0]` or `value - 1` first in the list would read as VALUE.
            let text = expr.to_string();
            let lower = text.to_ascii_lowercase();
            if lower.starts_with("value[") {
                write!(f, "({text})")?;
            } else {
                f.write_str(&text)?;
            }
            if *aliased {
                f.write_str(" AS ")?;
                for (j, part) in path.iter().enumerate() {
                    if j > 0 {
                        f.write_str(".")?;
                    }
                    if is_plain_name(part) {
                        f.write_str(part)?;
                    } else {
                        write_quoted(f, part)?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// Whether an alias part can be written bare.
fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

/// A single-quoted literal the lexer reads back to `s`.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        match c {
            '\'' => f.write_str("''")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")
}
