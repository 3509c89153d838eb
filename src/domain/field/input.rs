//! JSON → [`FieldValue`]: the API's input ([`parse_input`], checked against the field's
//! options and the tenant's users and projects) and, with those checks off, stored canonical
//! JSON ([`super::from_canonical_json`]). One decoder serves both so the two can never
//! disagree about what a value looks like.

use serde_json::{Map, Value};

use super::duration::parse_duration;
use super::error::{excerpt, excerpt_str, kind_of, truncated, FieldValueError, MilestoneProblem};
use super::value::{parse_date, DurationMs, FieldValue, Finite};
use super::{FieldDef, FieldType, MAX_ITEMS, TEXTAREA_MAX_BYTES, TEXT_MAX_CHARS};

type Result<T> = std::result::Result<T, FieldValueError>;

/// Existence checks for referenced users and projects. Kept synchronous and tiny so value
/// parsing stays pure: the caller loads (or caches) what it needs before parsing.
pub trait RefLookup {
    /// Whether the tenant has a user with this account id.
    fn user_exists(&self, account_id: &str) -> bool;
    /// Whether the tenant has a project with this id.
    fn project_exists(&self, id: i64) -> bool;
}

/// Parses an API value for `def`. `null` and `""` clear the field (`null`, or `[]` for multi
/// types). Accepted spellings, beyond the canonical JSON of [`super::to_canonical_json`]:
/// numbers as decimal strings, durations as strings such as `"8h"`, `"90m"` or
/// `"1d 2h 30m"` (units w, d, h, m, s, ms; a day is 24 hours, a week 7 days), option
/// names in any letter case or with stray spaces, users as bare account ids, projects as ids or id strings, and
/// Projectrak's `linkedIssuesId`. Formula fields are refused: their values are computed.
pub fn parse_input(def: &FieldDef, input: &Value, lookup: &dyn RefLookup) -> Result<FieldValue> {
    if !def.field_type.is_settable() {
        return Err(FieldValueError::NotSettable {
            field: def.name.clone(),
        });
    }
    let decoder = Decoder {
        field: &def.name,
        checks: Some(Checks {
            options: &def.options,
            lookup,
        }),
    };
    decoder.decode(def.field_type, input)
}

/// What only API input is checked against; stored values skip it so that removing an
/// option or a user later never makes history unreadable.
pub(super) struct Checks<'a> {
    /// The field's options.
    pub options: &'a [String],
    /// The tenant's users and projects.
    pub lookup: &'a dyn RefLookup,
}

/// Decodes one field's JSON value.
pub(super) struct Decoder<'a> {
    /// Field name for error messages.
    pub field: &'a str,
    /// `Some` for API input.
    pub checks: Option<Checks<'a>>,
}

