//! Entity attributes: one declarative table per entity kind says which attributes exist,
//! their type, and their default. Creating and updating any entity is then the same
//! pure operation — parse each submitted attribute against its type, resolve references
//! (users, projects, portfolios…) through [`Refs`], and merge onto the current state —
//! so every kind validates the same way and names the offending field the same way.
//!
//! Input keys may be snake_case (`start_date`) or PPM's PascalCase (`StartDate`): keys are
//! matched after lower-casing and removing `_`.

use serde_json::{json, Map, Value};
use time::macros::format_description;
use uuid::Uuid;

use super::event::{ProjectRef, UserRef};
use super::event_type::EntityKind;
use super::webhook::FieldError;

/// Resolves references found in input; preloaded by the caller so parsing stays pure.
pub trait Refs {
    /// The user with this account id in the tenant.
    fn user(&self, account_id: &str) -> Option<UserRef>;
    /// The project with this numeric id in the tenant.
    fn project(&self, id: i64) -> Option<ProjectRef>;
    /// A portfolio or program by id, as `{id, uuid, name}`.
    fn named(&self, kind: EntityKind, id: i64) -> Option<Value>;
}

/// The type of one attribute.
#[derive(Debug, Clone, Copy)]
pub enum AttrType {
    /// A string of at most `max` characters; `required` means non-empty and not null.
    Text {
        /// Longest accepted value, in characters.
        max: usize,
        /// Must be present and non-blank.
        required: bool,
    },
    /// A finite number (JSON number or numeric string).
    Number,
    /// A finite number or null.
    NumberOrNull,
    /// An integer within bounds.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// An integer within bounds, or null.
    IntOrNull {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// true / false.
    Bool,
    /// A calendar date `YYYY-MM-DD`, or null.
    Date,
    /// A point in time as epoch ms (input: ms, RFC 3339, or a date), or null.
    Millis,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// A user by account id, or null.
    User,
    /// Users by account id.
    Users,
    /// A project by numeric id, or null.
    Project,
    /// Portfolios or programs by numeric id.
    Named(EntityKind),
    /// A list of short strings.
    Tags,
    /// A PPM lookup `{Id, Name}` (`with_color`: `{Id, Name, Color}`), or null.
    Lookup {
        /// Whether a `color` is part of the value.
        with_color: bool,
    },
    /// Free-form attributes keyed by display label, passed through as given.
    Custom,
}

impl AttrType {
    /// Whether a value of this type names users or entities, which must be looked up
    /// before the value can be validated.
    pub fn refers(self) -> bool {
        matches!(self, Self::User | Self::Users | Self::Project | Self::Named(_))
    }
}

/// One attribute of an entity kind.
#[derive(Debug, Clone, Copy)]
pub struct AttrSpec {
    /// Snapshot key (snake_case).
    pub key: &'static str,
    /// Type.
    pub ty: AttrType,
    /// Whether API input may set it (computed attributes may not).
    pub input: bool,
}

const fn a(key: &'static str, ty: AttrType) -> AttrSpec {
    AttrSpec { key, ty, input: true }
}
const fn computed(key: &'static str, ty: AttrType) -> AttrSpec {
    AttrSpec {
        key,
        ty,
        input: false,
    }
}

const NAME: AttrType = AttrType::Text {
    max: 500,
    required: true,
};
const DESCRIPTION: AttrType = AttrType::Text {
    max: 100_000,
    required: false,
};
const ENUM_INT: AttrType = AttrType::Int { min: -1, max: 1_000 };
const PERCENT: AttrType = AttrType::Int { min: 0, max: 100 };

/// Tracker story types.
pub const STORY_TYPES: &[&str] = &["feature", "bug", "chore", "release"];
/// Tracker story states.
pub const STORY_STATES: &[&str] = &[
    "unscheduled",
    "unstarted",
    "planned",
    "started",
    "finished",
    "delivered",
    "accepted",
    "rejected",
];

const PROJECT: &[AttrSpec] = &[
    a(
        "key",
        AttrType::Text {
            max: 32,
            required: true,
        },
    ),
    a("name", NAME),
    a("description", DESCRIPTION),
    a("manager", AttrType::Users),
    a("portfolio", AttrType::Named(EntityKind::Portfolio)),
    a("program", AttrType::Named(EntityKind::Program)),
    a("budget", AttrType::Number),
    a("cost", AttrType::Number),
    a("progress", ENUM_INT),
    a("priority", ENUM_INT),
    a("overall_status", ENUM_INT),
    a("start_date", AttrType::Date),
    a("finish_date", AttrType::Date),
    a("custom", AttrType::Custom),
];

const STORY: &[AttrSpec] = &[
    a("name", NAME),
    a("description", DESCRIPTION),
    a("story_type", AttrType::Enum(STORY_TYPES)),
    a("current_state", AttrType::Enum(STORY_STATES)),
    a("estimate", AttrType::NumberOrNull),
    computed("accepted_at", AttrType::Millis),
    a("deadline", AttrType::Millis),
    a("requested_by", AttrType::User),
    a("owners", AttrType::Users),
    a("labels", AttrType::Tags),
];

const COMMENT: &[AttrSpec] = &[
    a(
        "text",
        AttrType::Text {
            max: 20_000,
            required: true,
        },
    ),
    computed("person", AttrType::User),
];

const TASK: &[AttrSpec] = &[
    a("name", NAME),
    a("description", DESCRIPTION),
    a("group", AttrType::Lookup { with_color: true }),
    a("start_date", AttrType::Date),
    a("due_date", AttrType::Date),
    a("duration", AttrType::IntOrNull { min: 0, max: 100_000 }),
    a("progress", PERCENT),
    a("status", ENUM_INT),
    a("priority", ENUM_INT),
    a("is_milestone", AttrType::Bool),
    a("assigned_to", AttrType::Users),
];

const IDEA: &[AttrSpec] = &[
    a("name", NAME),
    a("description", DESCRIPTION),
    a("stage", ENUM_INT),
    a("business_priority", ENUM_INT),
    a("cost", AttrType::Number),
    a("efforts", AttrType::Number),
    a("expected_cost", AttrType::Number),
    a("expected_efforts", AttrType::Number),
    a("impact", ENUM_INT),
    a("risk", ENUM_INT),
    a("revenue", AttrType::Number),
    a("budget", AttrType::Number),
    a("alignment_score", AttrType::Number),
    a("tags", AttrType::Tags),
    a("challenge", AttrType::Lookup { with_color: false }),
    a("submitter", AttrType::User),
    a("child_project", AttrType::Project),
    a(
        "discussion_url",
        AttrType::Text {
            max: 2048,
            required: false,
        },
    ),
    a("start_date", AttrType::Date),
    a("finish_date", AttrType::Date),
    a("custom", AttrType::Custom),
];

const KEY_DATE: &[AttrSpec] = &[
    a("name", NAME),
    a("description", DESCRIPTION),
    a("type", ENUM_INT),
    a("date", AttrType::Date),
    a("is_complete", AttrType::Bool),
    a("status", ENUM_INT),
    a("show_on_timeline", AttrType::Bool),
    a("assigned_to", AttrType::Users),
];

const NAMED: &[AttrSpec] = &[a("name", NAME), a("description", DESCRIPTION)];

/// The attribute table of a kind.
pub fn specs(kind: EntityKind) -> &'static [AttrSpec] {
    match kind {
        EntityKind::Project => PROJECT,
        EntityKind::Story => STORY,
        EntityKind::Comment => COMMENT,
        EntityKind::Task => TASK,
        EntityKind::Idea => IDEA,
        EntityKind::KeyDate => KEY_DATE,
        EntityKind::Portfolio | EntityKind::Program => NAMED,
        EntityKind::Webhook => &[],
    }
}

