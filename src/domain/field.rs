//! Typed project fields, as Projectrak models them: what a field is ([`FieldDef`]), which
//! values each type may hold ([`FieldValue`]), and the three encodings Herald needs.
//!
//! - **API input** → [`parse_input`]: lenient about spelling (numeric strings, `"8h"`
//!   durations, case-insensitive option names) but strict about meaning; every error says
//!   what was expected and is safe to show to the caller.
//! - **Canonical JSON** ([`to_canonical_json`] / [`from_canonical_json`]): the `value` of a
//!   `fields[]` entry in a project snapshot (schema in [`crate::domain::event`]). Stored in
//!   the event log and compared by the differ, so it is deterministic: one value, one JSON.
//! - **Projectrak JSON** ([`projectrak_value`]): the all-strings encoding of the Projectrak
//!   outgoing webhook (spec/formats.md §1.3 and §5).
//!
//! A value is parsed once, at the edge; after that the type guarantees it is well formed
//! (finite numbers, non-negative durations, real dates, de-duplicated multi values).

mod canonical;
mod def;
mod duration;
mod error;
mod input;
mod projectrak;
mod value;

#[cfg(test)]
mod input_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use canonical::{from_canonical_json, to_canonical_json, RefResolver};
pub use def::{system_fields, FieldDef, FieldDefError, FIRST_CUSTOM_FIELD_ID};
pub use error::{FieldValueError, MilestoneProblem};
pub use input::{parse_input, RefLookup};
pub use projectrak::{format_number, projectrak_value};
pub use value::{DurationMs, FieldValue, Finite};

/// Most items a multi value (multilist, multiuser, multiproject, milestone issues) may
/// hold: bounds request size and payload size alike.
pub const MAX_ITEMS: usize = 100;
/// Most characters in a single-line `text` value (Projectrak's limit for short text).
pub const TEXT_MAX_CHARS: usize = 255;
/// Most bytes (UTF-8) in a `textarea` value: 32 KiB.
pub const TEXTAREA_MAX_BYTES: usize = 32 * 1024;

/// The type of a project field. The API and the Projectrak `type` string use the same
/// lower-case spelling (spec/formats.md §5), so one enum serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Single-line text, at most [`TEXT_MAX_CHARS`] characters.
    Text,
    /// Multi-line text (markup kept as is), at most [`TEXTAREA_MAX_BYTES`] bytes.
    Textarea,
    /// A finite decimal number.
    Number,
    /// A calendar date without time or zone.
    Date,
    /// A non-negative length of time in milliseconds.
    Duration,
    /// One option from the field's options (e.g. "High").
    Priority,
    /// One option from the field's options (e.g. "On track").
    Status,
    /// One option from the field's options.
    List,
    /// Any number of the field's options.
    Multilist,
    /// One user, by account id.
    User,
    /// Any number of users.
    Multiuser,
    /// One project, by numeric id.
    Project,
    /// Any number of projects.
    Multiproject,
    /// One milestone object `{id, date, name, linked issues}`.
    Milestone,
    /// A number computed from other fields; never set directly.
    Formula,
}

impl FieldType {
    /// Every type, in the order the spec lists them.
    pub const ALL: [FieldType; 15] = [
        Self::Text,
        Self::Textarea,
        Self::Number,
        Self::Date,
        Self::Duration,
        Self::Priority,
        Self::Status,
        Self::List,
        Self::Multilist,
        Self::User,
        Self::Multiuser,
        Self::Project,
        Self::Multiproject,
        Self::Milestone,
        Self::Formula,
    ];

    /// Whether a value of this type names users or projects, which must be looked up
    /// before the value can be validated.
    pub fn refers(self) -> bool {
        matches!(
            self,
            Self::User | Self::Multiuser | Self::Project | Self::Multiproject
        )
    }

    /// The spelling used by the API, snapshots and the Projectrak `type` key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Textarea => "textarea",
            Self::Number => "number",
            Self::Date => "date",
            Self::Duration => "duration",
            Self::Priority => "priority",
            Self::Status => "status",
            Self::List => "list",
            Self::Multilist => "multilist",
            Self::User => "user",
            Self::Multiuser => "multiuser",
            Self::Project => "project",
            Self::Multiproject => "multiproject",
            Self::Milestone => "milestone",
            Self::Formula => "formula",
        }
    }

    /// Parses the spelling of [`FieldType::as_str`] (exact, lower case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether values are lists (`[]` when unset) rather than single values (`null`).
    pub fn is_multi(self) -> bool {
        matches!(self, Self::Multilist | Self::Multiuser | Self::Multiproject)
    }

    /// Whether the field draws its values from [`FieldDef::options`].
    pub fn has_options(self) -> bool {
        matches!(self, Self::Priority | Self::Status | Self::List | Self::Multilist)
    }

    /// Whether callers may set the value; formula values are computed.
    pub fn is_settable(self) -> bool {
        self != Self::Formula
    }

    /// Whether a formula may refer to fields of this type (it computes over numbers).
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Number | Self::Formula)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
