//! Ports for sagas, scheduled commands and time.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Metadata;
use crate::error::{Error, Result};

/// Names one saga instance: the tenant (if any), the saga type and the association value
/// (the order id of an order saga, a correlation id, ..).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SagaKey {
    /// The tenant that owns the instance; `None` in single-tenant applications.
    pub tenant_id: Option<String>,
    /// The saga type (`#[saga(name = ..)]`).
    pub saga_type: String,
    /// The association value.
    pub saga_id: String,
}

impl SagaKey {
    /// A key without tenant.
    pub fn new(saga_type: impl Into<String>, saga_id: impl Into<String>) -> Self {
        SagaKey { tenant_id: None, saga_type: saga_type.into(), saga_id: saga_id.into() }
    }

    /// The same key scoped to `tenant`.
    pub fn with_tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant_id = tenant;
        self
    }
}

impl fmt::Display for SagaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.tenant_id {
            write!(f, "{t}/")?;
        }
        write!(f, "saga:{}/{}", self.saga_type, self.saga_id)
    }
}

/// Where a saga instance stands.
///
/// `Pending` (created, its first step not yet recorded) → `Running` → `Completed`, or
/// `Suspended` (waiting for an event, with a timeout) and back to `Running`, or on a
/// failure `Compensating` → `Compensated` (every compensation sent) or `Failed` (a
/// compensation failed; the error is recorded). A saga that fails with nothing to
/// compensate (no command of it was handled yet) goes straight to `Failed`, the reason
/// recorded too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Created; nothing recorded yet.
    Pending,
    /// Reacting to events and sending commands.
    Running,
    /// Finished successfully.
    Completed,
    /// Waiting for an event; fails when its timeout passes first.
    Suspended,
    /// Sending compensations after a failure.
    Compensating,
    /// Every compensation was sent.
    Compensated,
    /// A compensation failed, or the saga failed with nothing to compensate.
    Failed,
}

impl SagaStatus {
    /// Every status.
    pub const ALL: [SagaStatus; 7] = [
        SagaStatus::Pending,
        SagaStatus::Running,
        SagaStatus::Completed,
        SagaStatus::Suspended,
        SagaStatus::Compensating,
        SagaStatus::Compensated,
        SagaStatus::Failed,
    ];
    /// The statuses of instances still at work.
    pub const ACTIVE: [SagaStatus; 4] =
        [SagaStatus::Pending, SagaStatus::Running, SagaStatus::Suspended, SagaStatus::Compensating];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Pending => "pending",
            SagaStatus::Running => "running",
            SagaStatus::Completed => "completed",
            SagaStatus::Suspended => "suspended",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Compensated => "compensated",
            SagaStatus::Failed => "failed",
        }
    }

    /// Whether the instance has finished (completed, compensated or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed)
    }
}

impl fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SagaStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        SagaStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::store(format!("unknown saga status `{s}` in the saga store")))
    }
}

/// A saga instance as stored: the key, the status and version stores query on, and the
/// rest as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaRecord {
    /// Which instance.
    pub key: SagaKey,
    /// Where it stands.
    pub status: SagaStatus,
    /// 1 on insert, incremented by every save (optimistic concurrency).
    pub version: u64,
    /// When the recovery worker should look at it again (a command to re-send), if ever.
    pub wake_at: Option<DateTime<Utc>>,
    /// Everything else (the saga's own state, commands, compensations) as JSON text.
    pub data: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last saved.
    pub updated_at: DateTime<Utc>,
}

/// Where saga instances are kept.
#[async_trait]
pub trait SagaStore: Send + Sync + 'static {
    /// The instance behind `key`, if any.
    async fn load(&self, key: &SagaKey) -> Result<Option<SagaRecord>>;
    /// Writes `record` if the stored instance is at `expected_version` (0: there is none
    /// yet), else fails with [`Error::Conflict`]. `record.version` is `expected_version + 1`.
    async fn save(&self, record: &SagaRecord, expected_version: u64) -> Result<()>;
    /// Saves `record` like [`SagaStore::save`] and writes `deadlines` into the schedule
    /// in the same transaction, when this store keeps the schedule too (the SQL stores,
    /// and [`crate::MemoryStore::saga_store`]): `Ok(true)`. `Ok(false)` (the default),
    /// having written nothing, when it does not: the saga runtime then schedules through
    /// the schedule store before saving and cancels after, and a fired deadline the
    /// saved instance does not know is ignored.
    async fn save_with_deadlines(
        &self,
        record: &SagaRecord,
        expected_version: u64,
        deadlines: &[super::DeadlineWrite],
    ) -> Result<bool> {
        let _ = (record, expected_version, deadlines);
        Ok(false)
    }
    /// Up to `limit` instances whose `wake_at` is at or before `now`, earliest first.
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<SagaKey>>;
    /// The instances `filter` selects, oldest first.
    async fn list(&self, filter: &SagaFilter<'_>) -> Result<Vec<SagaRecord>>;
}

