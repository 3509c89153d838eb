//! The Projectrak webhook encoding of a value (spec/formats.md §1.3, decisions in §5):
//! every value is a string, `null`, or an array of strings; the one exception is the
//! milestone object `{id, date, name, linkedIssuesId}`.

use serde_json::{json, Value};

use super::value::{format_date, FieldValue};

/// Encodes a value the way Projectrak sends it in `value.current` / `value.previous`:
/// text and option names as is, numbers as canonical decimal strings ([`format_number`]),
/// dates `YYYY-MM-DD`, durations as a string of milliseconds (`"28800000"`), users as
/// account ids, projects as id strings, multi values as arrays (`[]` when empty), unset
/// single values as `null`, milestones as `{id, date, name, linkedIssuesId}`.
pub fn projectrak_value(value: &FieldValue) -> Value {
    match value {
        FieldValue::Null => Value::Null,
        FieldValue::Text(s) | FieldValue::Option(s) | FieldValue::User(s) => Value::String(s.clone()),
        FieldValue::Number(x) => Value::String(format_number(x.get())),
        FieldValue::Date(d) => Value::String(format_date(*d)),
        FieldValue::Duration(ms) => Value::String(ms.get().to_string()),
        FieldValue::Options(list) | FieldValue::Users(list) => {
            list.iter().cloned().map(Value::String).collect()
        }
        FieldValue::Project(id) => Value::String(id.to_string()),
        FieldValue::Projects(ids) => ids.iter().map(|id| Value::String(id.to_string())).collect(),
        FieldValue::Milestone {
            id,
            date,
            name,
            linked_issues_id,
        } => json!({
            "id": id,
            "date": format_date(*date),
            "name": name,
            "linkedIssuesId": linked_issues_id,
        }),
    }
}

/// The canonical decimal spelling of a number: the shortest digits that read back as the
/// same `f64`, a `.` as decimal point, no thousands separators, no trailing zeros and never
/// exponent notation (`23000` → `"23000"`, `23.5` → `"23.5"`, `1e21` → 22 digits). This is
/// what removes the `"23.000"` ambiguity of spec/formats.md §1.5.4. `-0` is written `"0"`.
pub fn format_number(x: f64) -> String {
    // Rust's `Display` for f64 is exactly this: shortest round-trip, positional notation.
    if x == 0.0 {
        "0".to_owned()
    } else {
        x.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(format_number(23000.0), "23000");
        assert_eq!(format_number(23.5), "23.5");
        assert_eq!(format_number(-0.0), "0");
        assert_eq!(format_number(-4.75), "-4.75");
        assert_eq!(format_number(0.1), "0.1");
        assert_eq!(format_number(1e21), "1000000000000000000000");
        assert_eq!(format_number(1.5e-7), "0.00000015");
    }
}