/// The value an attribute has when nothing was submitted on create.
fn default_for(kind: EntityKind, spec: &AttrSpec, actor: &UserRef) -> Value {
    match (kind, spec.key) {
        (EntityKind::Project, "overall_status") => json!(-1),
        (EntityKind::Story, "story_type") => json!("feature"),
        (EntityKind::Story, "current_state") => json!("unscheduled"),
        (EntityKind::Story, "requested_by")
        | (EntityKind::Idea, "submitter")
        | (EntityKind::Comment, "person") => serde_json::to_value(actor).unwrap_or(Value::Null),
        (EntityKind::KeyDate, "show_on_timeline") => json!(true),
        _ => match spec.ty {
            AttrType::Text { required: false, .. } => Value::Null,
            AttrType::Text { required: true, .. } => Value::Null,
            AttrType::Number => json!(0),
            AttrType::Int { .. } => json!(0),
            AttrType::Bool => json!(false),
            AttrType::Users | AttrType::Named(_) | AttrType::Tags => json!([]),
            AttrType::Custom => json!({}),
            _ => Value::Null,
        },
    }
}

/// The attribute of `kind` an input key names, given the key normalised by [`norm_key`].
pub fn spec_for(kind: EntityKind, normalised_key: &str) -> Option<&'static AttrSpec> {
    specs(kind).iter().find(|s| norm_key(s.key) == normalised_key)
}

