//! In-memory saga store, schedule store and a clock tests can move.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ports::{
    Clock, DeadlineWrite, SagaFilter, SagaKey, SagaRecord, SagaStore, ScheduleStore, ScheduledCommand, TenantScope,
    async_trait, check_tenant,
};

/// Saga instances in memory. Cheap to clone; clones share the instances.
#[derive(Clone, Default)]
pub struct MemorySagaStore {
    rows: Arc<RwLock<HashMap<SagaKey, SagaRecord>>>,
    /// The schedule its saves write saga deadlines into, atomically, if any.
    schedule: Option<MemoryScheduleStore>,
}

impl MemorySagaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose saves write the saga's deadlines into `schedule` with the
    /// instance, atomically ([`SagaStore::save_with_deadlines`]).
    pub fn with_schedule(schedule: MemoryScheduleStore) -> Self {
        MemorySagaStore { rows: Arc::default(), schedule: Some(schedule) }
    }

    fn save_now(&self, record: &SagaRecord, expected_version: u64) -> Result<()> {
        let mut rows = self.rows.write();
        let actual = rows.get(&record.key).map_or(0, |r| r.version);
        if actual != expected_version {
            return Err(Error::Conflict { stream: record.key.to_string(), expected: expected_version, actual });
        }
        crate::ports::check_tenant(record.key.tenant_id.as_deref())?;
        // Millisecond precision, as on every SQL store.
        let mut record = record.clone();
        record.wake_at = record.wake_at.map(to_ms_precision);
        record.created_at = to_ms_precision(record.created_at);
        record.updated_at = to_ms_precision(record.updated_at);
        rows.insert(record.key.clone(), record);
        Ok(())
    }
}

#[async_trait]
impl SagaStore for MemorySagaStore {
    async fn load(&self, key: &SagaKey) -> Result<Option<SagaRecord>> {
        Ok(self.rows.read().get(key).cloned())
    }

    async fn save(&self, record: &SagaRecord, expected_version: u64) -> Result<()> {
        self.save_now(record, expected_version)
    }

    async fn save_with_deadlines(
        &self,
        record: &SagaRecord,
        expected_version: u64,
        deadlines: &[DeadlineWrite],
    ) -> Result<bool> {
        let Some(schedule) = &self.schedule else { return Ok(false) };
        deadlines.iter().try_for_each(|d| check_tenant(d.tenant_id()))?;
        schedule.commit_with(deadlines, || self.save_now(record, expected_version))?;
        Ok(true)
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<SagaKey>> {
        let rows = self.rows.read();
        let mut due: Vec<_> =
            rows.values().filter_map(|r| r.wake_at.filter(|w| *w <= now).map(|w| (w, r.key.clone()))).collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, k)| k).collect())
    }

    async fn list(&self, filter: &SagaFilter<'_>) -> Result<Vec<SagaRecord>> {
        filter.tenant.check()?;
        let rows = self.rows.read();
        let mut found: Vec<_> = rows.values().filter(|r| filter.admits(r)).cloned().collect();
        found.sort_by(|a, b| (a.created_at, &a.key).cmp(&(b.created_at, &b.key)));
        found.truncate(filter.limit);
        Ok(found)
    }
}

struct Row {
    command: ScheduledCommand,
    claimed_until: Option<DateTime<Utc>>,
    dead: bool,
}

/// Scheduled commands in memory. Cheap to clone; clones share the commands.
#[derive(Clone, Default)]
pub struct MemoryScheduleStore {
    /// Keyed by tenant and id.
    rows: Arc<Mutex<HashMap<ScheduleKey, Row>>>,
}