impl Decoder<'_> {
    /// Decodes `v` as a value of `ft` (formula values decode as numbers).
    pub fn decode(&self, ft: FieldType, v: &Value) -> Result<FieldValue> {
        if v.is_null() || v.as_str() == Some("") {
            return Ok(FieldValue::empty(ft));
        }
        Ok(match ft {
            FieldType::Text | FieldType::Textarea => FieldValue::Text(self.text(ft, v)?),
            FieldType::Number | FieldType::Formula => FieldValue::Number(self.number(v)?),
            FieldType::Date => FieldValue::Date(self.date(v)?),
            FieldType::Duration => FieldValue::Duration(self.duration(v)?),
            FieldType::Status | FieldType::Priority | FieldType::List => FieldValue::Option(self.option(v)?),
            FieldType::Multilist => FieldValue::Options(self.multi(v, |x| self.option(x))?),
            FieldType::User => FieldValue::User(self.user(v)?),
            FieldType::Multiuser => FieldValue::Users(self.multi(v, |x| self.user(x))?),
            FieldType::Project => FieldValue::Project(self.project(v)?),
            FieldType::Multiproject => FieldValue::Projects(self.multi(v, |x| self.project(x))?),
            FieldType::Milestone => self.milestone(v)?,
        })
    }

    fn field(&self) -> String {
        self.field.to_owned()
    }

    fn wrong_type(&self, expected: &'static str, v: &Value) -> FieldValueError {
        FieldValueError::WrongType {
            field: self.field(),
            expected,
            got: kind_of(v),
        }
    }

    fn text(&self, ft: FieldType, v: &Value) -> Result<String> {
        let s = v.as_str().ok_or_else(|| self.wrong_type("a string", v))?;
        if self.checks.is_some() {
            let (len, max, unit) = if ft == FieldType::Text {
                (s.chars().count(), TEXT_MAX_CHARS, "characters")
            } else {
                (s.len(), TEXTAREA_MAX_BYTES, "bytes")
            };
            if len > max {
                return Err(FieldValueError::TooLong {
                    field: self.field(),
                    len,
                    max,
                    unit,
                });
            }
            let (bad, what): (fn(char) -> bool, _) = if ft == FieldType::Text {
                (char::is_control, "line breaks or other control characters")
            } else {
                (
                    |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t'),
                    "control characters other than tabs and line breaks",
                )
            };
            if s.chars().any(bad) {
                return Err(FieldValueError::ControlCharacter {
                    field: self.field(),
                    what,
                });
            }
        }
        Ok(s.to_owned())
    }

    fn number(&self, v: &Value) -> Result<Finite> {
        let x = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => parse_decimal(s.trim()),
            _ => return Err(self.wrong_type("a number", v)),
        };
        x.and_then(Finite::new)
            .ok_or_else(|| FieldValueError::InvalidNumber {
                field: self.field(),
                input: excerpt(v),
            })
    }

    fn date(&self, v: &Value) -> Result<time::Date> {
        let s = v
            .as_str()
            .ok_or_else(|| self.wrong_type("a date string (YYYY-MM-DD)", v))?;
        parse_date(s.trim()).ok_or_else(|| FieldValueError::InvalidDate {
            field: self.field(),
            input: excerpt(v),
        })
    }

    fn duration(&self, v: &Value) -> Result<DurationMs> {
        let ms = match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                // Integral floats such as 3600000.0 are fine; fractions of a ms are not.
                let x = n.as_f64()?;
                (x.fract() == 0.0 && (0.0..9.0e18).contains(&x)).then_some(x as i64)
            }),
            Value::String(s) => parse_duration(s),
            _ => return Err(self.wrong_type("a duration (milliseconds or \"1d 2h 30m\")", v)),
        };
        ms.and_then(DurationMs::new)
            .ok_or_else(|| FieldValueError::InvalidDuration {
                field: self.field(),
                input: excerpt(v),
            })
    }

    fn option(&self, v: &Value) -> Result<String> {
        let s = v
            .as_str()
            .ok_or_else(|| self.wrong_type("an option name (a string)", v))?;
        let Some(checks) = &self.checks else {
            return Ok(s.to_owned());
        };
        let options = checks.options;
        let wanted = s.trim();
        let exact = options.iter().find(|o| o.as_str() == wanted);
        let found = exact.or_else(|| {
            // A different letter case is accepted only when it picks exactly one option.
            let mut folded = options
                .iter()
                .filter(|o| o.to_lowercase() == wanted.to_lowercase());
            match (folded.next(), folded.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        });
        found.cloned().ok_or_else(|| FieldValueError::UnknownOption {
            field: self.field(),
            option: truncated(s),
            allowed: options.to_vec(),
        })
    }

    fn user(&self, v: &Value) -> Result<String> {
        // Bare account id (API), or a UserRef object (canonical JSON).
        let id = match v {
            Value::String(s) => s.as_str(),
            Value::Object(o) => o
                .get("account_id")
                .and_then(Value::as_str)
                .ok_or_else(|| self.wrong_type("a user (account id string)", v))?,
            _ => return Err(self.wrong_type("a user (account id string)", v)),
        };
        let well_formed = (1..=128).contains(&id.chars().count())
            && !id.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(FieldValueError::InvalidAccountId {
                field: self.field(),
                input: excerpt_str(id),
            });
        }
        if let Some(checks) = &self.checks {
            if !checks.lookup.user_exists(id) {
                return Err(FieldValueError::UnknownUser {
                    field: self.field(),
                    account_id: truncated(id),
                });
            }
        }
        Ok(id.to_owned())
    }

    fn project(&self, v: &Value) -> Result<i64> {
        // Id (API), id string (Projectrak), or a ProjectRef object (canonical JSON).
        let id = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => {
                let s = s.trim();
                if s.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse().ok()
                } else {
                    None
                }
            }
            Value::Object(o) => o.get("id").and_then(Value::as_i64),
            _ => return Err(self.wrong_type("a project id", v)),
        };
        let id = id
            .filter(|&id| id > 0)
            .ok_or_else(|| FieldValueError::InvalidProjectId {
                field: self.field(),
                input: excerpt(v),
            })?;
        if let Some(checks) = &self.checks {
            if !checks.lookup.project_exists(id) {
                return Err(FieldValueError::UnknownProject {
                    field: self.field(),
                    id,
                });
            }
        }
        Ok(id)
    }

    /// An array of items, each decoded by `item`; duplicates dropped, first one kept.
    fn multi<T: PartialEq>(&self, v: &Value, item: impl Fn(&Value) -> Result<T>) -> Result<Vec<T>> {
        let items = v.as_array().ok_or_else(|| self.wrong_type("an array", v))?;
        if items.len() > MAX_ITEMS {
            return Err(FieldValueError::TooManyItems {
                field: self.field(),
                len: items.len(),
                max: MAX_ITEMS,
            });
        }
        let mut out: Vec<T> = Vec::with_capacity(items.len());
        for x in items {
            let x = item(x)?;
            if !out.contains(&x) {
                out.push(x);
            }
        }
        Ok(out)
    }

    fn milestone(&self, v: &Value) -> Result<FieldValue> {
        let o = v
            .as_object()
            .ok_or_else(|| self.wrong_type("a milestone object", v))?;
        let bad = |problem| FieldValueError::InvalidMilestone {
            field: self.field(),
            problem,
        };
        if let Some(k) = o.keys().find(|k| !MILESTONE_KEYS.contains(&k.as_str())) {
            return Err(bad(MilestoneProblem::UnknownKey(truncated(k))));
        }
        let get = |key: &'static str| o.get(key).ok_or_else(|| bad(MilestoneProblem::MissingKey(key)));
        let id = get("id")?
            .as_i64()
            .filter(|&id| id > 0)
            .ok_or_else(|| bad(MilestoneProblem::BadId))?;
        let date = get("date")?
            .as_str()
            .and_then(|s| parse_date(s.trim()))
            .ok_or_else(|| bad(MilestoneProblem::BadDate))?;
        let name = get("name")?
            .as_str()
            .filter(|s| (1..=TEXT_MAX_CHARS).contains(&s.chars().count()) && !s.chars().any(char::is_control))
            .ok_or_else(|| bad(MilestoneProblem::BadName))?
            .to_owned();
        let linked_issues_id = linked_issues(o).ok_or_else(|| bad(MilestoneProblem::BadLinkedIssues))?;
        Ok(FieldValue::Milestone {
            id,
            date,
            name,
            linked_issues_id,
        })
    }
}

