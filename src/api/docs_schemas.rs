//! OpenAPI request schemas for tracker entities, generated from the domain's attribute
//! tables so the documentation can never disagree with what the API validates.

use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

use super::entities::collection;
use crate::domain::attrs::{specs, AttrType, STORY_STATES, STORY_TYPES};
use crate::domain::event_type::EntityKind;

fn typed(t: Type, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(t)
        .description(Some(description))
        .into()
}

fn array_of(t: Type, description: &str) -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(t))
        .description(Some(description))
        .into()
}

fn attr_schema(ty: AttrType) -> RefOr<Schema> {
    match ty {
        AttrType::Text { max, .. } => typed(Type::String, &format!("text, at most {max} characters")),
        AttrType::Number | AttrType::NumberOrNull => typed(Type::Number, "number"),
        AttrType::Int { min, max } | AttrType::IntOrNull { min, max } => {
            typed(Type::Integer, &format!("integer from {min} to {max}"))
        }
        AttrType::Bool => typed(Type::Boolean, "true or false"),
        AttrType::Date => typed(Type::String, "date YYYY-MM-DD, or null"),
        AttrType::Millis => typed(
            Type::Integer,
            "epoch milliseconds (RFC 3339 or a date accepted), or null",
        ),
        AttrType::Enum(values) => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied()))
            .into(),
        AttrType::User => typed(Type::String, "user account id, or null"),
        AttrType::Users => array_of(Type::String, "user account ids"),
        AttrType::Project => typed(Type::Integer, "project id, or null"),
        AttrType::Named(kind) => array_of(Type::Integer, &format!("{} ids", kind.as_str())),
        AttrType::Tags => array_of(Type::String, "short strings"),
        AttrType::Lookup { with_color } => typed(
            Type::Object,
            if with_color {
                "{name, color?, id?}, or null"
            } else {
                "{name, id?}, or null"
            },
        ),
        AttrType::Custom => typed(
            Type::Object,
            "custom attributes keyed by display label (passed through)",
        ),
    }
}

/// Name of the generated input schema of a kind, e.g. `ProjectIn`.
fn schema_name(kind: EntityKind) -> String {
    format!("{}In", kind.pascal())
}

fn entity_schema(kind: EntityKind) -> Schema {
    let mut b = ObjectBuilder::new().schema_type(Type::Object);
    for spec in specs(kind).iter().filter(|s| s.input) {
        b = b.property(spec.key, attr_schema(spec.ty));
    }
    let parents: &[&str] = match kind {
        EntityKind::Story | EntityKind::Task => &["project_id"],
        EntityKind::Comment => &["story_id"],
        EntityKind::KeyDate => &["project_id", "portfolio_id", "program_id"],
        _ => &[],
    };
    for p in parents {
        b = b.property(*p, typed(Type::Integer, "parent id (on create)"));
    }
    if kind == EntityKind::Story {
        b = b
            .property(
                "before_id",
                typed(Type::Integer, "place directly before this story"),
            )
            .property(
                "after_id",
                typed(Type::Integer, "place directly after this story"),
            );
    }
    if kind == EntityKind::Project {
        b = b.property(
            "fields",
            typed(Type::Object, "Projectrak field values keyed by field name or id"),
        );
    }
    let desc = match kind {
        EntityKind::Story => format!(
            "story_type ∈ {}; current_state ∈ {}",
            STORY_TYPES.join(", "),
            STORY_STATES.join(", ")
        ),
        _ => format!(
            "Attributes of a {} (snake_case; PPM PascalCase accepted)",
            kind.as_str()
        ),
    };
    b.description(Some(desc)).into()
}

/// Adds `<Kind>In` schemas and points the entity routes' request bodies at them.
pub fn add(openapi: &mut utoipa::openapi::OpenApi) {
    let kinds = [
        EntityKind::Project,
        EntityKind::Story,
        EntityKind::Comment,
        EntityKind::Task,
        EntityKind::Idea,
        EntityKind::KeyDate,
        EntityKind::Portfolio,
        EntityKind::Program,
    ];
    let components = openapi.components.get_or_insert_with(Default::default);
    for kind in kinds {
        components
            .schemas
            .insert(schema_name(kind), entity_schema(kind).into());
    }
    for kind in kinds {
        let body = || {
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema_name(kind))))
                        .build(),
                )
                .build()
        };
        let coll = format!("/@{{tenant}}/v1/{}", collection(kind));
        if let Some(op) = openapi.paths.paths.get_mut(&coll).and_then(|p| p.post.as_mut()) {
            op.request_body = Some(body());
        }
        if let Some(item) = openapi.paths.paths.get_mut(&format!("{coll}/{{id}}")) {
            for op in [item.patch.as_mut(), item.put.as_mut()].into_iter().flatten() {
                op.request_body = Some(body());
            }
        }
    }
}
