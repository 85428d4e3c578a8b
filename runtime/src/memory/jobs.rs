//! The background jobs of a [`MemoryStore`]: kept beside its events, so a commit writes
//! a command's jobs with its events or not at all.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::error::Result;
use crate::ports::{
    Heartbeat, JobFilter, JobOutcome, JobProgress, JobRecord, JobStats, JobStatus, JobStore, NewJob, TenantScope,
    after, check_tenant, swept,
};

/// A time truncated to whole milliseconds (what every store keeps).
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

impl MemoryStore {
    /// Every job, oldest first (tests and examples).
    pub fn job_records(&self) -> Vec<JobRecord> {
        self.inner.read().jobs.values().cloned().collect()
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn enqueue_jobs(&self, jobs: &[NewJob]) -> Result<()> {
        for job in jobs {
            check_tenant(job.metadata.tenant_id.as_deref())?;
        }
        let mut inner = self.inner.write();
        for job in jobs {
            inner.jobs.insert(job.id, pending(job));
        }
        Ok(())
    }

    async fn job(&self, scope: TenantScope<'_>, id: Uuid) -> Result<Option<JobRecord>> {
        scope.check()?;
        let inner = self.inner.read();
        Ok(inner.jobs.get(&id).filter(|j| scope.admits(j.metadata.tenant_id.as_deref())).cloned())
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<JobRecord>> {
        let now = ms(now);
        let mut inner = self.inner.write();
        let mut due: Vec<(DateTime<Utc>, Uuid)> = inner
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Pending && j.run_at <= now)
            .map(|j| (j.run_at, j.id))
            .collect();
        due.sort();
        due.truncate(limit);
        let until = ms(after(now, lease));
        Ok(due
            .into_iter()
            .filter_map(|(_, id)| {
                let job = inner.jobs.get_mut(&id)?;
                job.status = JobStatus::Running;
                job.attempt = job.attempt.saturating_add(1);
                job.lease_owner = Some(worker.to_owned());
                job.lease_until = Some(until);
                job.heartbeat_at = Some(now);
                job.updated_at = now;
                Some(job.clone())
            })
            .collect())
    }

    async fn heartbeat_job(
        &self,
        id: Uuid,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        progress: Option<JobProgress>,
    ) -> Result<Heartbeat> {
        let now = ms(now);
        let mut inner = self.inner.write();
        let Some(job) = inner.jobs.get_mut(&id).filter(|j| held(j, worker)) else { return Ok(Heartbeat::Lost) };
        job.lease_until = Some(ms(after(now, lease)));
        job.heartbeat_at = Some(now);
        job.updated_at = now;
        if let Some(p) = progress {
            job.progress = p;
        }
        Ok(Heartbeat::Held { cancel_requested: job.cancel_requested })
    }

    async fn finish_job(&self, id: Uuid, worker: &str, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<bool> {
        let now = ms(now);
        let mut inner = self.inner.write();
        let Some(job) = inner.jobs.get_mut(&id).filter(|j| held(j, worker)) else { return Ok(false) };
        job.status = outcome.status();
        job.lease_owner = None;
        job.lease_until = None;
        job.updated_at = now;
        match outcome {
            JobOutcome::Completed { result } => job.result = Some(result.clone()),
            JobOutcome::Retry { error, run_at } => {
                job.error = Some(error.clone());
                job.run_at = ms(*run_at);
            }
            JobOutcome::Failed { error } => job.error = Some(error.clone()),
            JobOutcome::Cancelled => {}
        }
        Ok(true)
    }

    async fn sweep_jobs(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        let now = ms(now);
        let mut inner = self.inner.write();
        let mut swept: usize = 0;
        for job in inner.jobs.values_mut() {
            if swept >= limit {
                break;
            }
            if job.status != JobStatus::Running || job.lease_until.is_none_or(|until| until >= now) {
                continue;
            }
            let (status, error) = expired(job.cancel_requested, job.attempt, job.max_attempts);
            job.status = status;
            job.error = Some(error.to_owned());
            job.lease_owner = None;
            job.lease_until = None;
            job.run_at = now;
            job.updated_at = now;
            swept += 1;
        }
        Ok(u64::try_from(swept).unwrap_or(u64::MAX))
    }

    async fn list_jobs(&self, filter: &JobFilter<'_>) -> Result<Vec<JobRecord>> {
        filter.tenant.check()?;
        let inner = self.inner.read();
        let mut found: Vec<&JobRecord> = inner.jobs.values().filter(|j| filter.admits(j)).collect();
        found.sort_by_key(|j| std::cmp::Reverse((j.updated_at, j.id)));
        Ok(found.into_iter().skip(filter.offset).take(filter.limit).cloned().collect())
    }

    async fn job_stats(&self, scope: TenantScope<'_>) -> Result<JobStats> {
        scope.check()?;
        let inner = self.inner.read();
        let mut stats = JobStats::default();
        for job in inner.jobs.values().filter(|j| scope.admits(j.metadata.tenant_id.as_deref())) {
            stats.add(job.status, 1);
        }
        Ok(stats)
    }

    async fn cancel_jobs(&self, scope: TenantScope<'_>, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64> {
        scope.check()?;
        let now = ms(now);
        let mut inner = self.inner.write();
        let mut done = 0;
        for id in unique(ids) {
            let Some(job) = inner.jobs.get_mut(&id).filter(|j| scope.admits(j.metadata.tenant_id.as_deref())) else {
                continue;
            };
            match job.status {
                JobStatus::Pending => job.status = JobStatus::Cancelled,
                JobStatus::Running if !job.cancel_requested => job.cancel_requested = true,
                _ => continue,
            }
            job.updated_at = now;
            done += 1;
        }
        Ok(done)
    }

    async fn retry_jobs(&self, scope: TenantScope<'_>, ids: &[Uuid], now: DateTime<Utc>) -> Result<u64> {
        scope.check()?;
        let now = ms(now);
        let mut inner = self.inner.write();
        let mut done = 0;
        for id in unique(ids) {
            let Some(job) = inner.jobs.get_mut(&id).filter(|j| {
                scope.admits(j.metadata.tenant_id.as_deref())
                    && matches!(j.status, JobStatus::Failed | JobStatus::Cancelled)
            }) else {
                continue;
            };
            job.status = JobStatus::Pending;
            job.attempt = 0;
            job.cancel_requested = false;
            job.run_at = now;
            job.updated_at = now;
            done += 1;
        }
        Ok(done)
    }

    async fn purge_jobs(&self, scope: TenantScope<'_>, before: DateTime<Utc>) -> Result<u64> {
        scope.check()?;
        let before = ms(before);
        let mut inner = self.inner.write();
        let n = inner.jobs.len();
        inner.jobs.retain(|_, j| {
            !(matches!(j.status, JobStatus::Completed | JobStatus::Cancelled)
                && j.updated_at < before
                && scope.admits(j.metadata.tenant_id.as_deref()))
        });
        Ok((n - inner.jobs.len()) as u64)
    }
}

/// A new job as stored: pending, its times to the millisecond (what every store keeps).
pub(super) fn pending(job: &NewJob) -> JobRecord {
    let mut record = JobRecord::pending(job);
    record.run_at = ms(record.run_at);
    record.created_at = ms(record.created_at);
    record.updated_at = record.created_at;
    record
}

/// Whether `worker` holds the running job.
fn held(job: &JobRecord, worker: &str) -> bool {
    job.status == JobStatus::Running && job.lease_owner.as_deref() == Some(worker)
}

/// Where a running job whose lease ran out goes, and the error it records: cancelled
/// when a cancel was requested, failed after its last attempt, else pending again.
fn expired(cancel_requested: bool, attempt: u32, max_attempts: u32) -> (JobStatus, &'static str) {
    if cancel_requested {
        (JobStatus::Cancelled, swept::CANCELLED)
    } else if attempt >= max_attempts {
        (JobStatus::Failed, swept::FAILED)
    } else {
        (JobStatus::Pending, swept::RETRIED)
    }
}

/// `ids` without repeats, in their order.
fn unique(ids: &[Uuid]) -> Vec<Uuid> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}
