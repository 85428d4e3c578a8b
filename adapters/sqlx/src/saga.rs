//! Saga instances and scheduled commands. The caller's clock decides what is due and
//! which claims ran out; times are kept to the millisecond.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::ports::{
    DeadlineWrite, SagaFilter, SagaKey, SagaRecord, SagaStore, ScheduleStore, ScheduledCommand, TenantScope,
    async_trait,
};
use cqrs_ddd::{Error, Result};
use uuid::Uuid;

use crate::common::{
    MetadataColumns, is_unique_violation, lease_until, limit, retry_deadlocks, saga_conflict, saga_tenant, store_err,
    tenant_column, to_i32, to_i64,
};
use crate::dialect::{Dialect, at, at_opt};
use crate::exec::{SqlConn, Stmt, Value};
use crate::rows::{self, Cols, SAGA_COLUMNS, SCHEDULED_COLUMNS};
use crate::sql::with_list;
use crate::storable::{check_saga, check_scheduled, lossy, write_err};
use crate::store::SqlStore;

#[async_trait]
impl<D: Dialect> SagaStore for SqlStore<D> {
    async fn load(&self, key: &SagaKey) -> Result<Option<SagaRecord>> {
        let stmt = Stmt::new(&self.sql.saga_load).str(saga_tenant(key)).str(&key.saga_type).str(&key.saga_id);
        let row = self.conn().await?.row(stmt).await.map_err(store_err)?;
        row.as_ref().map(rows::saga::<D>).transpose()
    }

    async fn save(&self, record: &SagaRecord, expected_version: u64) -> Result<()> {
        let mut conn = self.conn().await?;
        self.save_on(&mut conn, record, expected_version).await
    }

    async fn save_with_deadlines(
        &self,
        record: &SagaRecord,
        expected_version: u64,
        deadlines: &[DeadlineWrite],
    ) -> Result<bool> {
        for d in deadlines {
            tenant_column(d.tenant_id())?;
        }
        let written = retry_deadlocks(|| async {
            // A cancelled save closes its connection (see `Txn`).
            let mut tx = self.begin_write().await?;
            let written = async {
                if !self.write_saga(&mut tx, record, expected_version).await? {
                    return Ok(false);
                }
                self.write_deadlines(&mut tx, deadlines).await.map(|()| true)
            }
            .await;
            match written {
                Ok(true) => tx.commit().await.map(|()| true).map_err(store_err),
                Ok(false) => tx.fail(Error::store("the saga moved")).await.or(Ok(false)),
                Err(e) => tx.fail(e).await,
            }
        })
        .await?;
        if !written {
            // Found outside the transaction the refused write may have aborted.
            let mut conn = self.conn().await?;
            self.saga_conflict_on(&mut conn, &record.key, expected_version).await?;
        }
        Ok(true)
    }

    async fn due(&self, now: DateTime<Utc>, max: usize) -> Result<Vec<SagaKey>> {
        let stmt = Stmt::new(&self.sql.saga_due).arg(at::<D>(now)).int(limit(max));
        let rows = self.conn().await?.rows(stmt).await.map_err(store_err)?;
        rows.iter().map(rows::saga_key::<D>).collect()
    }

