//! Field definitions: the tenant-wide description of a project field, the ten system fields
//! every tenant starts with, and the checked constructor for custom fields.

use serde::{Deserialize, Serialize};

use super::{FieldType, MAX_ITEMS, TEXT_MAX_CHARS};
use crate::domain::formula::Formula;

/// First id handed to a custom field. Ids below it are reserved for system fields (1..=10
/// today), leaving room for Projectrak to grow its predefined set without renumbering.
pub const FIRST_CUSTOM_FIELD_ID: i64 = 10_001;

/// A project field as the tenant defines it. Fields are public because stored definitions
/// are trusted; new custom fields from the API go through [`FieldDef::custom`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Stable id (Projectrak `fields[].id`); system fields 1..=10, custom from
    /// [`FIRST_CUSTOM_FIELD_ID`].
    pub id: i64,
    /// Display name (Projectrak `fields[].name`); unique within the tenant.
    pub name: String,
    /// The value type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Option names, in display order, for types where [`FieldType::has_options`].
    #[serde(default)]
    pub options: Vec<String>,
    /// The computation, for `formula` fields only.
    #[serde(default)]
    pub formula: Option<Formula>,
    /// Predefined by Projectrak: cannot be renamed or deleted.
    #[serde(default)]
    pub system: bool,
}

/// Why a custom field definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldDefError {
    /// The id is in the system range.
    #[error("custom field ids start at {FIRST_CUSTOM_FIELD_ID}; {id} is reserved for system fields")]
    ReservedId {
        /// The id asked for.
        id: i64,
    },
    /// Empty, too long, or containing characters that would break formulas.
    #[error("a field name must be 1 to 255 characters, without control characters or the braces {{ }} that formulas use")]
    InvalidName,
    /// Only digits: `{123}` in a formula means the field with id 123.
    #[error("field name {name:?} is only digits, which formulas would read as a field id")]
    NumericName {
        /// The name asked for.
        name: String,
    },
    /// An option type without options, or with too many.
    #[error("a {field_type} field needs 1 to 100 options, but got {count}")]
    OptionCount {
        /// The field's type.
        field_type: FieldType,
        /// Options given.
        count: usize,
    },
    /// An empty, overlong or control-character option.
    #[error("option {option:?} must be 1 to 255 characters without control characters")]
    InvalidOption {
        /// The offending option.
        option: String,
    },
    /// Two options that differ at most in letter case (input matching ignores case).
    #[error("option {option:?} is listed twice (option names are compared ignoring letter case)")]
    DuplicateOption {
        /// The repeated option.
        option: String,
    },
    /// Options on a type that has none.
    #[error("{field_type} fields have no options")]
    UnexpectedOptions {
        /// The field's type.
        field_type: FieldType,
    },
    /// A formula field without its formula.
    #[error("a formula field needs a formula")]
    MissingFormula,
    /// A formula on a field that is not a formula field.
    #[error("only formula fields have a formula; this is a {field_type} field")]
    UnexpectedFormula {
        /// The field's type.
        field_type: FieldType,
    },
}

impl FieldDef {
    /// A new custom field, checked: a non-system id, a usable name (trimmed), options exactly
    /// when the type has them (trimmed, unique ignoring case, at most 100), and a formula
    /// exactly when the type is `formula`. Whether the formula's references exist is checked
    /// against all the tenant's fields by [`crate::domain::formula::evaluation_order`].
    pub fn custom(
        id: i64,
        name: &str,
        field_type: FieldType,
        options: Vec<String>,
        formula: Option<Formula>,
    ) -> Result<Self, FieldDefError> {
        if id < FIRST_CUSTOM_FIELD_ID {
            return Err(FieldDefError::ReservedId { id });
        }
        let name = name.trim();
        let name_ok = (1..=TEXT_MAX_CHARS).contains(&name.chars().count())
            && !name.chars().any(|c| c.is_control() || c == '{' || c == '}');
        if !name_ok {
            return Err(FieldDefError::InvalidName);
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldDefError::NumericName {
                name: name.to_owned(),
            });
        }
        let options = check_options(field_type, options)?;
        match (field_type == FieldType::Formula, &formula) {
            (true, None) => return Err(FieldDefError::MissingFormula),
            (false, Some(_)) => return Err(FieldDefError::UnexpectedFormula { field_type }),
            _ => {}
        }
        Ok(Self {
            id,
            name: name.to_owned(),
            field_type,
            options,
            formula,
            system: false,
        })
    }

    /// Whether `id` belongs to the system range.
    pub fn is_system_id(id: i64) -> bool {
        id < FIRST_CUSTOM_FIELD_ID
    }
}

fn check_options(field_type: FieldType, options: Vec<String>) -> Result<Vec<String>, FieldDefError> {
    if !field_type.has_options() {
        return if options.is_empty() {
            Ok(options)
        } else {
            Err(FieldDefError::UnexpectedOptions { field_type })
        };
    }
    if options.is_empty() || options.len() > MAX_ITEMS {
        return Err(FieldDefError::OptionCount {
            field_type,
            count: options.len(),
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(options.len());
    for option in options {
        let o = option.trim();
        if !(1..=TEXT_MAX_CHARS).contains(&o.chars().count()) || o.chars().any(char::is_control) {
            return Err(FieldDefError::InvalidOption { option });
        }
        if out.iter().any(|seen| seen.to_lowercase() == o.to_lowercase()) {
            return Err(FieldDefError::DuplicateOption { option: o.to_owned() });
        }
        out.push(o.to_owned());
    }
    Ok(out)
}

/// The predefined fields every tenant gets (Projectrak Cloud's "Manage project fields",
/// spec/formats.md §1.1), with ids 1..=10 that never change. Projectrak's read-only
/// Updated / Created Date / Creator are entity metadata in Herald (`created_at`,
/// `updated_at`, the event actor), not fields.
pub fn system_fields() -> Vec<FieldDef> {
    fn sys(id: i64, name: &str, field_type: FieldType, options: &[&str]) -> FieldDef {
        FieldDef {
            id,
            name: name.to_owned(),
            field_type,
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            formula: None,
            system: true,
        }
    }
    vec![
        sys(
            1,
            "Status",
            FieldType::Status,
            &["On track", "At risk", "Off track", "Done"],
        ),
        sys(
            2,
            "Priority",
            FieldType::Priority,
            &["Highest", "High", "Medium", "Low", "Lowest"],
        ),
        sys(3, "Start date", FieldType::Date, &[]),
        sys(4, "End date", FieldType::Date, &[]),
        sys(5, "Estimated time", FieldType::Duration, &[]),
        sys(6, "Related projects", FieldType::Multiproject, &[]),
        sys(7, "Stakeholders", FieldType::Multiuser, &[]),
        sys(8, "What are we doing?", FieldType::Textarea, &[]),
        sys(9, "Why are we doing it?", FieldType::Textarea, &[]),
        sys(10, "What will success look like?", FieldType::Textarea, &[]),
    ]
}