/// Normalises an input key for matching (`StartDate`, `start_date` → `startdate`).
pub fn norm_key(k: &str) -> String {
    k.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Input keys handled by the caller rather than the attribute table.
const STRUCTURAL: &[&str] = &[
    "id",
    "uuid",
    "projectid",
    "storyid",
    "parent",
    "beforeid",
    "afterid",
    "createdat",
    "updatedat",
    "fields",
];

/// Builds the attribute map of an entity from `input`, on top of `current` (update) or the
/// defaults (create). Unknown keys and wrongly typed values are reported per field.
pub fn apply(
    kind: EntityKind,
    current: Option<&Map<String, Value>>,
    input: &Map<String, Value>,
    refs: &dyn Refs,
    actor: &UserRef,
) -> Result<Map<String, Value>, Vec<FieldError>> {
    let table = specs(kind);
    let mut out = Map::new();
    for spec in table {
        let v = match current.and_then(|c| c.get(spec.key)) {
            Some(v) => v.clone(),
            None => default_for(kind, spec, actor),
        };
        out.insert(spec.key.to_owned(), v);
    }
    let mut errs = Vec::new();
    for (k, v) in input {
        let nk = norm_key(k);
        if STRUCTURAL.contains(&nk.as_str()) {
            continue;
        }
        let Some(spec) = spec_for(kind, &nk) else {
            errs.push(FieldError::new(
                k.clone(),
                format!("unknown attribute `{k}` for a {}", kind.as_str()),
            ));
            continue;
        };
        if !spec.input {
            errs.push(FieldError::new(
                k.clone(),
                format!("`{k}` is computed by Herald and cannot be set"),
            ));
            continue;
        }
        let old = current.and_then(|c| c.get(spec.key));
        match parse(spec.ty, v, old, refs) {
            Ok(val) => {
                out.insert(spec.key.to_owned(), val);
            }
            Err(m) => errs.push(FieldError::new(k.clone(), format!("{k} {m}"))),
        }
    }
    for spec in table {
        if let AttrType::Text { required: true, .. } = spec.ty {
            let blank = out
                .get(spec.key)
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty());
            if blank && !errs.iter().any(|e| norm_key(&e.field) == norm_key(spec.key)) {
                errs.push(FieldError::new(spec.key, format!("{} is required", spec.key)));
            }
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

fn parse(ty: AttrType, v: &Value, old: Option<&Value>, refs: &dyn Refs) -> Result<Value, String> {
    match ty {
        AttrType::Text { max, required } => match v {
            Value::Null if !required => Ok(Value::Null),
            Value::String(s) if s.chars().count() > max => Err(format!("must be at most {max} characters")),
            Value::String(s) if required && s.trim().is_empty() => Err("must not be blank".into()),
            Value::String(s) if s.contains('\0') => Err("must not contain NUL characters".into()),
            Value::String(s) => Ok(Value::String(s.clone())),
            _ => Err("must be a string".into()),
        },
        AttrType::Number => number(v).map(|n| json!(n)),
        AttrType::NumberOrNull => match v {
            Value::Null => Ok(Value::Null),
            _ => number(v).map(|n| json!(n)),
        },
        AttrType::Int { min, max } => int(v, min, max).map(|n| json!(n)),
        AttrType::IntOrNull { min, max } => match v {
            Value::Null => Ok(Value::Null),
            _ => int(v, min, max).map(|n| json!(n)),
        },
        AttrType::Bool => v
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| "must be true or false".into()),
        AttrType::Date => match v {
            Value::Null => Ok(Value::Null),
            Value::String(s) if s.is_empty() => Ok(Value::Null),
            Value::String(s) => parse_date(s).map(Value::String),
            _ => Err("must be a date like 2025-02-22".into()),
        },
        AttrType::Millis => match v {
            Value::Null => Ok(Value::Null),
            Value::Number(n) => n
                .as_i64()
                .filter(|ms| (0..=253_402_300_799_999).contains(ms))
                .map(|ms| json!(ms))
                .ok_or_else(|| "must be epoch milliseconds".into()),
            Value::String(s) => crate::timefmt::parse_rfc3339_ms(s)
                .or_else(|| {
                    let d = time::Date::parse(s, format_description!("[year]-[month]-[day]")).ok()?;
                    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
                })
                .map(|ms| json!(ms))
                .ok_or_else(|| "must be epoch milliseconds, an RFC 3339 time or a date".into()),
            _ => Err("must be epoch milliseconds, an RFC 3339 time or a date".into()),
        },
        AttrType::Enum(values) => match v.as_str() {
            Some(s) if values.contains(&s) => Ok(json!(s)),
            _ => Err(format!("must be one of {}", values.join(", "))),
        },
        AttrType::User => match v {
            Value::Null => Ok(Value::Null),
            Value::String(s) => refs
                .user(s)
                .map(|u| serde_json::to_value(u).unwrap_or(Value::Null))
                .ok_or_else(|| format!("refers to unknown user `{s}`")),
            _ => Err("must be a user account id".into()),
        },
        AttrType::Users => {
            let ids = list(v, 100)?;
            let mut out: Vec<Value> = Vec::new();
            for id in ids {
                let s = id.as_str().ok_or("must list user account ids")?;
                let u = refs
                    .user(s)
                    .ok_or_else(|| format!("refers to unknown user `{s}`"))?;
                let u = serde_json::to_value(u).unwrap_or(Value::Null);
                if !out.contains(&u) {
                    out.push(u);
                }
            }
            Ok(Value::Array(out))
        }
        AttrType::Project => match v {
            Value::Null => Ok(Value::Null),
            _ => {
                let id = v.as_i64().ok_or("must be a project id")?;
                refs.project(id)
                    .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
                    .ok_or_else(|| format!("refers to unknown project {id}"))
            }
        },
        AttrType::Named(kind) => {
            let mut out: Vec<Value> = Vec::new();
            for id in list(v, 100)? {
                let n = id
                    .as_i64()
                    .ok_or_else(|| format!("must list {} ids", kind.as_str()))?;
                let r = refs
                    .named(kind, n)
                    .ok_or_else(|| format!("refers to unknown {} {n}", kind.as_str()))?;
                if !out.contains(&r) {
                    out.push(r);
                }
            }
            Ok(Value::Array(out))
        }
        AttrType::Tags => {
            let mut out: Vec<Value> = Vec::new();
            for t in list(v, 100)? {
                let s = t.as_str().ok_or("must list strings")?;
                if s.is_empty() || s.chars().count() > 100 {
                    return Err("entries must be 1-100 characters".into());
                }
                if !out.iter().any(|x| x == s) {
                    out.push(json!(s));
                }
            }
            Ok(Value::Array(out))
        }
        AttrType::Lookup { with_color } => lookup(v, old, with_color),
        AttrType::Custom => match v {
            Value::Object(m) if m.len() <= 50 => Ok(v.clone()),
            Value::Object(_) => Err("may hold at most 50 attributes".into()),
            Value::Null => Ok(json!({})),
            _ => Err("must be an object of label → value".into()),
        },
    }
}

fn number(v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite())
        .ok_or_else(|| "must be a number".into())
}

fn int(v: &Value, min: i64, max: i64) -> Result<i64, String> {
    let n = v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
            .map(|f| f as i64)
    });
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be an integer from {min} to {max}")),
    }
}

