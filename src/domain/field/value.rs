//! The canonical in-memory value of a field, and the small newtypes that keep it well formed.
//! Everything here is already valid: the parsers in `input` and `canonical` are the only
//! doors in, apart from the checked constructors [`Finite::new`] and [`DurationMs::new`].

use time::Date;

use super::FieldType;

/// A finite `f64` (no NaN, no infinities), with `-0.0` folded into `0.0` so that equal
/// numbers always encode to equal JSON and equal Projectrak strings.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Finite(f64);

// NaN is excluded by construction, so equality is reflexive.
impl Eq for Finite {}

impl Finite {
    /// `None` for NaN and infinities.
    pub fn new(x: f64) -> Option<Self> {
        if !x.is_finite() {
            return None;
        }
        Some(Self(if x == 0.0 { 0.0 } else { x }))
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// A non-negative duration in milliseconds: what Projectrak's "Estimated time" holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationMs(i64);

impl DurationMs {
    /// `None` for negative durations.
    pub fn new(ms: i64) -> Option<Self> {
        (ms >= 0).then_some(Self(ms))
    }

    /// Milliseconds.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A field's value, independent of any encoding. Multi values keep the caller's order and
/// hold no duplicates; an unset multi value is the empty list, never [`FieldValue::Null`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// An unset single value (any non-multi type).
    Null,
    /// `text` / `textarea`; never empty (empty input is [`FieldValue::Null`]).
    Text(String),
    /// `number`, and the computed value of a `formula`.
    Number(Finite),
    /// `date`.
    Date(Date),
    /// `duration`.
    Duration(DurationMs),
    /// `status`, `priority`, `list`: the option's name.
    Option(String),
    /// `multilist`: option names.
    Options(Vec<String>),
    /// `user`: the account id.
    User(String),
    /// `multiuser`: account ids.
    Users(Vec<String>),
    /// `project`: the project id.
    Project(i64),
    /// `multiproject`: project ids.
    Projects(Vec<i64>),
    /// `milestone`.
    Milestone {
        /// Milestone id (positive).
        id: i64,
        /// Due date.
        date: Date,
        /// Display name, non-empty.
        name: String,
        /// Ids of the Jira issues linked to it (positive, no duplicates).
        linked_issues_id: Vec<i64>,
    },
}

impl FieldValue {
    /// The unset value of a type: `[]`-like for multi types, [`FieldValue::Null`] otherwise.
    pub fn empty(field_type: FieldType) -> Self {
        match field_type {
            FieldType::Multilist => Self::Options(Vec::new()),
            FieldType::Multiuser => Self::Users(Vec::new()),
            FieldType::Multiproject => Self::Projects(Vec::new()),
            _ => Self::Null,
        }
    }

    /// Whether the value is unset (null or an empty list).
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Null => true,
            Self::Options(v) | Self::Users(v) => v.is_empty(),
            Self::Projects(v) => v.is_empty(),
            _ => false,
        }
    }

    /// Whether a field of `field_type` may hold this value, so code that builds values by
    /// hand (or reads them from storage) can check it put them in the right field.
    pub fn fits(&self, field_type: FieldType) -> bool {
        use FieldType as T;
        match self {
            Self::Null => !field_type.is_multi(),
            Self::Text(_) => matches!(field_type, T::Text | T::Textarea),
            Self::Number(_) => matches!(field_type, T::Number | T::Formula),
            Self::Date(_) => field_type == T::Date,
            Self::Duration(_) => field_type == T::Duration,
            Self::Option(_) => matches!(field_type, T::Status | T::Priority | T::List),
            Self::Options(_) => field_type == T::Multilist,
            Self::User(_) => field_type == T::User,
            Self::Users(_) => field_type == T::Multiuser,
            Self::Project(_) => field_type == T::Project,
            Self::Projects(_) => field_type == T::Multiproject,
            Self::Milestone { .. } => field_type == T::Milestone,
        }
    }
}

/// Formats a date as `YYYY-MM-DD` (the only date spelling any encoding uses). Years are
/// limited to 1..=9999 by the parsers, so four zero-padded digits always suffice.
pub(super) fn format_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Parses exactly `YYYY-MM-DD` with a year in 1..=9999 and a day that exists in that month.
/// Hand-written rather than a `time` format description so that signs, short years and
/// trailing text are all rejected.
pub(super) fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = u8::try_from(num(5..7)?).ok()?;
    let day = u8::try_from(num(8..10)?).ok()?;
    if year < 1 {
        return None;
    }
    let month = time::Month::try_from(month).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}