/// Which saga instances [`SagaStore::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SagaFilter<'a> {
    /// Of this saga type only (any when `None`).
    pub saga_type: Option<&'a str>,
    /// In one of these statuses (any when empty).
    pub statuses: &'a [SagaStatus],
    /// Of these tenants.
    pub tenant: super::TenantScope<'a>,
    /// At most this many.
    pub limit: usize,
}

impl Default for SagaFilter<'_> {
    /// Every instance, at most 100.
    fn default() -> Self {
        SagaFilter { saga_type: None, statuses: &[], tenant: super::TenantScope::All, limit: 100 }
    }
}

impl SagaFilter<'_> {
    /// Whether `record` is one it selects (the limit aside).
    pub fn admits(&self, record: &SagaRecord) -> bool {
        self.saga_type.is_none_or(|t| record.key.saga_type == t)
            && (self.statuses.is_empty() || self.statuses.contains(&record.status))
            && self.tenant.admits(record.key.tenant_id.as_deref())
    }
}

/// A command to send at a given time, kept until it has been sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledCommand {
    /// Its id: scheduling again with the same id replaces it; cancel by id.
    pub id: Uuid,
    /// The command's stable name (or an internal target such as a saga deadline).
    pub command_type: String,
    /// The command as JSON text.
    pub payload: String,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Correlation, tenant, principal and headers to send it with.
    pub metadata: Metadata,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was scheduled.
    pub created_at: DateTime<Utc>,
}

/// Where scheduled commands wait.
#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// Stores `command`; one with the same id in the same tenant (its metadata's) is
    /// replaced (attempts, claim and dead mark reset). Ids are per tenant: tenant B may
    /// schedule under an id tenant A uses.
    async fn schedule(&self, command: &ScheduledCommand) -> Result<()>;
    /// Removes a scheduled command of `tenant` that has not been sent; whether there was one.
    async fn cancel(&self, tenant: Option<&str>, id: Uuid) -> Result<bool>;
    /// The scheduled (or dead) command of `tenant` with this id.
    async fn get(&self, tenant: Option<&str>, id: Uuid) -> Result<Option<ScheduledCommand>>;
    /// Claims up to `limit` commands due at `now`, earliest first, for `lease`: not
    /// dead and not claimed by a worker whose claim is still live. Two workers never
    /// hold a claim on one command at once (`SKIP LOCKED` on Postgres).
    async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ScheduledCommand>>;
    /// Deletes a command that was sent.
    async fn complete(&self, tenant: Option<&str>, id: Uuid) -> Result<()>;
    /// Records a failed attempt; the command is due again at `due_at`, unclaimed.
    async fn retry_later(&self, tenant: Option<&str>, id: Uuid, error: &str, due_at: DateTime<Utc>) -> Result<()>;
    /// Records a last failed attempt: the command stays, dead, until [`ScheduleStore::schedule`]
    /// replaces it or it is cancelled.
    async fn mark_dead(&self, tenant: Option<&str>, id: Uuid, error: &str) -> Result<()>;
    /// Up to `limit` dead commands, oldest first.
    async fn dead(&self, limit: usize) -> Result<Vec<ScheduledCommand>>;
    /// Up to `limit` commands of the tenants in `scope` that wait to be sent (`dead`:
    /// that gave up), earliest due first (then by id and tenant).
    async fn scheduled(&self, scope: super::TenantScope<'_>, dead: bool, limit: usize)
    -> Result<Vec<ScheduledCommand>>;
}

/// The time, for everything that waits (saga timeouts, schedules, retries).
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// `now + by`, saturating at the end of time instead of overflowing.
pub(crate) fn after(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
