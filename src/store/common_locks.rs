//! The locks a change takes, shared by both backends (expanded inside a backend's tracker
//! module, like `common_positions.rs`): the row of the change's project first, the tenant
//! row last. On SQLite both are no-ops, because its one writer connection already
//! serialises every write.

/// Expands `lock_tenant` and `lock_project_of` for `$store` (uses the module's `Db`/`Conn`).
macro_rules! change_lock_fns {
    ($store:ty) => {
        /// Serialises a tenant's changes so event `seq` order is commit order. SQLite
        /// needs no statement for it: every write already queues for its one writer
        /// connection, and a round trip saved there is throughput gained.
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
    };
}

pub(crate) use change_lock_fns;
