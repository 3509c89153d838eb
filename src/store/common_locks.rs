//! The locks a change takes, shared by both backends (expanded inside a backend's tracker
//! module, like `common_change.rs`): the row of the change's project (or, for a change
//! that belongs to no project, the tenant row), and a shared turn on the tenant's event
//! feed around drawing the event's `seq`. On SQLite all are no-ops, because its one writer
//! connection already serialises every write, so `seq` order is commit order there.
//!
//! Why a feed turn and not the tenant row: the event feed (`GET /events?after=seq`) must
//! never skip an event, so a reader must not see `seq` 7 while `seq` 6 can still commit.
//! Holding the tenant row from drawing the `seq` to `COMMIT` guaranteed that by making
//! every change of a tenant commit one after the other, each waiting for the previous
//! one's WAL flush: the PostgreSQL fan-out bench lost ~25 % of its throughput to it. Now
//! writers take the feed turn *shared* (they never wait for each other, and their commits
//! share WAL flushes), and the feed's reader waits instead: it takes the turn exclusively
//! for a moment, which waits for every transaction that drew a `seq` of that tenant to
//! end, reads the highest `seq` committed then, and lists nothing above it (`feed_horizon`).
//! Readers are rare and brief; changes are the hot path.

/// PostgreSQL: the expression that takes `tenant`'s (an SQL expression of its id) shared
/// feed turn until the transaction ends. Every event insert evaluates it before its `seq`
/// is drawn (ids above 2³¹ share turns with others: more waiting, never a skipped event).
pub(crate) fn feed_turn_sql(tenant: &str) -> String {
    feed_lock_sql("pg_advisory_xact_lock_shared", tenant)
}

/// The feed turn's SQL call of `function` for `tenant` (an SQL expression of its id).
/// Advisory locks are per database, and deployments sharing one keep apart by schema
/// (`HERALD_DATABASE_SCHEMA`), so the first key names Herald's feed and the schema: the
/// same tenant id elsewhere must not share the turn (it would only wait, but for nothing).
/// Two-key locks never meet one-key ones (sqlx's migration lock).
pub(crate) fn feed_lock_sql(function: &str, tenant: &str) -> String {
    format!("{function}(hashtext('herald-feed:' || current_schema()), ({tenant}::bigint % 2147483648)::int4)")
}

/// Expands `lock_tenant` and `lock_project_of` for `$store` (uses the module's `Db`/`Conn`).
macro_rules! change_lock_fns {
    ($store:ty) => {
        /// Serialises a tenant's changes that belong to no project (and the tenant's
        /// counted inserts: webhooks, fields, ingested events). SQLite needs no statement
        /// for it: every write already queues for its one writer connection, and a round
        /// trip saved there is throughput gained.
        pub(super) async fn lock_tenant(c: &mut Conn, tenant_id: i64) -> StoreResult<()> {
            if <$store>::SINGLE_WRITER {
                return Ok(());
            }
            sqlx::query::<Db>("UPDATE tenants SET slug = slug WHERE id = $1")
                .bind(tenant_id)
                .execute(c)
                .await?;
            Ok(())
        }

        /// PostgreSQL: locks the row of the project a change belongs to, so changes
        /// within one project (versions, story positions, read-modify-write of the
        /// entity) are serialised while other projects' changes run in parallel.
        /// Returns false when the change belongs to no project (portfolios, programs,
        /// their key dates): the caller then takes the tenant lock for the whole change.
        /// Lock order is always project row, then tenant row (see `lock_tenant`), so
        /// the two cannot deadlock. On SQLite the single writer serialises everything.
        async fn lock_project_of(
            c: &mut Conn,
            tenant_id: i64,
            kind: EntityKind,
            op: &ChangeOp,
        ) -> StoreResult<bool> {
            if <$store>::SINGLE_WRITER {
                return Ok(true);
            }
            let owner_project = |id: i64| {
                sqlx::query_scalar::<Db, Option<i64>>(
                    "SELECT project_id FROM entities WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant_id)
                .bind(id)
            };
            let project = match (kind, op) {
                // A new project has no other changes to wait for; its key is unique.
                (EntityKind::Project, ChangeOp::Create { .. }) => return Ok(true),
                (EntityKind::Project, ChangeOp::Update { id } | ChangeOp::Delete { id }) => Some(*id),
                (
                    _,
                    ChangeOp::Create {
                        parent: Some((EntityKind::Project, id)),
                    },
                ) => Some(*id),
                (
                    _,
                    ChangeOp::Create {
                        parent: Some((_, id)),
                    },
                )
                | (_, ChangeOp::Update { id } | ChangeOp::Delete { id }) => {
                    owner_project(*id).fetch_optional(&mut *c).await?.flatten()
                }
                (_, ChangeOp::Create { parent: None }) => None,
            };
            let Some(project) = project else {
                return Ok(false);
            };
            let found = sqlx::query_scalar::<Db, i64>(
                "SELECT id FROM entities WHERE tenant_id = $1 AND id = $2 AND kind = 'project' FOR UPDATE",
            )
            .bind(tenant_id)
            .bind(project)
            .fetch_optional(&mut *c)
            .await?;
            // A project that vanished meanwhile: let the change find that out itself.
            Ok(found.is_some())
        }

        /// The highest `seq` of `tenant_id`'s events the feed may list: every event at or
        /// below it has committed or never will (see the module's doc). `None` on SQLite,
        /// where the feed needs no horizon. Waits for the tenant's changes in flight, and
        /// holds new ones back only for that wait and one index look-up.
        pub(super) async fn feed_horizon(pool: &sqlx::Pool<Db>, tenant_id: i64) -> StoreResult<Option<i64>> {
            if <$store>::SINGLE_WRITER {
                return Ok(None);
            }
            let mut tx = pool.begin().await?;
            let exclusive = crate::store::common_locks::feed_lock_sql("pg_advisory_xact_lock", "$1");
            sqlx::query::<Db>(&format!("SELECT {exclusive}"))
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            // A statement after the lock: its snapshot shows every transaction waited for.
            let top =
                sqlx::query_scalar::<Db, Option<i64>>("SELECT MAX(seq) FROM events WHERE tenant_id = $1")
                    .bind(tenant_id)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(Some(top.unwrap_or(0)))
        }
    };
}

pub(crate) use change_lock_fns;
