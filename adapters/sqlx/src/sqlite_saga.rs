//! Sagas and scheduled commands on SQLite; times are milliseconds since the epoch.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::Result;
use cqrs_ddd::ports::{SagaKey, SagaRecord, SagaStatus, SagaStore, ScheduleStore, ScheduledCommand, async_trait};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use crate::common::{
    MetadataColumns, TimeRow, Txn, decode_saga, decode_saga_key, decode_scheduled, from_ms, lease_until, limit,
    saga_conflict, saga_tenant, store_err, tenant_column, to_i32, to_i64,
};
use crate::sqlite::SqliteStore;
use crate::storable::{check_saga, check_scheduled, lossy, write_err};

const SAGA_COLUMNS: &str =
    "tenant_id, saga_type, saga_id, status, version, wake_at_ms, data, created_at_ms, updated_at_ms";
const SCHEDULED_COLUMNS: &str = "id, command_type, payload, due_at_ms, correlation_id, causation_id, tenant_id, \
    principal, headers, attempts, last_error, created_at_ms";

pub(crate) struct SagaSql {
    load: String,
    insert: String,
    update: String,
    version: String,
    due: String,
    schedule: String,
    delete: String,
    get: String,
    claim: String,
    retry: String,
    kill: String,
    dead: String,
}

impl SagaSql {
    pub(crate) fn new() -> Self {
        let key = "tenant_id = ?1 AND saga_type = ?2 AND saga_id = ?3";
        SagaSql {
            load: format!("SELECT {SAGA_COLUMNS} FROM sagas WHERE {key}"),
            insert: "INSERT INTO sagas (tenant_id, saga_type, saga_id, status, version, wake_at_ms, data, \
                 created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, saga_type, saga_id) DO NOTHING"
                .to_owned(),
            update: format!(
                "UPDATE sagas SET status = ?4, version = ?5, wake_at_ms = ?6, data = ?7, created_at_ms = ?8, \
                 updated_at_ms = ?9 WHERE {key} AND version = ?10"
            ),
            version: format!("SELECT version FROM sagas WHERE {key}"),
            due: "SELECT tenant_id, saga_type, saga_id FROM sagas WHERE wake_at_ms <= ? \
                 ORDER BY wake_at_ms, tenant_id, saga_type, saga_id LIMIT ?"
                .to_owned(),
            schedule: "INSERT INTO scheduled_commands (id, command_type, payload, due_at_ms, correlation_id, \
                 causation_id, tenant_id, principal, headers, attempts, last_error, created_at_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, id) DO UPDATE \
                 SET command_type = excluded.command_type, payload = excluded.payload, due_at_ms = excluded.due_at_ms, \
                 correlation_id = excluded.correlation_id, causation_id = excluded.causation_id, \
                 principal = excluded.principal, headers = excluded.headers, \
                 attempts = excluded.attempts, last_error = excluded.last_error, created_at_ms = excluded.created_at_ms, \
                 dead = 0, claimed_by = NULL, claimed_until_ms = NULL"
                .to_owned(),
            delete: "DELETE FROM scheduled_commands WHERE id = ? AND tenant_id = ?".to_owned(),
            get: format!("SELECT {SCHEDULED_COLUMNS} FROM scheduled_commands WHERE id = ? AND tenant_id = ?"),
            // The caller's clock decides what is due and which claims ran out.
            claim: format!(
                "UPDATE scheduled_commands SET claimed_by = ?1, claimed_until_ms = ?3 WHERE (tenant_id, id) IN (SELECT tenant_id, id \
                 FROM scheduled_commands WHERE dead = 0 AND due_at_ms <= ?2 \
                 AND (claimed_until_ms IS NULL OR claimed_until_ms <= ?2) ORDER BY due_at_ms, id LIMIT ?4) \
                 RETURNING {SCHEDULED_COLUMNS}"
            ),
            retry: "UPDATE scheduled_commands SET attempts = attempts + 1, last_error = ?2, due_at_ms = ?3, \
                 claimed_by = NULL, claimed_until_ms = NULL WHERE id = ?1 AND tenant_id = ?4"
                .to_owned(),
            kill: "UPDATE scheduled_commands SET attempts = attempts + 1, last_error = ?2, dead = 1, \
                 claimed_by = NULL, claimed_until_ms = NULL WHERE id = ?1 AND tenant_id = ?3"
                .to_owned(),
            dead: format!(
                "SELECT {SCHEDULED_COLUMNS} FROM scheduled_commands WHERE dead = 1 ORDER BY created_at_ms, id LIMIT ?"
            ),
        }
    }
}