/// Keys a milestone object may have: the canonical snake_case and Projectrak's camelCase.
const MILESTONE_KEYS: [&str; 5] = ["id", "date", "name", "linked_issues_id", "linkedIssuesId"];

/// The linked issue ids (either spelling, not both; absent means none).
fn linked_issues(o: &Map<String, Value>) -> Option<Vec<i64>> {
    let list = match (o.get("linked_issues_id"), o.get("linkedIssuesId")) {
        (Some(_), Some(_)) => return None,
        (Some(l), None) | (None, Some(l)) => l,
        (None, None) => return Some(Vec::new()),
    };
    let items = list.as_array().filter(|a| a.len() <= MAX_ITEMS)?;
    let mut out = Vec::with_capacity(items.len());
    for x in items {
        let id = x.as_i64().filter(|&id| id > 0)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Some(out)
}

/// Parses a plain decimal: optional sign, digits, optional `.digits`, optional exponent.
/// Stricter than `f64::from_str`, which would also take `inf`, `NaN`, `.5` and `5.`; a
/// comma anywhere (a thousands separator or a decimal comma) is refused, not guessed at.
fn parse_decimal(s: &str) -> Option<f64> {
    // Room for any f64 written positionally (the longest, a signed subnormal, is 327
    // characters), so every `format_number` output reads back.
    const MAX_LEN: usize = 400;
    if s.len() > MAX_LEN {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if !digits(&mut i) {
        return None;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}
