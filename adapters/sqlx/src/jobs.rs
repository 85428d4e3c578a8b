//! Background jobs: the `jobs` table, written by a commit with its events
//! ([`CommitBatch::jobs`](cqrs_ddd::ports::CommitBatch::jobs)) or alone, claimed with
//! `SKIP LOCKED` (PostgreSQL, MariaDB) or under SQLite's write lock. The caller's clock
//! decides what is due and which leases ran out; times are kept to the millisecond.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_ddd::ports::{
    Heartbeat, JobFilter, JobOutcome, JobProgress, JobRecord, JobStats, JobStatus, JobStore, NewJob, TenantScope,
    async_trait, swept,
};
use cqrs_ddd::{Error, Metadata, Result};
use uuid::Uuid;

use crate::common::{
    MetadataColumns, lease_until, limit, row_headers, store_err, tenant_column, tenant_from, to_i64, to_ms_precision,
};
use crate::dialect::{Dialect, at, at_opt};
use crate::exec::{SqlConn, Stmt, Value};
use crate::rows::Cols;
use crate::sql::{ROWS_PER_INSERT, with_list};
use crate::storable::{check_job, lossy};
use crate::store::SqlStore;

/// The columns of a job row.
const JOB_COLUMNS: &str = "id, tenant_id, job_type, payload::text AS payload, correlation_id, causation_id, \
    principal, headers::text AS headers, status, attempt::int8 AS attempt, max_attempts::int8 AS max_attempts, \
    run_at, lease_owner, lease_until, heartbeat_at, progress_total, progress_processed, result::text AS result, \
    error, (CASE WHEN cancel_requested THEN 1 ELSE 0 END)::int8 AS cancel_requested, created_at, updated_at";

/// The rendered statements of jobs.
pub(crate) struct JobStatements {
    insert: String,
    /// One statement that claims and returns rows (dialects with `RETURNING`), else the
    /// `SELECT` of the rows to claim.
    claim: String,
    beat: String,
    beat_progress: String,
    cancel_requested: String,
    finish: String,
    /// The update of the jobs whose lease ran out: of the ids `expired` selects, in one
    /// statement on dialects with `RETURNING`; else `AND id IN (..)` is appended with the
    /// ids `expired` found (MariaDB takes no `LIMIT` in such a subquery).
    sweep: String,
    /// The ids of running jobs whose lease ran out, oldest lease first.
    expired: String,
    stats: String,
    stats_tenant: String,
}

