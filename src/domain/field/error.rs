//! Why a field value was refused. Messages are written for the person who sent the value:
//! they name the field, say what was expected, and echo at most a short excerpt of the input
//! (never secrets: field values are project data the caller just sent).

use std::fmt;

use serde_json::Value;

/// A value that does not fit its field. Every variant carries the field's display name
/// (see [`FieldValueError::field`]) so the API can point at the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldValueError {
    /// Formula values are computed from other fields.
    #[error("{field} is a formula field: its value is computed from other fields and cannot be set")]
    NotSettable {
        /// Field name.
        field: String,
    },
    /// The JSON kind is wrong (e.g. a number for a text field).
    #[error("{field} expects {expected}, but got {got}")]
    WrongType {
        /// Field name.
        field: String,
        /// What the field accepts, e.g. "a string".
        expected: &'static str,
        /// What was sent, e.g. "a number".
        got: &'static str,
    },
    /// Text beyond the type's limit.
    #[error("{field} is too long: {len} {unit}, at most {max} allowed")]
    TooLong {
        /// Field name.
        field: String,
        /// Length sent.
        len: usize,
        /// Limit.
        max: usize,
        /// "characters" or "bytes".
        unit: &'static str,
    },
    /// Control characters (or line breaks in single-line text).
    #[error("{field} must not contain {what}")]
    ControlCharacter {
        /// Field name.
        field: String,
        /// What is forbidden for this type.
        what: &'static str,
    },
    /// Not a decimal number.
    #[error("{field} expects a number such as 23, -4.75 or 1.5e3 (a JSON number or a decimal string without thousands separators), but got {input}")]
    InvalidNumber {
        /// Field name.
        field: String,
        /// Excerpt of the input.
        input: String,
    },
    /// Not a real `YYYY-MM-DD` date.
    #[error("{field} expects a calendar date written YYYY-MM-DD (such as 2025-02-22), but got {input}")]
    InvalidDate {
        /// Field name.
        field: String,
        /// Excerpt of the input.
        input: String,
    },
    /// Not a duration.
    #[error("{field} expects a duration: a non-negative whole number of milliseconds, or a string such as \"8h\", \"90m\" or \"1d 2h 30m\" (units w, d, h, m, s, ms; 1d = 24h, 1w = 7d), but got {input}")]
    InvalidDuration {
        /// Field name.
        field: String,
        /// Excerpt of the input.
        input: String,
    },
    /// An option name the field does not have.
    #[error("{field} has no option {option:?}; allowed: {}", OptionList(allowed))]
    UnknownOption {
        /// Field name.
        field: String,
        /// Excerpt of the option sent.
        option: String,
        /// The field's options.
        allowed: Vec<String>,
    },
    /// Not something that can be an account id.
    #[error("{field} expects a user account id (1 to 128 characters without spaces), but got {input}")]
    InvalidAccountId {
        /// Field name.
        field: String,
        /// Excerpt of the input.
        input: String,
    },
    /// A well-formed account id that names no user of this tenant.
    #[error("{field}: no user has account id {account_id:?}")]
    UnknownUser {
        /// Field name.
        field: String,
        /// Excerpt of the account id.
        account_id: String,
    },
    /// Not a positive integer project id.
    #[error(
        "{field} expects a project id (a positive integer, or one written as a string), but got {input}"
    )]
    InvalidProjectId {
        /// Field name.
        field: String,
        /// Excerpt of the input.
        input: String,
    },
    /// A well-formed project id that names no project of this tenant.
    #[error("{field}: there is no project with id {id}")]
    UnknownProject {
        /// Field name.
        field: String,
        /// The id sent.
        id: i64,
    },
    /// A multi value with too many items.
    #[error("{field} accepts at most {max} items, but got {len}")]
    TooManyItems {
        /// Field name.
        field: String,
        /// Items sent.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A malformed milestone object.
    #[error("{field} expects a milestone object {{\"id\", \"date\", \"name\", \"linked_issues_id\"}}, but {problem}")]
    InvalidMilestone {
        /// Field name.
        field: String,
        /// What is wrong with it.
        problem: MilestoneProblem,
    },
}

impl FieldValueError {
    /// The name of the field the error is about (for problem+json's offending field).
    pub fn field(&self) -> &str {
        match self {
            Self::NotSettable { field }
            | Self::WrongType { field, .. }
            | Self::TooLong { field, .. }
            | Self::ControlCharacter { field, .. }
            | Self::InvalidNumber { field, .. }
            | Self::InvalidDate { field, .. }
            | Self::InvalidDuration { field, .. }
            | Self::UnknownOption { field, .. }
            | Self::InvalidAccountId { field, .. }
            | Self::UnknownUser { field, .. }
            | Self::InvalidProjectId { field, .. }
            | Self::UnknownProject { field, .. }
            | Self::TooManyItems { field, .. }
            | Self::InvalidMilestone { field, .. } => field,
        }
    }
}

/// What is wrong with a milestone object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MilestoneProblem {
    /// A required key is absent.
    #[error("\"{0}\" is missing")]
    MissingKey(&'static str),
    /// A key that milestones do not have (likely a typo).
    #[error("it has an unknown key {0:?}")]
    UnknownKey(String),
    /// `id` is not a positive integer.
    #[error("\"id\" is not a positive integer")]
    BadId,
    /// `date` is not `YYYY-MM-DD`.
    #[error("\"date\" is not a calendar date written YYYY-MM-DD")]
    BadDate,
    /// `name` is empty, too long or not a string.
    #[error("\"name\" is not a string of 1 to 255 characters without control characters")]
    BadName,
    /// `linked_issues_id` is not a list of positive integers, or too long.
    #[error("\"linked_issues_id\" is not a list of at most 100 positive integer issue ids")]
    BadLinkedIssues,
}

/// Shows the allowed options, bounded so a field with many options still gives a short
/// message.
struct OptionList<'a>(&'a [String]);

impl fmt::Display for OptionList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 20;
        if self.0.is_empty() {
            return f.write_str("(the field has no options)");
        }
        for (i, o) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{o:?}")?;
        }
        if self.0.len() > SHOWN {
            write!(f, " and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// A bounded, quoted rendering of user input for error messages, so a 32 KiB value does
/// not come back in full inside an error.
pub(super) fn excerpt(value: &Value) -> String {
    const MAX: usize = 64;
    let text = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// [`excerpt`] for a string that is not (or no longer) a JSON value.
pub(super) fn excerpt_str(s: &str) -> String {
    excerpt(&Value::String(s.to_owned()))
}

/// The first characters of `s`, unquoted, for messages that quote it themselves.
pub(super) fn truncated(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// Describes a JSON value's kind for [`FieldValueError::WrongType`].
pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
