//! Formula fields: a small arithmetic language over number and formula fields.
//!
//! Grammar (whitespace is free between tokens):
//! ```text
//! expr    := term (("+" | "-") term)*
//! term    := unary (("*" | "/") unary)*
//! unary   := "-" unary | primary
//! primary := number | "{" field "}" | "(" expr ")"
//! number  := digits ("." digits)? (("e" | "E") ("+" | "-")? digits)?
//! field   := a field name, or digits for a field id (`{Budget}`, `{10002}`)
//! ```
//! Operators are left-associative; unary minus binds tighter than `*` and `/`.
//!
//! Bounds, so a formula can never cost much to parse or evaluate: the text is at most
//! [`MAX_LEN`] bytes and parentheses plus unary minuses nest at most [`MAX_DEPTH`] deep.
//! Long flat chains (`1+1+…`) are limited by the length alone.
//!
//! Evaluation yields `None` (the field is then null) when an operand is missing or not a
//! number, on division by zero, and on any non-finite intermediate result: a formula never
//! produces NaN or infinity.

mod order;
mod parser;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

use super::field::FieldType;

pub use order::{evaluate_formulas, evaluation_order, resolve};

/// Longest formula text accepted, in bytes (1 KiB).
pub const MAX_LEN: usize = 1024;
/// Deepest nesting of parentheses and unary minus accepted.
pub const MAX_DEPTH: usize = 32;

/// A reference to another field inside a formula.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldRef {
    /// `{10002}`: by id, immune to renames.
    Id(i64),
    /// `{Budget}`: by name (trimmed), as people write them.
    Name(String),
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{{{id}}}"),
            Self::Name(name) => write!(f, "{{{name}}}"),
        }
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    fn symbol(self) -> char {
        match self {
            Self::Add => '+',
            Self::Sub => '-',
            Self::Mul => '*',
            Self::Div => '/',
        }
    }

    fn precedence(self) -> u8 {
        match self {
            Self::Add | Self::Sub => 1,
            Self::Mul | Self::Div => 2,
        }
    }
}

/// The expression tree. Number literals are finite and non-negative (a leading minus is
/// [`Expr::Neg`]), which keeps [`Formula`]'s `Display` a faithful inverse of parsing.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(f64),
    Ref(FieldRef),
    Neg(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
}

impl Expr {
    fn precedence(&self) -> u8 {
        match self {
            Self::Bin(op, ..) => op.precedence(),
            Self::Neg(_) => 3,
            Self::Num(_) | Self::Ref(_) => 4,
        }
    }

    fn eval(&self, get: &dyn Fn(&FieldRef) -> Option<f64>) -> Option<f64> {
        let v = match self {
            Self::Num(x) => *x,
            Self::Ref(r) => get(r)?,
            Self::Neg(e) => -e.eval(get)?,
            Self::Bin(op, l, r) => {
                let (a, b) = (l.eval(get)?, r.eval(get)?);
                match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div if b == 0.0 => return None,
                    Op::Div => a / b,
                }
            }
        };
        v.is_finite().then_some(v)
    }

    fn collect_refs(&self, out: &mut Vec<FieldRef>) {
        match self {
            Self::Num(_) => {}
            Self::Ref(r) => {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
            Self::Neg(e) => e.collect_refs(out),
            Self::Bin(_, l, r) => {
                l.collect_refs(out);
                r.collect_refs(out);
            }
        }
    }
}

impl fmt::Display for Expr {
    /// Canonical spelling: single spaces around binary operators and only the parentheses
    /// the tree needs, so parsing the output yields the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let child = |f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool| {
            if parens {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        match self {
            Self::Num(x) => f.write_str(&format_literal(*x)),
            Self::Ref(r) => write!(f, "{r}"),
            Self::Neg(e) => {
                f.write_str("-")?;
                child(f, e, e.precedence() < 3)
            }
            Self::Bin(op, l, r) => {
                let p = op.precedence();
                child(f, l, l.precedence() < p)?;
                write!(f, " {} ", op.symbol())?;
                // Left-associative: an equal-precedence right operand needs parentheses.
                child(f, r, r.precedence() <= p)
            }
        }
    }
}

/// The shorter of the positional and exponent spellings of a literal (positional on a
/// tie); both are the shortest digits that read back as exactly the same `f64`.
fn format_literal(x: f64) -> String {
    let plain = x.to_string();
    let exp = format!("{x:e}");
    if plain.len() <= exp.len() {
        plain
    } else {
        exp
    }
}

/// A parsed formula. Two formulas are equal when their expression trees are equal;
/// spacing and redundant parentheses in the source do not matter.
#[derive(Debug, Clone)]
pub struct Formula {
    /// The text as written, kept so users see their own formatting and so the stored form
    /// re-parses under the same limits it was accepted with.
    source: String,
    expr: Expr,
}

