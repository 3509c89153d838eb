//! The change path's operations ([`crate::store::change_path::ChangeOps`]) through sqlx,
//! for both backends: PostgreSQL's changes, in their transaction or on the optimistic
//! path. (SQLite's writer has a synchronous implementation, `sqlite/sync_writer.rs`.)
//! Expanded inside `impl_tracker_store!`'s module (uses its `Conn`, row readers and lock
//! helpers), like `common_locks.rs`.

/// Expands `apply_in` and the sqlx [`ChangeOps`](crate::store::change_path::ChangeOps)
/// for `$store` inside the tracker module.
macro_rules! change_fns {
    ($store:ty) => {
        /// A change's reads and writes on one sqlx connection (or transaction).
        pub(super) struct SqlxOps<'c> {
            c: &'c mut Conn,
            store: &'c $store,
        }

        impl SqlxOps<'_> {
            /// `sql` with `args` bound in order.
            fn query<'q>(
                sql: &'q str,
                args: &'q [SqlArg],
            ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
                super::delivery_impl::bind_args(sqlx::query::<Db>(sql), args)
            }
        }

        impl crate::store::change_path::ChangeOps for SqlxOps<'_> {
            const SINGLE_WRITER: bool = <$store>::SINGLE_WRITER;

            async fn lock(&mut self, tenant_id: i64, kind: EntityKind, op: &ChangeOp) -> StoreResult<()> {
                // Changes inside one project serialise on its row; changes outside
                // any project on the tenant's (`common_locks.rs`).
                if !lock_project_of(&mut *self.c, tenant_id, kind, op).await? {
                    lock_tenant(&mut *self.c, tenant_id).await?;
                }
                Ok(())
            }

            async fn execute(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<()> {
                Self::query(sql, args).execute(&mut *self.c).await?;
                Ok(())
            }

            async fn int(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<i64>> {
                let row = Self::query(sql, args).fetch_optional(&mut *self.c).await?;
                Ok(row
                    .map(|r| r.try_get::<Option<i64>, _>(0))
                    .transpose()?
                    .flatten())
            }

            async fn real(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<f64>> {
                let row = Self::query(sql, args).fetch_optional(&mut *self.c).await?;
                Ok(row
                    .map(|r| r.try_get::<Option<f64>, _>(0))
                    .transpose()?
                    .flatten())
            }

            async fn entity(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<EntityRow>> {
                let row = Self::query(sql, args).fetch_optional(&mut *self.c).await?;
                row.as_ref().map(entity_from_row).transpose()
            }

            async fn insert_event(&mut self, tenant_id: i64, event: &Event) -> StoreResult<i64> {
                super::delivery_impl::insert_event(&mut *self.c, tenant_id, event, None).await
            }

            async fn fanout(
                &mut self,
                tenant_id: i64,
                event: &Event,
                seen: Option<i64>,
            ) -> StoreResult<(Vec<DeliveryJob>, bool)> {
                super::delivery_impl::fanout(&mut *self.c, self.store, tenant_id, event, seen).await
            }

            async fn write_event_locking_tenant(
                &mut self,
                tenant_id: i64,
                event: &mut Event,
                entity: Option<&Deferred>,
                seen: Option<i64>,
            ) -> StoreResult<Option<(Vec<DeliveryJob>, bool)>> {
                super::delivery_impl::insert_event_and_fanout_locking_tenant(
                    &mut *self.c,
                    self.store,
                    tenant_id,
                    event,
                    entity,
                    seen,
                )
                .await
            }
        }

        /// One change on `tx` through sqlx, committed as `finish` says
        /// (`crate::store::change_path::apply`).
        #[allow(dead_code)] // SQLite's changes run on its synchronous writer.
        pub(super) async fn apply_in(
            tx: &mut Conn,
            store: &$store,
            req: &ChangeRequest,
            finish: Finish,
        ) -> StoreResult<ChangeStep> {
            crate::store::change_path::apply(&mut SqlxOps { c: tx, store }, req, finish).await
        }
    };
}

pub(crate) use change_fns;
