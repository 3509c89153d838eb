//! Rows the change path reads, decoded once for every driver that reads them: sqlx's
//! SQLite and PostgreSQL rows, and the rusqlite rows of SQLite's synchronous writer
//! (`sqlite/sync_writer.rs`). Each driver only says how to read one column by name.

use std::sync::Arc;

use sqlx::Row as _;

use super::common::{
    corrupt, parse_event_types, parse_format, parse_ids, parse_ordering, parse_uuid, parse_verb,
};
use super::{EntityRow, StoreResult, TargetRow};
use crate::delivery::fanout::Subscriber;
use crate::domain::event_type::EntityKind;

/// One row's columns, read by name.
pub(crate) trait Columns {
    /// A text column that may be NULL.
    fn opt_text(&self, name: &str) -> StoreResult<Option<String>>;
    /// An integer column that may be NULL.
    fn opt_int(&self, name: &str) -> StoreResult<Option<i64>>;
    /// A real column that may be NULL.
    fn opt_real(&self, name: &str) -> StoreResult<Option<f64>>;

    /// A text column that is never NULL.
    fn text(&self, name: &str) -> StoreResult<String> {
        self.opt_text(name)?.ok_or_else(|| corrupt(name, "NULL"))
    }
    /// An integer column that is never NULL.
    fn int(&self, name: &str) -> StoreResult<i64> {
        self.opt_int(name)?.ok_or_else(|| corrupt(name, "NULL"))
    }
}

/// Implements [`Columns`] for an sqlx row type.
macro_rules! sqlx_columns {
    ($row:ty) => {
        impl Columns for $row {
            fn opt_text(&self, name: &str) -> StoreResult<Option<String>> {
                Ok(self.try_get(name)?)
            }
            fn opt_int(&self, name: &str) -> StoreResult<Option<i64>> {
                Ok(self.try_get(name)?)
            }
            fn opt_real(&self, name: &str) -> StoreResult<Option<f64>> {
                Ok(self.try_get(name)?)
            }
        }
    };
}

sqlx_columns!(sqlx::sqlite::SqliteRow);
sqlx_columns!(sqlx::postgres::PgRow);

impl Columns for rusqlite::Row<'_> {
    fn opt_text(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(self.get(name)?)
    }
    fn opt_int(&self, name: &str) -> StoreResult<Option<i64>> {
        Ok(self.get(name)?)
    }
    fn opt_real(&self, name: &str) -> StoreResult<Option<f64>> {
        Ok(self.get(name)?)
    }
}

fn kind_of(s: &str) -> StoreResult<EntityKind> {
    EntityKind::parse(s).ok_or_else(|| corrupt("entity kind", s))
}

/// An entity row (`change_path::ENTITY_COLUMNS`).
pub(crate) fn entity_from_row(r: &impl Columns) -> StoreResult<EntityRow> {
    let data = r.text("data")?;
    Ok(EntityRow {
        id: r.int("id")?,
        uuid: parse_uuid(&r.text("uuid")?)?,
        kind: kind_of(&r.text("kind")?)?,
        parent: match (r.opt_text("parent_kind")?, r.opt_int("parent_id")?) {
            (Some(k), Some(id)) => Some((kind_of(&k)?, id)),
            _ => None,
        },
        project_id: r.opt_int("project_id")?,
        position: r.opt_real("position")?,
        version: r.int("version")?,
        data: serde_json::from_str(&data).map_err(|e| corrupt("entity data", e))?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

/// Columns selected for a delivery's target, in `target_from_row`'s terms.
pub(crate) const TARGET_COLUMNS: &str =
    "id, url, http_verb, headers, secret, previous_secret, previous_secret_until, updated_at";

/// Where and how a webhook's deliveries go ([`TARGET_COLUMNS`]).
pub(crate) fn target_from_row(r: &impl Columns) -> StoreResult<TargetRow> {
    Ok(TargetRow {
        webhook_id: parse_uuid(&r.text("id")?)?,
        url: r.text("url")?,
        http_verb: parse_verb(&r.text("http_verb")?)?,
        headers_json: r.text("headers")?,
        secret_sealed: r.text("secret")?,
        previous_secret_sealed: r.opt_text("previous_secret")?,
        previous_secret_until: r.opt_int("previous_secret_until")?,
        updated_at: r.int("updated_at")?,
    })
}

/// The columns of a webhook fan-out needs ([`TARGET_COLUMNS`] and its filters).
pub(crate) fn subscriber_sql(filter: &str) -> String {
    format!("SELECT {TARGET_COLUMNS}, format, event_types, project_ids, ordering FROM webhooks WHERE {filter} ORDER BY created_at, id")
}

/// A webhook as fan-out sees it ([`subscriber_sql`]).
pub(crate) fn subscriber_from_row(r: &impl Columns) -> StoreResult<Subscriber> {
    Ok(Subscriber {
        format: parse_format(&r.text("format")?)?,
        event_types: parse_event_types(&r.text("event_types")?)?,
        project_ids: parse_ids(&r.text("project_ids")?)?,
        ordering: parse_ordering(&r.text("ordering")?)?,
        target: Arc::new(target_from_row(r)?),
    })
}

#[cfg(test)]
mod tests {
    use super::subscriber_sql;

    /// Every column fan-out reads, filters or orders by is in the list of the triggers
    /// that raise `tenants.webhooks_version` (migration 0009, both backends): a column
    /// added to fan-out's read but not there would let nodes keep webhook lists that a
    /// write to it made stale (`subscriber_cache.rs`).
    #[test]
    fn the_webhooks_version_triggers_watch_every_column_fan_out_reads() {
        let select = subscriber_sql("tenant_id = $1 AND enabled");
        let listed = &select["SELECT ".len()..select.find(" FROM").unwrap()];
        let mut read: Vec<&str> = listed.split(',').map(str::trim).collect();
        read.extend(["tenant_id", "enabled", "created_at"]);
        for (backend, migration) in [
            (
                "postgres",
                include_str!("../../migrations/postgres/0009_webhooks_version.sql"),
            ),
            (
                "sqlite",
                include_str!("../../migrations/sqlite/0009_webhooks_version.sql"),
            ),
        ] {
            let from = migration.find("AFTER UPDATE OF").unwrap() + "AFTER UPDATE OF".len();
            let to = from + migration[from..].find(" ON webhooks").unwrap();
            let watched: Vec<&str> = migration[from..to].split(',').map(str::trim).collect();
            for c in &read {
                assert!(watched.contains(c), "{backend}: the trigger does not watch `{c}`");
            }
        }
    }
}