impl PartialEq for Formula {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl Formula {
    /// Parses formula text; errors say what was expected and at which column (1-based,
    /// in characters).
    pub fn parse(source: &str) -> Result<Self, FormulaError> {
        let expr = parser::parse(source)?;
        Ok(Self {
            source: source.to_owned(),
            expr,
        })
    }

    /// The text as the user wrote it. `Display` gives the canonical spelling instead.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The fields this formula reads, each once, in order of first appearance.
    pub fn references(&self) -> Vec<FieldRef> {
        let mut out = Vec::new();
        self.expr.collect_refs(&mut out);
        out
    }

    /// Evaluates with `get` supplying each referenced field's number (`None` when unset or
    /// not a number). `None` means the formula field is null; see the module docs.
    pub fn eval(&self, get: impl Fn(&FieldRef) -> Option<f64>) -> Option<f64> {
        let v = self.expr.eval(&get)?;
        Some(if v == 0.0 { 0.0 } else { v })
    }
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

impl Serialize for Formula {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Formula {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::parse(&source).map_err(serde::de::Error::custom)
    }
}

/// Why a formula was refused: a syntax error (with its column) or, when checked against
/// the tenant's fields, a bad reference or a cycle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormulaError {
    /// Nothing but whitespace.
    #[error("the formula is empty")]
    Empty,
    /// Over [`MAX_LEN`].
    #[error("the formula is too long: {len} bytes, at most {max} allowed")]
    TooLong {
        /// Bytes given.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A character that starts no token.
    #[error("unexpected character {ch:?} at column {column}; formulas use numbers, + - * /, parentheses and {{field}} references")]
    UnexpectedChar {
        /// The character.
        ch: char,
        /// 1-based column.
        column: usize,
    },
    /// A malformed number literal.
    #[error("malformed number at column {column}; write numbers like 12, 0.5 or 1e6")]
    InvalidNumber {
        /// 1-based column.
        column: usize,
    },
    /// A literal too large for a 64-bit float.
    #[error("the number at column {column} is too large")]
    NumberOutOfRange {
        /// 1-based column.
        column: usize,
    },
    /// `{` without a matching `}` (or with another `{` inside).
    #[error("the field reference starting at column {column} is not closed with }}")]
    UnclosedRef {
        /// 1-based column of the `{`.
        column: usize,
    },
    /// `{}` or `{  }`.
    #[error("empty field reference at column {column}; write {{Field name}} or {{field id}}")]
    EmptyRef {
        /// 1-based column of the `{`.
        column: usize,
    },
    /// A digits-only reference that is not a valid id.
    #[error("the field id at column {column} is not a valid id")]
    InvalidRef {
        /// 1-based column of the `{`.
        column: usize,
    },
    /// A token where something else was needed.
    #[error("expected {expected} at column {column}, but found {found}")]
    Unexpected {
        /// What would have fit.
        expected: &'static str,
        /// What was there.
        found: String,
        /// 1-based column.
        column: usize,
    },
    /// The text ends where an operand was needed.
    #[error("expected {expected} at column {column}, but the formula ends there")]
    UnexpectedEnd {
        /// What would have fit.
        expected: &'static str,
        /// 1-based column just past the end.
        column: usize,
    },
    /// `(` without `)`.
    #[error("the parenthesis opened at column {column} is never closed")]
    UnclosedParen {
        /// 1-based column of the `(`.
        column: usize,
    },
    /// Over [`MAX_DEPTH`].
    #[error("the formula nests too deeply at column {column}: at most {max} levels of parentheses and unary minus")]
    TooDeep {
        /// 1-based column.
        column: usize,
        /// Limit.
        max: usize,
    },
    /// A formula-type field definition without a formula.
    #[error("{field} is a formula field without a formula")]
    MissingFormula {
        /// Field name.
        field: String,
    },
    /// A reference to a field the tenant does not have.
    #[error("the formula of {field} refers to {reference}, which is not a field")]
    UnknownField {
        /// Name of the formula field.
        field: String,
        /// The reference as written.
        reference: String,
    },
    /// A reference to a field that holds no number.
    #[error("the formula of {field} refers to {reference}, a {field_type} field; formulas can only use number and formula fields")]
    NotNumeric {
        /// Name of the formula field.
        field: String,
        /// The reference as written.
        reference: String,
        /// The referenced field's type.
        field_type: FieldType,
    },
    /// Formulas that depend on each other in a loop.
    #[error("formulas refer to each other in a cycle: {}", fields.join(" → "))]
    Cycle {
        /// Names along the cycle, the first repeated at the end.
        fields: Vec<String>,
    },
}
