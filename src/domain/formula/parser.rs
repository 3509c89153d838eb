//! Formula text → expression tree: a tokenizer and a recursive-descent parser whose
//! recursion is bounded by [`MAX_DEPTH`] (binary chains loop rather than recurse).

use super::{Expr, FieldRef, FormulaError, Op, MAX_DEPTH, MAX_LEN};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ref(FieldRef),
    Op(Op),
    LParen,
    RParen,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Self::Num(_) => "a number".to_owned(),
            Self::Ref(r) => format!("the field reference {r}"),
            Self::Op(op) => format!("\"{}\"", op.symbol()),
            Self::LParen => "\"(\"".to_owned(),
            Self::RParen => "\")\"".to_owned(),
        }
    }
}

/// Parses formula text into a tree, enforcing [`MAX_LEN`] and [`MAX_DEPTH`].
pub(super) fn parse(src: &str) -> Result<Expr, FormulaError> {
    if src.len() > MAX_LEN {
        return Err(FormulaError::TooLong {
            len: src.len(),
            max: MAX_LEN,
        });
    }
    let chars: Vec<char> = src.chars().collect();
    let toks = tokenize(&chars)?;
    if toks.is_empty() {
        return Err(FormulaError::Empty);
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        end: chars.len() + 1,
    };
    let expr = p.expr()?;
    match p.toks.get(p.pos) {
        None => Ok(expr),
        Some((Tok::RParen, column)) => Err(FormulaError::Unexpected {
            expected: "an operator",
            found: "\")\" without a matching \"(\"".to_owned(),
            column: *column,
        }),
        Some((tok, column)) => Err(FormulaError::Unexpected {
            expected: "an operator",
            found: tok.describe(),
            column: *column,
        }),
    }
}

/// Splits the text into tokens paired with their 1-based columns.
fn tokenize(chars: &[char]) -> Result<Vec<(Tok, usize)>, FormulaError> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '+' => Tok::Op(Op::Add),
            '-' => Tok::Op(Op::Sub),
            '*' => Tok::Op(Op::Mul),
            '/' => Tok::Op(Op::Div),
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '{' => {
                let (r, next) = field_ref(chars, i)?;
                i = next;
                toks.push((Tok::Ref(r), column));
                continue;
            }
            c if c.is_ascii_digit() || c == '.' => {
                let (x, next) = number(chars, i)?;
                i = next;
                toks.push((Tok::Num(x), column));
                continue;
            }
            ch => return Err(FormulaError::UnexpectedChar { ch, column }),
        };
        toks.push((tok, column));
        i += 1;
    }
    Ok(toks)
}

/// Reads `{…}` starting at `start`; returns the reference and the index after `}`.
fn field_ref(chars: &[char], start: usize) -> Result<(FieldRef, usize), FormulaError> {
    let column = start + 1;
    let rest = chars.get(start + 1..).unwrap_or_default();
    let close = rest
        .iter()
        .position(|&c| c == '}' || c == '{')
        .filter(|&j| rest[j] == '}')
        .ok_or(FormulaError::UnclosedRef { column })?;
    let inner: String = rest[..close].iter().collect();
    let inner = inner.trim();
    if inner.is_empty() {
        return Err(FormulaError::EmptyRef { column });
    }
    let r = if inner.bytes().all(|b| b.is_ascii_digit()) {
        let id = inner
            .parse::<i64>()
            .ok()
            .filter(|&id| id > 0)
            .ok_or(FormulaError::InvalidRef { column })?;
        FieldRef::Id(id)
    } else {
        FieldRef::Name(inner.to_owned())
    };
    Ok((r, start + 1 + close + 1))
}

/// Reads a number literal at `start`; returns it and the index after it.
fn number(chars: &[char], start: usize) -> Result<(f64, usize), FormulaError> {
    let column = start + 1;
    let bad = || FormulaError::InvalidNumber { column };
    let digits = |mut i: usize| {
        let from = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        (i > from).then_some(i)
    };
    let mut i = digits(start).ok_or_else(bad)?;
    if chars.get(i) == Some(&'.') {
        i = digits(i + 1).ok_or_else(bad)?;
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        i = digits(j).ok_or_else(bad)?;
    }
    // `1.2.3`, `12abc`, `1e5x`: a literal must end at an operator, bracket or space.
    if chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '.') {
        return Err(bad());
    }
    let text: String = chars[start..i].iter().collect();
    let x: f64 = text.parse().map_err(|_| bad())?;
    if !x.is_finite() {
        return Err(FormulaError::NumberOutOfRange { column });
    }
    Ok((x, i))
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
    /// Column just past the end, for "ends there" errors.
    end: usize,
}

const OPERAND: &str = "a number, a {field} reference, \"-\" or \"(\"";

impl Parser {
    fn peek_op(&self, ops: [Op; 2]) -> Option<Op> {
        match self.toks.get(self.pos) {
            Some((Tok::Op(op), _)) if ops.contains(op) => Some(*op),
            _ => None,
        }
    }

    fn expr(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.term()?;
        while let Some(op) = self.peek_op([Op::Add, Op::Sub]) {
            self.pos += 1;
            let right = self.term()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.unary()?;
        while let Some(op) = self.peek_op([Op::Mul, Op::Div]) {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Enters one nesting level (parenthesis or unary minus) at `column`.
    fn enter(&mut self, column: usize) -> Result<(), FormulaError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FormulaError::TooDeep {
                column,
                max: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, FormulaError> {
        if let Some((Tok::Op(Op::Sub), column)) = self.toks.get(self.pos) {
            let column = *column;
            self.enter(column)?;
            self.pos += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Neg(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FormulaError> {
        let Some((tok, column)) = self.toks.get(self.pos).cloned() else {
            return Err(FormulaError::UnexpectedEnd {
                expected: OPERAND,
                column: self.end,
            });
        };
        self.pos += 1;
        match tok {
            Tok::Num(x) => Ok(Expr::Num(x)),
            Tok::Ref(r) => Ok(Expr::Ref(r)),
            Tok::LParen => {
                self.enter(column)?;
                let inner = self.expr()?;
                match self.toks.get(self.pos) {
                    Some((Tok::RParen, _)) => self.pos += 1,
                    None => return Err(FormulaError::UnclosedParen { column }),
                    Some((other, at)) => {
                        return Err(FormulaError::Unexpected {
                            expected: "an operator or \")\"",
                            found: other.describe(),
                            column: *at,
                        })
                    }
                }
                self.depth -= 1;
                Ok(inner)
            }
            other => Err(FormulaError::Unexpected {
                expected: OPERAND,
                found: other.describe(),
                column,
            }),
        }
    }
}