impl TimeRow for SqliteRow {
    fn time(&self, index: usize) -> Result<Option<DateTime<Utc>>> {
        let ms: Option<i64> = self.try_get(index).map_err(store_err)?;
        ms.map(from_ms).transpose()
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

#[async_trait]
impl SagaStore for SqliteStore {
    async fn load(&self, key: &SagaKey) -> Result<Option<SagaRecord>> {
        let row = sqlx::query(&self.sql.saga.load)
            .bind(saga_tenant(key))
            .bind(&key.saga_type)
            .bind(&key.saga_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref().map(decode_saga).transpose()
    }

    async fn save(&self, record: &SagaRecord, expected_version: u64) -> Result<()> {
        check_saga(record)?;
        let key = &record.key;
        let sql = if expected_version == 0 { &self.sql.saga.insert } else { &self.sql.saga.update };
        let mut q = sqlx::query(sql)
            .bind(saga_tenant(key))
            .bind(&key.saga_type)
            .bind(&key.saga_id)
            .bind(record.status.as_str())
            .bind(to_i64(record.version, "saga version")?)
            .bind(record.wake_at.map(ms))
            .bind(&record.data)
            .bind(ms(record.created_at))
            .bind(ms(record.updated_at));
        if expected_version != 0 {
            q = q.bind(to_i64(expected_version, "saga version")?);
        }
        let done = q.execute(&self.pool).await.map_err(|e| write_err(e, || format!("saga `{key}`")))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let actual: Option<i64> = sqlx::query_scalar(&self.sql.saga.version)
            .bind(saga_tenant(key))
            .bind(&key.saga_type)
            .bind(&key.saga_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        saga_conflict(key, expected_version, actual)
    }

    async fn due(&self, now: DateTime<Utc>, max: usize) -> Result<Vec<SagaKey>> {
        let rows = sqlx::query(&self.sql.saga.due)
            .bind(ms(now))
            .bind(limit(max))
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter().map(decode_saga_key).collect()
    }

    async fn list(&self, saga_type: Option<&str>, statuses: &[SagaStatus], max: usize) -> Result<Vec<SagaRecord>> {
        let mut q: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new(format!("SELECT {SAGA_COLUMNS} FROM sagas WHERE 1 = 1"));
        if let Some(t) = saga_type {
            q.push(" AND saga_type = ").push_bind(t);
        }
        if !statuses.is_empty() {
            q.push(" AND status IN (");
            let mut list = q.separated(", ");
            for s in statuses {
                list.push_bind(s.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY created_at_ms, tenant_id, saga_type, saga_id LIMIT ").push_bind(limit(max));
        let rows = q.build().fetch_all(&self.pool).await.map_err(store_err)?;
        rows.iter().map(decode_saga).collect()
    }
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn schedule(&self, command: &ScheduledCommand) -> Result<()> {
        tenant_column(command.metadata.tenant_id.as_deref())?;
        check_scheduled(command)?;
        let m = MetadataColumns::of(&command.metadata);
        sqlx::query(&self.sql.saga.schedule)
            .bind(command.id)
            .bind(&command.command_type)
            .bind(&command.payload)
            .bind(ms(command.due_at))
            .bind(m.correlation_id)
            .bind(m.causation_id)
            .bind(m.tenant_id)
            .bind(m.principal)
            .bind(m.headers)
            .bind(to_i32(command.attempts, "attempts")?)
            .bind(&command.last_error)
            .bind(ms(command.created_at))
            .execute(&self.pool)
            .await
            .map_err(|e| write_err(e, || format!("scheduled command `{}`", command.id)))?;
        Ok(())
    }

    async fn cancel(&self, tenant: Option<&str>, id: Uuid) -> Result<bool> {
        let done = sqlx::query(&self.sql.saga.delete)
            .bind(id)
            .bind(tenant_column(tenant)?)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn get(&self, tenant: Option<&str>, id: Uuid) -> Result<Option<ScheduledCommand>> {
        let row = sqlx::query(&self.sql.saga.get)
            .bind(id)
            .bind(tenant_column(tenant)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref().map(decode_scheduled).transpose()
    }

    async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ScheduledCommand>> {
        let mut tx = Txn::begin(&self.pool, Some("BEGIN IMMEDIATE")).await?;
        let rows = match sqlx::query(&self.sql.saga.claim)
            .bind(worker)
            .bind(ms(now))
            .bind(ms(lease_until(now, lease)))
            .bind(limit(max))
            .fetch_all(&mut *tx)
            .await
        {
            Ok(rows) => rows,
            Err(e) => return tx.fail(store_err(e)).await,
        };
        tx.commit().await.map_err(store_err)?;
        let mut claimed = rows.iter().map(decode_scheduled).collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|c| (c.due_at, c.id));
        Ok(claimed)
    }

    async fn complete(&self, tenant: Option<&str>, id: Uuid) -> Result<()> {
        sqlx::query(&self.sql.saga.delete)
            .bind(id)
            .bind(tenant_column(tenant)?)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn retry_later(&self, tenant: Option<&str>, id: Uuid, error: &str, due_at: DateTime<Utc>) -> Result<()> {
        sqlx::query(&self.sql.saga.retry)
            .bind(id)
            .bind(lossy(error))
            .bind(ms(due_at))
            .bind(tenant_column(tenant)?)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn mark_dead(&self, tenant: Option<&str>, id: Uuid, error: &str) -> Result<()> {
        sqlx::query(&self.sql.saga.kill)
            .bind(id)
            .bind(lossy(error))
            .bind(tenant_column(tenant)?)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn dead(&self, max: usize) -> Result<Vec<ScheduledCommand>> {
        let rows = sqlx::query(&self.sql.saga.dead).bind(limit(max)).fetch_all(&self.pool).await.map_err(store_err)?;
        rows.iter().map(decode_scheduled).collect()
    }
}