impl MemoryScheduleStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the deadlines of a commit, in order, all or none: a
    /// [`DeadlineWrite::Fire`] whose command is gone or was scheduled again refuses them
    /// all with [`Error::Conflict`]. `write` runs between the checks and the writes, with
    /// the schedule locked (the rest of the commit, so that both land together).
    pub(crate) fn commit_with<R>(&self, writes: &[DeadlineWrite], write: impl FnOnce() -> Result<R>) -> Result<R> {
        let mut rows = self.rows.lock();
        for w in writes {
            if let DeadlineWrite::Fire { tenant_id, id, scheduled_by } = w {
                let live = rows
                    .get(&(tenant_id.clone(), *id))
                    .is_some_and(|r| r.command.metadata.causation_id == *scheduled_by);
                if !live {
                    return Err(w.fire_conflict());
                }
            }
        }
        let out = write()?;
        for w in writes {
            match w {
                DeadlineWrite::Schedule(command) => {
                    let mut command = command.clone();
                    command.due_at = to_ms_precision(command.due_at);
                    command.created_at = to_ms_precision(command.created_at);
                    let key = (command.metadata.tenant_id.clone(), command.id);
                    rows.insert(key, Row { command, claimed_until: None, dead: false });
                }
                DeadlineWrite::Cancel { tenant_id, id } | DeadlineWrite::Fire { tenant_id, id, .. } => {
                    rows.remove(&(tenant_id.clone(), *id));
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ScheduleStore for MemoryScheduleStore {
    async fn schedule(&self, command: &ScheduledCommand) -> Result<()> {
        check_tenant(command.metadata.tenant_id.as_deref())?;
        let key = (command.metadata.tenant_id.clone(), command.id);
        self.rows.lock().insert(key, Row { command: command.clone(), claimed_until: None, dead: false });
        Ok(())
    }

    async fn cancel(&self, tenant: Option<&str>, id: Uuid) -> Result<bool> {
        Ok(self.rows.lock().remove(&key(tenant, id)?).is_some())
    }

    async fn get(&self, tenant: Option<&str>, id: Uuid) -> Result<Option<ScheduledCommand>> {
        Ok(self.rows.lock().get(&key(tenant, id)?).map(|r| r.command.clone()))
    }

    async fn claim_due(
        &self,
        _worker: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ScheduledCommand>> {
        let mut rows = self.rows.lock();
        let mut due: Vec<_> = rows
            .values()
            .filter(|r| !r.dead && r.command.due_at <= now && r.claimed_until.is_none_or(|c| c <= now))
            .map(|r| (r.command.due_at, r.command.id, r.command.metadata.tenant_id.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        let until = chrono::Duration::from_std(lease)
            .ok()
            .and_then(|l| now.checked_add_signed(l))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Ok(due
            .into_iter()
            .filter_map(|(_, id, tenant)| {
                let row = rows.get_mut(&(tenant, id))?;
                row.claimed_until = Some(until);
                Some(row.command.clone())
            })
            .collect())
    }

    async fn complete(&self, tenant: Option<&str>, id: Uuid) -> Result<()> {
        self.rows.lock().remove(&key(tenant, id)?);
        Ok(())
    }

    async fn retry_later(&self, tenant: Option<&str>, id: Uuid, error: &str, due_at: DateTime<Utc>) -> Result<()> {
        if let Some(row) = self.rows.lock().get_mut(&key(tenant, id)?) {
            row.command.attempts += 1;
            row.command.last_error = Some(error.to_owned());
            row.command.due_at = due_at;
            row.claimed_until = None;
        }
        Ok(())
    }

    async fn mark_dead(&self, tenant: Option<&str>, id: Uuid, error: &str) -> Result<()> {
        if let Some(row) = self.rows.lock().get_mut(&key(tenant, id)?) {
            row.command.attempts += 1;
            row.command.last_error = Some(error.to_owned());
            row.claimed_until = None;
            row.dead = true;
        }
        Ok(())
    }

    async fn dead(&self, limit: usize) -> Result<Vec<ScheduledCommand>> {
        let rows = self.rows.lock();
        let mut dead: Vec<_> = rows.values().filter(|r| r.dead).map(|r| r.command.clone()).collect();
        dead.sort_by_key(|c| (c.created_at, c.id));
        dead.truncate(limit);
        Ok(dead)
    }

    async fn scheduled(&self, scope: TenantScope<'_>, dead: bool, limit: usize) -> Result<Vec<ScheduledCommand>> {
        scope.check()?;
        let rows = self.rows.lock();
        let mut found: Vec<_> = rows
            .values()
            .filter(|r| r.dead == dead && scope.admits(r.command.metadata.tenant_id.as_deref()))
            .map(|r| r.command.clone())
            .collect();
        found.sort_by(|a, b| (a.due_at, a.id, &a.metadata.tenant_id).cmp(&(b.due_at, b.id, &b.metadata.tenant_id)));
        found.truncate(limit);
        Ok(found)
    }
}

/// A time truncated to whole milliseconds (what every store keeps).
fn to_ms_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// A scheduled command's tenant and id.
type ScheduleKey = (Option<String>, Uuid);

/// The key of a scheduled command: its tenant and id.
fn key(tenant: Option<&str>, id: Uuid) -> Result<ScheduleKey> {
    check_tenant(tenant)?;
    Ok((tenant.map(str::to_owned), id))
}

/// A clock that stands still until moved: for tests of timeouts and schedules.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock { now: Arc::new(Mutex::new(start)) }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        *now = crate::ports::after(*now, by);
    }

    /// Sets the time.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock() = to;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(Utc::now())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }
}