fn list(v: &Value, max: usize) -> Result<&Vec<Value>, String> {
    match v {
        Value::Array(a) if a.len() <= max => Ok(a),
        Value::Array(_) => Err(format!("may list at most {max} entries")),
        _ => Err("must be an array".into()),
    }
}

/// Parses `YYYY-MM-DD` (or PPM's `YYYY-MM-DDT12:00:00Z`) into a checked date string.
pub fn parse_date(s: &str) -> Result<String, String> {
    let day = s.strip_suffix("T12:00:00Z").unwrap_or(s);
    time::Date::parse(day, format_description!("[year]-[month]-[day]"))
        .map(|d| {
            d.format(format_description!("[year]-[month]-[day]"))
                .unwrap_or_default()
        })
        .map_err(|_| format!("`{s}` is not a real date like 2025-02-22"))
}

fn lookup(v: &Value, old: Option<&Value>, with_color: bool) -> Result<Value, String> {
    let m = match v {
        Value::Null => return Ok(Value::Null),
        Value::Object(m) => m,
        _ => return Err("must be an object like {\"name\": \"Backlog\"}".into()),
    };
    let name = m
        .iter()
        .find(|(k, _)| norm_key(k) == "name")
        .and_then(|(_, v)| v.as_str())
        .filter(|s| !s.trim().is_empty() && s.chars().count() <= 200)
        .ok_or("needs a name of 1-200 characters")?;
    let id = match m.iter().find(|(k, _)| norm_key(k) == "id").map(|(_, v)| v) {
        Some(Value::String(s)) => Uuid::parse_str(s).map_err(|_| "id must be a UUID")?,
        Some(_) => return Err("id must be a UUID".into()),
        // Keep the id when only the name/colour changed; a new lookup gets a new id.
        None => old
            .and_then(|o| o.get("id"))
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(Uuid::new_v4),
    };
    let mut out = json!({"id": id.to_string(), "name": name});
    if with_color {
        let color = m
            .iter()
            .find(|(k, _)| norm_key(k) == "color")
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("#6a6b6d");
        let ok =
            color.len() == 7 && color.starts_with('#') && color[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Err("color must be like #6a6b6d".into());
        }
        out["color"] = json!(color);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoRefs;
    impl Refs for NoRefs {
        fn user(&self, account_id: &str) -> Option<UserRef> {
            (account_id == "u1").then(|| UserRef {
                id: 1,
                uuid: Uuid::nil(),
                account_id: "u1".into(),
                name: "U One".into(),
                initials: "UO".into(),
                email: String::new(),
            })
        }
        fn project(&self, _: i64) -> Option<ProjectRef> {
            None
        }
        fn named(&self, _: EntityKind, _: i64) -> Option<Value> {
            None
        }
    }

    fn actor() -> UserRef {
        NoRefs.user("u1").unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn create_fills_defaults_and_validates_types() {
        let s = apply(
            EntityKind::Story,
            None,
            &obj(json!({"name": "S", "estimate": 3})),
            &NoRefs,
            &actor(),
        )
        .unwrap();
        assert_eq!(s["story_type"], "feature");
        assert_eq!(s["current_state"], "unscheduled");
        assert_eq!(s["requested_by"]["account_id"], "u1");
        assert_eq!(s["owners"], json!([]));
        assert_eq!(s["estimate"], json!(3.0));
        let e = apply(
            EntityKind::Story,
            None,
            &obj(json!({"name": "S", "story_type": "epic", "owners": ["ghost"], "bogus": 1})),
            &NoRefs,
            &actor(),
        )
        .unwrap_err();
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["bogus", "owners", "story_type"]);
    }

    #[test]
    fn pascal_case_keys_and_ppm_dates_are_accepted() {
        let p = apply(
            EntityKind::Project,
            None,
            &obj(
                json!({"Key": "DEMO", "Name": "Demo", "StartDate": "2021-12-01T12:00:00Z", "Budget": "12.5"}),
            ),
            &NoRefs,
            &actor(),
        )
        .unwrap();
        assert_eq!(p["start_date"], "2021-12-01");
        assert_eq!(p["budget"], json!(12.5));
        assert_eq!(p["overall_status"], json!(-1));
        let e = apply(
            EntityKind::Project,
            None,
            &obj(json!({"key": "K", "name": "N", "finish_date": "2023-02-30"})),
            &NoRefs,
            &actor(),
        )
        .unwrap_err();
        assert_eq!(e[0].field, "finish_date");
    }

    #[test]
    fn update_keeps_unsubmitted_values_and_required_fields_stay_required() {
        let cur = apply(
            EntityKind::Task,
            None,
            &obj(json!({"name": "T", "group": {"name": "Backlog"}})),
            &NoRefs,
            &actor(),
        )
        .unwrap();
        let gid = cur["group"]["id"].clone();
        let next = apply(
            EntityKind::Task,
            Some(&cur),
            &obj(json!({"progress": 50, "group": {"name": "Doing"}})),
            &NoRefs,
            &actor(),
        )
        .unwrap();
        assert_eq!(next["name"], "T");
        assert_eq!(next["group"]["id"], gid, "lookup id kept across renames");
        assert!(apply(
            EntityKind::Task,
            Some(&cur),
            &obj(json!({"progress": 101})),
            &NoRefs,
            &actor()
        )
        .is_err());
        let e = apply(
            EntityKind::Task,
            Some(&cur),
            &obj(json!({"name": " "})),
            &NoRefs,
            &actor(),
        )
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "name");
    }
}