    async fn list(&self, filter: &SagaFilter<'_>) -> Result<Vec<SagaRecord>> {
        let mut sql = format!("SELECT {SAGA_COLUMNS} FROM {{t}}sagas WHERE 1 = 1");
        if filter.saga_type.is_some() {
            sql.push_str(" AND saga_type = ?");
        }
        if !filter.statuses.is_empty() {
            sql.push_str(" AND status IN ({in})");
        }
        if matches!(filter.tenant, TenantScope::Only(_)) {
            sql.push_str(" AND tenant_id = ?");
        }
        sql.push_str(" ORDER BY created_at, tenant_id, saga_type, saga_id LIMIT ?");
        let sql = with_list(&self.dialect, &sql, "?", filter.statuses.len());
        let mut stmt = Stmt::new(&sql);
        if let Some(t) = filter.saga_type {
            stmt = stmt.str(t);
        }
        for s in filter.statuses {
            stmt = stmt.str(s.as_str());
        }
        if let TenantScope::Only(tenant) = filter.tenant {
            stmt = stmt.str(tenant_column(tenant)?);
        }
        let rows = self.conn().await?.rows(stmt.int(limit(filter.limit))).await.map_err(store_err)?;
        rows.iter().map(rows::saga::<D>).collect()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// The upsert of a scheduled command, checked.
    fn schedule_stmt<'a>(&'a self, command: &'a ScheduledCommand) -> Result<Stmt<'a>> {
        tenant_column(command.metadata.tenant_id.as_deref())?;
        check_scheduled(command)?;
        let m = MetadataColumns::of(&command.metadata);
        Ok(Stmt::new(&self.sql.schedule)
            .uuid(command.id)
            .str(&command.command_type)
            .str(&command.payload)
            .arg(at::<D>(command.due_at))
            .arg(Value::OptUuid(m.correlation_id))
            .arg(Value::OptUuid(m.causation_id))
            .str(m.tenant_id)
            .arg(Value::OptStr(m.principal))
            .arg(Value::OptString(m.headers))
            .int(i64::from(to_i32(command.attempts, "attempts")?))
            .arg(Value::OptStr(command.last_error.as_deref()))
            .arg(at::<D>(command.created_at)))
    }

    /// Writes a saga record on `conn` if the stored one is at `expected_version`.
    async fn save_on(&self, conn: &mut D::Conn, record: &SagaRecord, expected_version: u64) -> Result<()> {
        if self.write_saga(conn, record, expected_version).await? {
            return Ok(());
        }
        self.saga_conflict_on(conn, &record.key, expected_version).await
    }

    /// Writes a saga record if the stored one is at `expected_version`; whether it did
    /// (when not, a transaction the write ran in may be aborted: find the conflict
    /// after it).
    async fn write_saga(&self, conn: &mut D::Conn, record: &SagaRecord, expected_version: u64) -> Result<bool> {
        check_saga(record)?;
        let key = &record.key;
        let sql = if expected_version == 0 { &self.sql.saga_insert } else { &self.sql.saga_update };
        let mut stmt = Stmt::new(sql)
            .str(record.status.as_str())
            .int(to_i64(record.version, "saga version")?)
            .arg(at_opt::<D>(record.wake_at))
            .str(&record.data)
            .arg(at::<D>(record.created_at))
            .arg(at::<D>(record.updated_at))
            .str(saga_tenant(key))
            .str(&key.saga_type)
            .str(&key.saga_id);
        if expected_version != 0 {
            stmt = stmt.int(to_i64(expected_version, "saga version")?);
        }
        match conn.run(stmt).await {
            Ok(1) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(write_err(e, || format!("saga `{key}`"))),
        }
    }

    /// The conflict of a saga save that found the instance at another version.
    async fn saga_conflict_on(&self, conn: &mut D::Conn, key: &SagaKey, expected_version: u64) -> Result<()> {
        let stmt = Stmt::new(&self.sql.saga_version).str(saga_tenant(key)).str(&key.saga_type).str(&key.saga_id);
        let actual = match conn.row(stmt).await.map_err(store_err)? {
            Some(r) => Some(Cols::<D>::of(&r).int("version").map_err(store_err)?),
            None => None,
        };
        saga_conflict(key, expected_version, actual)
    }

    /// Writes the deadlines of a batch into the schedule, in order, on the batch's
    /// connection (inside its transaction). A fired deadline that is gone or was
    /// scheduled again refuses the batch with a conflict.
    pub(crate) async fn write_deadlines(&self, conn: &mut D::Conn, deadlines: &[DeadlineWrite]) -> Result<()> {
        for w in deadlines {
            match w {
                DeadlineWrite::Schedule(command) => {
                    conn.run(self.schedule_stmt(command)?)
                        .await
                        .map_err(|e| write_err(e, || format!("deadline `{}`", command.id)))?;
                }
                DeadlineWrite::Cancel { tenant_id, id } => {
                    let stmt = Stmt::new(&self.sql.schedule_delete).uuid(*id).str(tenant_column(tenant_id.as_deref())?);
                    conn.run(stmt).await.map_err(store_err)?;
                }
                DeadlineWrite::Fire { tenant_id, id, scheduled_by } => {
                    let tenant = tenant_column(tenant_id.as_deref())?;
                    let stmt = match scheduled_by {
                        Some(by) => Stmt::new(&self.sql.schedule_fire).uuid(*id).str(tenant).uuid(*by),
                        None => Stmt::new(&self.sql.schedule_fire_uncaused).uuid(*id).str(tenant),
                    };
                    if conn.run(stmt).await.map_err(store_err)? == 0 {
                        return Err(w.fire_conflict());
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> ScheduleStore for SqlStore<D> {
    async fn schedule(&self, command: &ScheduledCommand) -> Result<()> {
        let stmt = self.schedule_stmt(command)?;
        self.conn()
            .await?
            .run(stmt)
            .await
            .map_err(|e| write_err(e, || format!("scheduled command `{}`", command.id)))?;
        Ok(())
    }

    async fn cancel(&self, tenant: Option<&str>, id: Uuid) -> Result<bool> {
        let stmt = Stmt::new(&self.sql.schedule_delete).uuid(id).str(tenant_column(tenant)?);
        Ok(self.conn().await?.run(stmt).await.map_err(store_err)? > 0)
    }

    async fn get(&self, tenant: Option<&str>, id: Uuid) -> Result<Option<ScheduledCommand>> {
        let stmt = Stmt::new(&self.sql.schedule_get).uuid(id).str(tenant_column(tenant)?);
        let row = self.conn().await?.row(stmt).await.map_err(store_err)?;
        row.as_ref().map(rows::scheduled::<D>).transpose()
    }

    async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ScheduledCommand>> {
        let until = at::<D>(lease_until(now, lease));
        let mut tx = self.claimer().await?;
        let claimed: Result<Vec<ScheduledCommand>> = async {
            if D::RETURNING {
                let stmt = Stmt::new(&self.sql.schedule_claim)
                    .str(worker)
                    .arg(until)
                    .arg(at::<D>(now))
                    .arg(at::<D>(now))
                    .int(limit(max));
                return tx.rows(stmt).await.map_err(store_err)?.iter().map(rows::scheduled::<D>).collect();
            }
            let stmt = Stmt::new(&self.sql.schedule_claim).arg(at::<D>(now)).arg(at::<D>(now)).int(limit(max));
            let claimed: Vec<ScheduledCommand> =
                tx.rows(stmt).await.map_err(store_err)?.iter().map(rows::scheduled::<D>).collect::<Result<_>>()?;
            if !claimed.is_empty() {
                let sql = with_list(
                    &self.dialect,
                    "UPDATE {t}scheduled_commands SET claimed_by = ?, claimed_until = ? WHERE (tenant_id, id) IN ({in})",
                    "(?, ?)",
                    claimed.len(),
                );
                let mut stmt = Stmt::new(&sql).str(worker).arg(until);
                for c in &claimed {
                    stmt = stmt.str(c.metadata.tenant_id.as_deref().unwrap_or("")).uuid(c.id);
                }
                tx.run(stmt).await.map_err(store_err)?;
            }
            Ok(claimed)
        }
        .await;
        let mut claimed = match claimed {
            Ok(c) => {
                tx.done().await?;
                c
            }
            Err(e) => return tx.fail(e).await,
        };
        // RETURNING order is not guaranteed.
        claimed.sort_by_key(|c| (c.due_at, c.id));
        Ok(claimed)
    }

    async fn complete(&self, tenant: Option<&str>, id: Uuid) -> Result<()> {
        self.cancel(tenant, id).await.map(|_| ())
    }

    async fn retry_later(&self, tenant: Option<&str>, id: Uuid, error: &str, due_at: DateTime<Utc>) -> Result<()> {
        let stmt = Stmt::new(&self.sql.schedule_retry)
            .arg(Value::String(lossy(error).into_owned()))
            .arg(at::<D>(due_at))
            .uuid(id)
            .str(tenant_column(tenant)?);
        self.conn().await?.run(stmt).await.map_err(store_err)?;
        Ok(())
    }

    async fn mark_dead(&self, tenant: Option<&str>, id: Uuid, error: &str) -> Result<()> {
        let stmt = Stmt::new(&self.sql.schedule_kill)
            .arg(Value::String(lossy(error).into_owned()))
            .uuid(id)
            .str(tenant_column(tenant)?);
        self.conn().await?.run(stmt).await.map_err(store_err)?;
        Ok(())
    }

    async fn dead(&self, max: usize) -> Result<Vec<ScheduledCommand>> {
        let rows =
            self.conn().await?.rows(Stmt::new(&self.sql.schedule_dead).int(limit(max))).await.map_err(store_err)?;
        rows.iter().map(rows::scheduled::<D>).collect()
    }

    async fn scheduled(&self, scope: TenantScope<'_>, dead: bool, max: usize) -> Result<Vec<ScheduledCommand>> {
        let tenant = if matches!(scope, TenantScope::Only(_)) { " AND tenant_id = ?" } else { "" };
        let sql = self.dialect.render(&format!(
            "SELECT {SCHEDULED_COLUMNS} FROM {{t}}scheduled_commands WHERE dead = {dead}{tenant} ORDER BY due_at, id, tenant_id LIMIT ?"
        ));
        let mut stmt = Stmt::new(&sql);
        if let TenantScope::Only(tenant) = scope {
            stmt = stmt.str(tenant_column(tenant)?);
        }
        let rows = self.conn().await?.rows(stmt.int(limit(max))).await.map_err(store_err)?;
        rows.iter().map(rows::scheduled::<D>).collect()
    }
}
