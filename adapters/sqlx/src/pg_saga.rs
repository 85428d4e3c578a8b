//! Sagas and scheduled commands on PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::Result;
use cqrs_ddd::ports::{SagaKey, SagaRecord, SagaStatus, SagaStore, ScheduleStore, ScheduledCommand, async_trait};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::common::{
    MetadataColumns, TimeRow, decode_saga, decode_saga_key, decode_scheduled, lease_until, limit, saga_conflict,
    saga_tenant, store_err, tenant_column, to_i32, to_i64, to_ms_precision,
};
use crate::postgres::PgStore;
use crate::storable::{check_saga, check_scheduled, lossy, write_err};

const SAGA_COLUMNS: &str =
    "tenant_id, saga_type, saga_id, status, version, wake_at, data::text, created_at, updated_at";
const SCHEDULED_COLUMNS: &str = "id, command_type, payload::text, due_at, correlation_id, causation_id, tenant_id, \
    principal, headers::text, attempts, last_error, created_at";

pub(crate) struct SagaSql {
    load: String,
    insert: String,
    update: String,
    version: String,
    due: String,
    list: String,
    schedule: String,
    cancel: String,
    get: String,
    claim: String,
    retry: String,
    kill: String,
    dead: String,
}

impl SagaSql {
    pub(crate) fn new(s: &str) -> Self {
        let key = "tenant_id = $1 AND saga_type = $2 AND saga_id = $3";
        SagaSql {
            load: format!("SELECT {SAGA_COLUMNS} FROM {s}.sagas WHERE {key}"),
            insert: format!(
                "INSERT INTO {s}.sagas (tenant_id, saga_type, saga_id, status, version, wake_at, data, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8, $9) \
                 ON CONFLICT (tenant_id, saga_type, saga_id) DO NOTHING"
            ),
            update: format!(
                "UPDATE {s}.sagas SET status = $4, version = $5, wake_at = $6, data = $7::json, created_at = $8, \
                 updated_at = $9 WHERE {key} AND version = $10"
            ),
            version: format!("SELECT version FROM {s}.sagas WHERE {key}"),
            due: format!(
                "SELECT tenant_id, saga_type, saga_id FROM {s}.sagas WHERE wake_at <= $1 \
                 ORDER BY wake_at, tenant_id, saga_type, saga_id LIMIT $2"
            ),
            list: format!(
                "SELECT {SAGA_COLUMNS} FROM {s}.sagas WHERE ($1::text IS NULL OR saga_type = $1) \
                 AND (cardinality($2::text[]) = 0 OR status = ANY($2)) \
                 ORDER BY created_at, tenant_id, saga_type, saga_id LIMIT $3"
            ),
            schedule: format!(
                "INSERT INTO {s}.scheduled_commands (id, command_type, payload, due_at, correlation_id, causation_id, \
                 tenant_id, principal, headers, attempts, last_error, created_at) \
                 VALUES ($1, $2, $3::json, $4, $5, $6, $7, $8, $9::json, $10, $11, $12) ON CONFLICT (tenant_id, id) DO UPDATE \
                 SET command_type = EXCLUDED.command_type, payload = EXCLUDED.payload, due_at = EXCLUDED.due_at, \
                 correlation_id = EXCLUDED.correlation_id, causation_id = EXCLUDED.causation_id, \
                 principal = EXCLUDED.principal, headers = EXCLUDED.headers, \
                 attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error, created_at = EXCLUDED.created_at, \
                 dead = false, claimed_by = NULL, claimed_until = NULL"
            ),
            cancel: format!("DELETE FROM {s}.scheduled_commands WHERE id = $1 AND tenant_id = $2"),
            get: format!("SELECT {SCHEDULED_COLUMNS} FROM {s}.scheduled_commands WHERE id = $1 AND tenant_id = $2"),
            // The caller's clock, not the server's, decides what is due and which claims
            // ran out; SKIP LOCKED lets concurrent workers take disjoint rows.
            claim: format!(
                "UPDATE {s}.scheduled_commands SET claimed_by = $1, claimed_until = $3 WHERE (tenant_id, id) IN (SELECT tenant_id, id \
                 FROM {s}.scheduled_commands WHERE NOT dead AND due_at <= $2 \
                 AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY due_at, id LIMIT $4 \
                 FOR UPDATE SKIP LOCKED) RETURNING {SCHEDULED_COLUMNS}"
            ),
            retry: format!(
                "UPDATE {s}.scheduled_commands SET attempts = attempts + 1, last_error = $2, due_at = $3, \
                 claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND tenant_id = $4"
            ),
            kill: format!(
                "UPDATE {s}.scheduled_commands SET attempts = attempts + 1, last_error = $2, dead = true, \
                 claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND tenant_id = $3"
            ),
            dead: format!(
                "SELECT {SCHEDULED_COLUMNS} FROM {s}.scheduled_commands WHERE dead ORDER BY created_at, id LIMIT $1"
            ),
        }
    }
}

impl TimeRow for PgRow {
    fn time(&self, index: usize) -> Result<Option<DateTime<Utc>>> {
        self.try_get(index).map_err(store_err)
    }
}

#[async_trait]
impl SagaStore for PgStore {
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
            .bind(record.wake_at.map(to_ms_precision))
            .bind(&record.data)
            .bind(to_ms_precision(record.created_at))
            .bind(to_ms_precision(record.updated_at));
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
            .bind(to_ms_precision(now))
            .bind(limit(max))
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter().map(decode_saga_key).collect()
    }

    async fn list(&self, saga_type: Option<&str>, statuses: &[SagaStatus], max: usize) -> Result<Vec<SagaRecord>> {
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query(&self.sql.saga.list)
            .bind(saga_type)
            .bind(statuses)
            .bind(limit(max))
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter().map(decode_saga).collect()
    }
}

#[async_trait]
impl ScheduleStore for PgStore {
    async fn schedule(&self, command: &ScheduledCommand) -> Result<()> {
        tenant_column(command.metadata.tenant_id.as_deref())?;
        check_scheduled(command)?;
        let m = MetadataColumns::of(&command.metadata);
        sqlx::query(&self.sql.saga.schedule)
            .bind(command.id)
            .bind(&command.command_type)
            .bind(&command.payload)
            .bind(to_ms_precision(command.due_at))
            .bind(m.correlation_id)
            .bind(m.causation_id)
            .bind(m.tenant_id)
            .bind(m.principal)
            .bind(m.headers)
            .bind(to_i32(command.attempts, "attempts")?)
            .bind(&command.last_error)
            .bind(to_ms_precision(command.created_at))
            .execute(&self.pool)
            .await
            .map_err(|e| write_err(e, || format!("scheduled command `{}`", command.id)))?;
        Ok(())
    }

    async fn cancel(&self, tenant: Option<&str>, id: Uuid) -> Result<bool> {
        let done = sqlx::query(&self.sql.saga.cancel)
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
        let rows = sqlx::query(&self.sql.saga.claim)
            .bind(worker)
            .bind(to_ms_precision(now))
            .bind(to_ms_precision(lease_until(now, lease)))
            .bind(limit(max))
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        let mut claimed = rows.iter().map(decode_scheduled).collect::<Result<Vec<_>>>()?;
        // RETURNING order is not guaranteed.
        claimed.sort_by_key(|c| (c.due_at, c.id));
        Ok(claimed)
    }

    async fn complete(&self, tenant: Option<&str>, id: Uuid) -> Result<()> {
        sqlx::query(&self.sql.saga.cancel)
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
            .bind(to_ms_precision(due_at))
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