impl JobStatements {
    pub(crate) fn new<D: Dialect>(d: &D) -> Self {
        let r = |t: &str| d.render(t);
        let due = format!(
            "SELECT id FROM {{t}}jobs WHERE status = 'pending' AND run_at <= ? ORDER BY run_at, id LIMIT ?{}",
            D::SKIP_LOCKED
        );
        let expired = format!(
            "SELECT id FROM {{t}}jobs WHERE status = 'running' AND lease_until < ? ORDER BY lease_until, id LIMIT ?{}",
            D::SKIP_LOCKED
        );
        let sweep_set = "UPDATE {t}jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' \
             WHEN attempt >= max_attempts THEN 'failed' ELSE 'pending' END, \
             error = CASE WHEN cancel_requested THEN ? WHEN attempt >= max_attempts THEN ? ELSE ? END, \
             lease_owner = NULL, lease_until = NULL, run_at = ?, updated_at = ? \
             WHERE status = 'running' AND lease_until < ?";
        JobStatements {
            insert: r(
                "INSERT INTO {t}jobs (id, job_type, payload, correlation_id, causation_id, tenant_id, principal, \
                 headers, max_attempts, run_at, created_at, updated_at, status, attempt, progress_processed, \
                 cancel_requested) VALUES (?, ?, ?::json, ?, ?, ?, ?, ?::json, ?, ?, ?, ?, 'pending', 0, 0, false)",
            ),
            claim: r(&if D::RETURNING {
                format!(
                    "UPDATE {{t}}jobs SET status = 'running', attempt = attempt + 1, lease_owner = ?, \
                     lease_until = ?, heartbeat_at = ?, updated_at = ? WHERE status = 'pending' AND id IN ({due}) \
                     RETURNING {JOB_COLUMNS}"
                )
            } else {
                format!(
                    "SELECT {JOB_COLUMNS} FROM {{t}}jobs WHERE status = 'pending' AND run_at <= ? \
                     ORDER BY run_at, id LIMIT ?{}",
                    D::SKIP_LOCKED
                )
            }),
            beat: r("UPDATE {t}jobs SET lease_until = ?, heartbeat_at = ?, updated_at = ? \
                 WHERE id = ? AND status = 'running' AND lease_owner = ?"),
            beat_progress: r("UPDATE {t}jobs SET lease_until = ?, heartbeat_at = ?, updated_at = ?, \
                 progress_total = ?, progress_processed = ? WHERE id = ? AND status = 'running' AND lease_owner = ?"),
            cancel_requested: r(
                "SELECT (CASE WHEN cancel_requested THEN 1 ELSE 0 END)::int8 AS cancel_requested FROM {t}jobs WHERE id = ?",
            ),
            finish: r("UPDATE {t}jobs SET status = ?, result = ?::json, error = COALESCE(?, error), \
                 run_at = COALESCE(?, run_at), lease_owner = NULL, lease_until = NULL, updated_at = ? \
                 WHERE id = ? AND status = 'running' AND lease_owner = ?"),
            sweep: r(&if D::RETURNING { format!("{sweep_set} AND id IN ({expired})") } else { sweep_set.to_owned() }),
            expired: r(&expired),
            stats: r("SELECT status, count(*) AS n FROM {t}jobs GROUP BY status"),
            stats_tenant: r("SELECT status, count(*) AS n FROM {t}jobs WHERE tenant_id = ? GROUP BY status"),
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Inserts pending jobs on a connection (a commit's transaction, or one of their own).
    pub(crate) async fn insert_jobs(&self, conn: &mut D::Conn, jobs: &[NewJob]) -> Result<(), sqlx::Error> {
        for job in jobs {
            let m = MetadataColumns::of(&job.metadata);
            let created = to_ms_precision(job.created_at);
            let stmt = Stmt::new(&self.sql.jobs.insert)
                .uuid(job.id)
                .str(&job.job_type)
                .str(&job.payload)
                .arg(Value::OptUuid(m.correlation_id))
                .arg(Value::OptUuid(m.causation_id))
                .str(m.tenant_id)
                .arg(Value::OptStr(m.principal))
                .arg(Value::OptString(m.headers))
                .int(i64::from(job.max_attempts))
                .arg(at::<D>(job.run_at))
                .arg(at::<D>(created))
                .arg(at::<D>(created));
            conn.run(stmt).await?;
        }
        Ok(())
    }

    /// `sql` (ending in `id IN ({in})`, then the tenant condition of `scope` appended)
    /// over `ids` a chunk at a time, after the `first` arguments; rows changed.
    async fn update_jobs(
        &self,
        sql: &str,
        first: &[Value<'static>],
        scope: TenantScope<'_>,
        ids: &[Uuid],
    ) -> Result<u64> {
        let (tenant_sql, tenant) = tenant_condition(scope)?;
        let mut conn = self.conn().await?;
        let mut n = 0;
        for chunk in unique(ids).chunks(ROWS_PER_INSERT) {
            let sql = with_list(&self.dialect, &format!("{sql}{tenant_sql}"), "?", chunk.len());
            let mut stmt = Stmt::new(&sql);
            for v in first {
                stmt = stmt.arg(v.clone());
            }
            for id in chunk {
                stmt = stmt.uuid(*id);
            }
            if let Some(t) = tenant {
                stmt = stmt.str(t);
            }
            n += conn.run(stmt).await.map_err(store_err)?;
        }
        Ok(n)
    }
}

/// ` AND tenant_id = ?` and its argument for one tenant's scope; nothing for all.
fn tenant_condition(scope: TenantScope<'_>) -> Result<(&'static str, Option<&str>)> {
    match scope {
        TenantScope::All => Ok(("", None)),
        TenantScope::Only(t) => Ok((" AND tenant_id = ?", Some(tenant_column(t)?))),
    }
}

/// The sweep's statement with its first arguments: the errors it records, then `now`
/// as the new due time, the change time and the end of the leases that ran out.
fn sweep_stmt<D: Dialect>(sql: &str, now: DateTime<Utc>) -> Stmt<'_> {
    Stmt::new(sql)
        .str(swept::CANCELLED)
        .str(swept::FAILED)
        .str(swept::RETRIED)
        .arg(at::<D>(now))
        .arg(at::<D>(now))
        .arg(at::<D>(now))
}

/// `ids` without repeats, in their order.
fn unique(ids: &[Uuid]) -> Vec<Uuid> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

fn status_of(s: &str) -> Result<JobStatus> {
    JobStatus::ALL
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| Error::store(format!("unknown job status `{s}` in the jobs table")))
}

fn count_of<D: Dialect>(c: &Cols<'_, D>, col: &str) -> Result<u32> {
    let n = c.int(col).map_err(store_err)?;
    u32::try_from(n).map_err(|_| Error::store(format!("stored job {col} {n} is out of range")))
}

/// A job row ([`JOB_COLUMNS`]).
fn job<D: Dialect>(row: &D::Row) -> Result<JobRecord> {
    let c = Cols::<D>::of(row);
    let id = c.uuid("id").map_err(store_err)?;
    let total = c.int_opt("progress_total").map_err(store_err)?;
    Ok(JobRecord {
        id,
        job_type: c.text("job_type").map_err(store_err)?,
        payload: c.text("payload").map_err(store_err)?,
        metadata: Metadata {
            correlation_id: c.uuid_opt("correlation_id").map_err(store_err)?,
            causation_id: c.uuid_opt("causation_id").map_err(store_err)?,
            tenant_id: tenant_from(c.text("tenant_id").map_err(store_err)?),
            principal: c.text_opt("principal").map_err(store_err)?,
            headers: row_headers(c.text_opt("headers").map_err(store_err)?, || format!("job {id}"))?,
        },
        status: status_of(&c.text("status").map_err(store_err)?)?,
        attempt: count_of(&c, "attempt")?,
        max_attempts: count_of(&c, "max_attempts")?,
        run_at: c.at("run_at").map_err(store_err)?,
        lease_owner: c.text_opt("lease_owner").map_err(store_err)?,
        lease_until: c.at_opt("lease_until").map_err(store_err)?,
        heartbeat_at: c.at_opt("heartbeat_at").map_err(store_err)?,
        progress: JobProgress {
            total: total.map(|t| crate::common::to_u64(t, "job progress total")).transpose()?,
            processed: c.count("progress_processed", "job progress")?,
        },
        result: c.text_opt("result").map_err(store_err)?,
        error: c.text_opt("error").map_err(store_err)?,
        cancel_requested: c.int("cancel_requested").map_err(store_err)? != 0,
        created_at: c.at("created_at").map_err(store_err)?,
        updated_at: c.at("updated_at").map_err(store_err)?,
    })
}

#[async_trait]
impl<D: Dialect> JobStore for SqlStore<D> {
    async fn enqueue_jobs(&self, jobs: &[NewJob]) -> Result<()> {
        for j in jobs {
            tenant_column(j.metadata.tenant_id.as_deref())?;
            check_job(j)?;
        }
        let mut tx = self.begin_write().await?;
        match self.insert_jobs(&mut tx, jobs).await {
            Ok(()) => tx.commit().await.map_err(store_err),
            Err(e) => tx.fail(crate::storable::write_err(e, || "a job".to_owned())).await,
        }
    }

    async fn job(&self, scope: TenantScope<'_>, id: Uuid) -> Result<Option<JobRecord>> {
        let (tenant_sql, tenant) = tenant_condition(scope)?;
        let sql = self.dialect.render(&format!("SELECT {JOB_COLUMNS} FROM {{t}}jobs WHERE id = ?{tenant_sql}"));
        let mut stmt = Stmt::new(&sql).uuid(id);
        if let Some(t) = tenant {
            stmt = stmt.str(t);
        }
        let row = self.conn().await?.row(stmt).await.map_err(store_err)?;
        row.as_ref().map(job::<D>).transpose()
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<JobRecord>> {
        let now = to_ms_precision(now);
        let until = lease_until(now, lease);
        let mut tx = self.claimer().await?;
        let claimed: Result<Vec<JobRecord>> = async {
            if D::RETURNING {
                let stmt = Stmt::new(&self.sql.jobs.claim)
                    .str(worker)
                    .arg(at::<D>(until))
                    .arg(at::<D>(now))
                    .arg(at::<D>(now))
                    .arg(at::<D>(now))
                    .int(limit(max));
                return tx.rows(stmt).await.map_err(store_err)?.iter().map(job::<D>).collect();
            }
            let stmt = Stmt::new(&self.sql.jobs.claim).arg(at::<D>(now)).int(limit(max));
            let mut claimed: Vec<JobRecord> =
                tx.rows(stmt).await.map_err(store_err)?.iter().map(job::<D>).collect::<Result<_>>()?;
            if !claimed.is_empty() {
                let sql = with_list(
                    &self.dialect,
                    "UPDATE {t}jobs SET status = 'running', attempt = attempt + 1, lease_owner = ?, \
                     lease_until = ?, heartbeat_at = ?, updated_at = ? WHERE id IN ({in})",
                    "?",
                    claimed.len(),
                );
                let mut stmt = Stmt::new(&sql).str(worker).arg(at::<D>(until)).arg(at::<D>(now)).arg(at::<D>(now));
                for j in &claimed {
                    stmt = stmt.uuid(j.id);
                }
                tx.run(stmt).await.map_err(store_err)?;
                for j in &mut claimed {
                    j.status = JobStatus::Running;
                    j.attempt = j.attempt.saturating_add(1);
                    j.lease_owner = Some(worker.to_owned());
                    j.lease_until = Some(until);
                    j.heartbeat_at = Some(now);
                    j.updated_at = now;
                }
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
        claimed.sort_by_key(|j| (j.run_at, j.id));
        Ok(claimed)
    }

    async fn heartbeat_job(
        &self,
        id: Uuid,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        progress: Option<JobProgress>,
    ) -> Result<Heartbeat> {
        let now = to_ms_precision(now);
        let until = at::<D>(lease_until(now, lease));
        let stmt = match progress {
            None => Stmt::new(&self.sql.jobs.beat).arg(until).arg(at::<D>(now)).arg(at::<D>(now)),
            Some(p) => {
                let total = p.total.map(|t| to_i64(t, "job progress total")).transpose()?;
                Stmt::new(&self.sql.jobs.beat_progress)
                    .arg(until)
                    .arg(at::<D>(now))
                    .arg(at::<D>(now))
                    .arg(Value::OptInt(total))
                    .int(to_i64(p.processed, "job progress")?)
            }
        };
        let mut conn = self.conn().await?;
        if conn.run(stmt.uuid(id).str(worker)).await.map_err(store_err)? == 0 {
            return Ok(Heartbeat::Lost);
        }
        let row = conn.row(Stmt::new(&self.sql.jobs.cancel_requested).uuid(id)).await.map_err(store_err)?;
        let cancel_requested = match row {
            Some(r) => Cols::<D>::of(&r).int("cancel_requested").map_err(store_err)? != 0,
            None => return Ok(Heartbeat::Lost),
        };
        Ok(Heartbeat::Held { cancel_requested })
    }

    async fn finish_job(&self, id: Uuid, worker: &str, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<bool> {
        let (result, error, run_at) = match outcome {
            JobOutcome::Completed { result } => (Some(result.as_str()), None, None),
            JobOutcome::Retry { error, run_at } => (None, Some(error.as_str()), Some(*run_at)),
            JobOutcome::Failed { error } => (None, Some(error.as_str()), None),
            JobOutcome::Cancelled => (None, None, None),
        };
        if let Some(r) = result {
            crate::storable::check_json(r, || format!("the result of job {id}"))?;
        }
        let stmt = Stmt::new(&self.sql.jobs.finish)
            .str(outcome.status().as_str())
            .arg(Value::OptStr(result))
            .arg(Value::OptString(error.map(|e| lossy(e).into_owned())))
            .arg(at_opt::<D>(run_at.map(to_ms_precision)))
            .arg(at::<D>(to_ms_precision(now)))
            .uuid(id)
            .str(worker);
        Ok(self.conn().await?.run(stmt).await.map_err(store_err)? > 0)
    }

    async fn sweep_jobs(&self, now: DateTime<Utc>, max: usize) -> Result<u64> {
        let now = to_ms_precision(now);
        if D::RETURNING {
            let stmt = sweep_stmt::<D>(&self.sql.jobs.sweep, now).arg(at::<D>(now)).int(limit(max));
            return self.conn().await?.run(stmt).await.map_err(store_err);
        }
        let mut tx = self.begin_write().await?;
        let swept: Result<u64> = async {
            let stmt = Stmt::new(&self.sql.jobs.expired).arg(at::<D>(now)).int(limit(max));
            let ids: Vec<Uuid> = tx
                .rows(stmt)
                .await
                .map_err(store_err)?
                .iter()
                .map(|r| Cols::<D>::of(r).uuid("id").map_err(store_err))
                .collect::<Result<_>>()?;
            if ids.is_empty() {
                return Ok(0);
            }
            let sql = with_list(&self.dialect, &format!("{} AND id IN ({{in}})", self.sql.jobs.sweep), "?", ids.len());
            let mut stmt = sweep_stmt::<D>(&sql, now);
            for id in &ids {
                stmt = stmt.uuid(*id);
            }
            tx.run(stmt).await.map_err(store_err)
        }
        .await;
        match swept {
            Ok(n) => {
                tx.commit().await.map_err(store_err)?;
                Ok(n)
            }
            Err(e) => tx.fail(e).await,
        }
    }

    async fn list_jobs(&self, filter: &JobFilter<'_>) -> Result<Vec<JobRecord>> {
        let (tenant_sql, tenant) = tenant_condition(filter.tenant)?;
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM {{t}}jobs WHERE 1 = 1{tenant_sql}");
        if !filter.statuses.is_empty() {
            sql.push_str(" AND status IN ({in})");
        }
        if filter.job_type.is_some() {
            sql.push_str(" AND job_type = ?");
        }
        sql.push_str(" ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?");
        let sql = with_list(&self.dialect, &sql, "?", filter.statuses.len());
        let mut stmt = Stmt::new(&sql);
        if let Some(t) = tenant {
            stmt = stmt.str(t);
        }
        for s in filter.statuses {
            stmt = stmt.str(s.as_str());
        }
        if let Some(t) = filter.job_type {
            stmt = stmt.str(t);
        }
        let stmt = stmt.int(limit(filter.limit)).int(limit(filter.offset));
        let rows = self.conn().await?.rows(stmt).await.map_err(store_err)?;
        rows.iter().map(job::<D>).collect()
    }

    async fn job_stats(&self, scope: TenantScope<'_>) -> Result<JobStats> {
        let (_, tenant) = tenant_condition(scope)?;
        let stmt = match tenant {
            Some(t) => Stmt::new(&self.sql.jobs.stats_tenant).str(t),
            None => Stmt::new(&self.sql.jobs.stats),
        };
        let mut stats = JobStats::default();
        for r in self.conn().await?.rows(stmt).await.map_err(store_err)? {
            let c = Cols::<D>::of(&r);
            let status = status_of(&c.text("status").map_err(store_err)?)?;
            stats.add(status, c.count("n", "job count")?);
        }
        Ok(stats)
    }

    async fn cancel_jobs(&self, scope: TenantScope<'_>, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64> {
        let now = [at::<D>(to_ms_precision(now))];
        let pending = self
            .update_jobs(
                "UPDATE {t}jobs SET status = 'cancelled', updated_at = ? WHERE status = 'pending' AND id IN ({in})",
                &now,
                scope,
                ids,
            )
            .await?;
        let running = self
            .update_jobs(
                "UPDATE {t}jobs SET cancel_requested = true, updated_at = ? \
                 WHERE status = 'running' AND cancel_requested = false AND id IN ({in})",
                &now,
                scope,
                ids,
            )
            .await?;
        Ok(pending + running)
    }

    async fn retry_jobs(&self, scope: TenantScope<'_>, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64> {
        let now = at::<D>(to_ms_precision(now));
        self.update_jobs(
            "UPDATE {t}jobs SET status = 'pending', attempt = 0, cancel_requested = false, run_at = ?, updated_at = ? \
             WHERE status IN ('failed', 'cancelled') AND id IN ({in})",
            &[now.clone(), now],
            scope,
            ids,
        )
        .await
    }

    async fn purge_jobs(&self, scope: TenantScope<'_>, before: DateTime<Utc>) -> Result<u64> {
        let (tenant_sql, tenant) = tenant_condition(scope)?;
        let sql = self.dialect.render(&format!(
            "DELETE FROM {{t}}jobs WHERE status IN ('completed', 'cancelled') AND updated_at < ?{tenant_sql}"
        ));
        let mut stmt = Stmt::new(&sql).arg(at::<D>(to_ms_precision(before)));
        if let Some(t) = tenant {
            stmt = stmt.str(t);
        }
        self.conn().await?.run(stmt).await.map_err(store_err)
    }
}
