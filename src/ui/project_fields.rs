//! One form input per Projectrak field type, and the way back from a submitted form to the
//! API's `fields` input. Only fields whose submitted value differs from what the form
//! showed are sent, so saving the form never invents changes (and never fires webhooks for
//! fields nobody touched).

use maud::{html, Markup};
use serde_json::{json, Value};

use super::form::FormData;
use crate::domain::field::{FieldDef, FieldType};
use crate::store::{EntityRow, User};

/// A field's value as the form shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// One text value ("" = unset).
    One(String),
    /// Several values (multi types), in stored order.
    Many(Vec<String>),
    /// A milestone's editable parts.
    Milestone {
        /// Name ("" = unset).
        name: String,
        /// `YYYY-MM-DD`.
        date: String,
    },
}

/// What the inputs offer: the tenant's users and projects.
pub struct Choices<'a> {
    /// Users (for user / multiuser fields).
    pub users: &'a [User],
    /// Projects (for project / multiproject fields).
    pub projects: &'a [EntityRow],
}

/// `90_000_000` → `1d 1h`; the inverse of the API's duration parser for whole units.
pub fn fmt_duration(ms: i64) -> String {
    if ms == 0 {
        return "0m".into();
    }
    let units = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = ms;
    let mut parts = Vec::new();
    for (u, size) in units {
        if rest >= size {
            parts.push(format!("{}{u}", rest / size));
            rest %= size;
        }
    }
    parts.join(" ")
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What the form shows for a stored canonical value.
pub fn shown(def: &FieldDef, v: &Value) -> Shown {
    let list = |f: &dyn Fn(&Value) -> String| match v {
        Value::Array(a) => Shown::Many(a.iter().map(f).collect()),
        _ => Shown::Many(Vec::new()),
    };
    match def.field_type {
        FieldType::Multilist => list(&text_of),
        FieldType::Multiuser => list(&|u| text_of(&u["account_id"])),
        FieldType::Multiproject => list(&|p| text_of(&p["id"])),
        FieldType::User => Shown::One(text_of(&v["account_id"])),
        FieldType::Project => Shown::One(text_of(&v["id"])),
        FieldType::Duration => Shown::One(v.as_i64().map(fmt_duration).unwrap_or_default()),
        FieldType::Milestone => Shown::Milestone {
            name: text_of(&v["name"]),
            date: text_of(&v["date"]),
        },
        _ => Shown::One(text_of(v)),
    }
}

fn key(def: &FieldDef) -> String {
    format!("f_{}", def.id)
}

/// What the person submitted for `def`.
pub fn submitted(def: &FieldDef, form: &FormData) -> Shown {
    let k = key(def);
    match def.field_type {
        FieldType::Multilist | FieldType::Multiuser | FieldType::Multiproject => {
            Shown::Many(form.all(&k).map(str::to_owned).collect())
        }
        FieldType::Milestone => Shown::Milestone {
            name: form.text(&format!("{k}_name")),
            date: form.text(&format!("{k}_date")),
        },
        FieldType::Textarea => Shown::One(form.get(&k).unwrap_or_default().replace("\r\n", "\n")),
        _ => Shown::One(form.text(&k)),
    }
}

/// The API input value for a changed field; `stored` keeps a milestone's id and issues.
pub fn to_input(def: &FieldDef, s: &Shown, stored: &Value) -> Value {
    match s {
        Shown::One(t) if t.trim().is_empty() => Value::Null,
        Shown::One(t) if def.field_type == FieldType::Project => {
            t.trim().parse::<i64>().map_or_else(|_| json!(t), Value::from)
        }
        Shown::One(t) => json!(t),
        Shown::Many(v) if def.field_type == FieldType::Multiproject => v
            .iter()
            .map(|p| p.parse::<i64>().map_or_else(|_| json!(p), Value::from))
            .collect(),
        Shown::Many(v) => json!(v),
        Shown::Milestone { name, date } if name.is_empty() && date.is_empty() => Value::Null,
        Shown::Milestone { name, date } => json!({
            "id": stored["id"].as_i64().unwrap_or(1),
            "date": date,
            "name": name,
            "linked_issues_id": stored.get("linked_issues_id").cloned().unwrap_or_else(|| json!([])),
        }),
    }
}

fn options_for(def: &FieldDef, c: &Choices<'_>) -> Vec<(String, String)> {
    match def.field_type {
        FieldType::User | FieldType::Multiuser => c
            .users
            .iter()
            .map(|u| (u.account_id.clone(), format!("{} ({})", u.name, u.account_id)))
            .collect(),
        FieldType::Project | FieldType::Multiproject => c
            .projects
            .iter()
            .map(|p| {
                let key = p.data.get("key").map(text_of).unwrap_or_default();
                (p.id.to_string(), format!("{key} — {}", p.name()))
            })
            .collect(),
        _ => def.options.iter().map(|o| (o.clone(), o.clone())).collect(),
    }
}

/// The input(s) for one field, labelled, with its error (if any) tied to it.
pub fn input(def: &FieldDef, s: &Shown, c: &Choices<'_>, err: Option<&str>) -> Markup {
    let id = format!("f-{}", def.id);
    let name = key(def);
    let err_id = format!("{id}-error");
    let described = err.map(|_| err_id.clone());
    let invalid = err.map(|_| "true");
    let opts = options_for(def, c);
    let kind = def.field_type.as_str();
    let single = match s {
        Shown::One(v) => v.clone(),
        _ => String::new(),
    };
    let body = match (def.field_type, s) {
        (FieldType::Formula, _) => html! {
            label for=(id) { (def.name) " " span.muted.small { "(formula, computed)" } }
            output #(id) { @if single.is_empty() { "—" } @else { (single) } }
        },
        (FieldType::Milestone, Shown::Milestone { name: n, date }) => html! {
            fieldset.milestone {
                legend { (def.name) " " span.muted.small { "(milestone)" } }
                label for={ (id) "-name" } { "Name" }
                input id={ (id) "-name" } name={ (name) "_name" } value=(n) aria-invalid=[invalid] aria-describedby=[described.clone()];
                label for={ (id) "-date" } { "Date" }
                input id={ (id) "-date" } type="date" name={ (name) "_date" } value=(date) aria-invalid=[invalid];
            }
        },
        (FieldType::Multilist | FieldType::Multiuser | FieldType::Multiproject, Shown::Many(vals)) => html! {
            fieldset.multi aria-describedby=[described.clone()] {
                legend { (def.name) " " span.muted.small { "(" (kind) ")" } }
                @if opts.is_empty() { p.muted.small { "Nothing to choose from yet." } }
                div.checks {
                    @for (i, (v, label)) in opts.iter().enumerate() {
                        div.check {
                            input id={ (id) "-" (i) } type="checkbox" name=(name) value=(v) checked[vals.contains(v)];
                            label for={ (id) "-" (i) } { (label) }
                        }
                    }
                }
            }
        },
        (
            FieldType::Priority | FieldType::Status | FieldType::List | FieldType::User | FieldType::Project,
            _,
        ) => html! {
            label for=(id) { (def.name) " " span.muted.small { "(" (kind) ")" } }
            select id=(id) name=(name) aria-invalid=[invalid] aria-describedby=[described.clone()] {
                option value="" selected[single.is_empty()] { "— not set —" }
                @if !single.is_empty() && !opts.iter().any(|(v, _)| *v == single) {
                    option value=(single) selected { (single) }
                }
                @for (v, label) in &opts { option value=(v) selected[*v == single] { (label) } }
            }
        },
        (FieldType::Textarea, _) => html! {
            label for=(id) { (def.name) }
            textarea id=(id) name=(name) rows="3" aria-invalid=[invalid] aria-describedby=[described.clone()] { (single) }
        },
        _ => {
            let (ty, mode, help) = match def.field_type {
                FieldType::Date => ("date", None, None),
                FieldType::Number => ("text", Some("decimal"), Some("A number, e.g. 23000 or 12.5")),
                FieldType::Duration => ("text", None, Some("e.g. 8h, 90m or 1d 2h 30m")),
                _ => ("text", None, None),
            };
            html! {
                label for=(id) { (def.name) " " span.muted.small { "(" (kind) ")" } }
                input id=(id) type=(ty) name=(name) value=(single) inputmode=[mode] aria-invalid=[invalid]
                    aria-describedby=[described.clone()] placeholder=[help];
            }
        }
    };
    html! {
        div.field {
            // Marks the field as part of this form, so a missing checkbox means "none
            // ticked" and a field absent from a partial form means "leave it alone".
            @if def.field_type.is_settable() { input type="hidden" name={ "fp_" (def.id) } value="1"; }
            (body)
            @if let Some(m) = err { p.error id=(err_id) { (m) } }
        }
    }
}

/// Whether the submitted form contains `def` at all (see the `fp_` marker in [`input`]).
pub fn present(def: &FieldDef, form: &FormData) -> bool {
    form.checked(&format!("fp_{}", def.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back_as_typed() {
        assert_eq!(fmt_duration(0), "0m");
        assert_eq!(fmt_duration(8 * 3_600_000), "8h");
        assert_eq!(
            fmt_duration(86_400_000 + 2 * 3_600_000 + 30 * 60_000),
            "1d 2h 30m"
        );
        assert_eq!(fmt_duration(1_500), "1s 500ms");
    }
}
