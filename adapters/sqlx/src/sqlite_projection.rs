//! Projections on SQLite: checkpoints, leases, dead letters and the document store, with
//! the read model written in the checkpoint's transaction.

use std::any::Any;
use std::time::Duration;

use cqrs_ddd::Result;
use cqrs_ddd::ports::{Cursor, DeadLetter, Document, ProjectionStore, ProjectionTxn, StreamKey, async_trait};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::common::{Txn, checkpoint_conflict, store_err, tenant, tenant_column, tenant_from, to_i64, to_u64};
use crate::sqlite::{SqliteStore, ms, now_ms};
use crate::storable::{check_document, lossy, write_err};

const CHECKPOINT: &str = "SELECT commit_id, position FROM checkpoints WHERE projection = ? AND partition = ?";
const CHECKPOINT_INSERT: &str = "INSERT INTO checkpoints (projection, partition, commit_id, position, updated_at) \
    VALUES (?, ?, ?, ?, ?) ON CONFLICT (projection, partition) DO NOTHING";
const CHECKPOINT_UPDATE: &str = "UPDATE checkpoints SET commit_id = ?, position = ?, updated_at = ? \
    WHERE projection = ? AND partition = ? AND commit_id = ? AND position = ?";
const CHECKPOINTS_RESET: &str = "DELETE FROM checkpoints WHERE projection = ?";
const LEASE_ACQUIRE: &str = "INSERT INTO leases (projection, partition, owner, expires_at_ms) VALUES (?1, ?2, ?3, ?4 + ?5) \
    ON CONFLICT (projection, partition) DO UPDATE SET owner = excluded.owner, expires_at_ms = excluded.expires_at_ms \
    WHERE leases.owner = excluded.owner OR leases.expires_at_ms < ?4 RETURNING owner";
const LEASE_RELEASE: &str = "DELETE FROM leases WHERE projection = ? AND partition = ? AND owner = ?";
const DEAD_INSERT: &str = "INSERT INTO dead_letters (projection, event_id, position, tenant_id, stream_type, stream_id, \
    version, event_type, error, failed_at, commit_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (projection, event_id) \
    DO UPDATE SET error = excluded.error, failed_at = excluded.failed_at";
const DEAD_LIST: &str = "SELECT projection, event_id, position, tenant_id, stream_type, stream_id, version, event_type, \
    error, failed_at, commit_id FROM dead_letters WHERE projection = ? ORDER BY position";
const DEAD_REMOVE: &str = "DELETE FROM dead_letters WHERE projection = ? AND event_id = ?";
const DOC_GET: &str = "SELECT id, version, document FROM documents WHERE collection = ? AND id = ? AND tenant_id = ?";
const DOC_PUT: &str = "INSERT INTO documents (collection, id, version, document, updated_at, tenant_id) \
    VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (tenant_id, collection, id) DO UPDATE SET version = documents.version + 1, document = excluded.document, \
    updated_at = excluded.updated_at RETURNING version";
const DOC_DELETE: &str = "DELETE FROM documents WHERE collection = ? AND id = ? AND tenant_id = ?";
const DOC_CLEAR: &str = "DELETE FROM documents WHERE collection = ?";
const DOC_ALL: &str = "SELECT id, version, document FROM documents WHERE collection = ? AND tenant_id = ? ORDER BY id";

fn decode_doc(row: &SqliteRow) -> Result<Document> {
    Ok(Document {
        id: row.try_get(0).map_err(store_err)?,
        version: to_u64(row.try_get(1).map_err(store_err)?, "document version")?,
        json: row.try_get(2).map_err(store_err)?,
    })
}

#[async_trait]
impl ProjectionStore for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn ProjectionTxn>> {
        let tx = Txn::begin(&self.pool, Some("BEGIN IMMEDIATE")).await?;
        Ok(Box::new(SqliteTxn { tx }))
    }

    async fn checkpoint(&self, projection: &str, partition: u32) -> Result<Option<Cursor>> {
        let row = sqlx::query(CHECKPOINT)
            .bind(projection)
            .bind(i64::from(partition))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.map(|r| {
            Ok(Cursor {
                commit: to_u64(r.try_get(0).map_err(store_err)?, "checkpoint")?,
                position: to_u64(r.try_get(1).map_err(store_err)?, "checkpoint")?,
            })
        })
        .transpose()
    }

    async fn acquire_lease(&self, projection: &str, partition: u32, owner: &str, ttl: Duration) -> Result<bool> {
        let mut tx = Txn::begin(&self.pool, Some("BEGIN IMMEDIATE")).await?;
        let row = match sqlx::query(LEASE_ACQUIRE)
            .bind(projection)
            .bind(i64::from(partition))
            .bind(owner)
            .bind(now_ms())
            .bind(ms(ttl))
            .fetch_optional(&mut *tx)
            .await
        {
            Ok(row) => row,
            Err(e) => return tx.fail(store_err(e)).await,
        };
        tx.commit().await.map_err(store_err)?;
        Ok(row.is_some())
    }

    async fn release_lease(&self, projection: &str, partition: u32, owner: &str) -> Result<()> {
        sqlx::query(LEASE_RELEASE)
            .bind(projection)
            .bind(i64::from(partition))
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(DEAD_LIST).bind(projection).fetch_all(&self.pool).await.map_err(store_err)?;
        rows.iter()
            .map(|r| {
                let get = |e: sqlx::Error| store_err(e);
                Ok(DeadLetter {
                    projection: r.try_get(0).map_err(get)?,
                    event_id: r.try_get(1).map_err(get)?,
                    position: to_u64(r.try_get(2).map_err(get)?, "position")?,
                    stream: StreamKey {
                        tenant_id: tenant_from(r.try_get(3).map_err(get)?),
                        stream_type: r.try_get(4).map_err(get)?,
                        stream_id: r.try_get(5).map_err(get)?,
                    },
                    version: to_u64(r.try_get(6).map_err(get)?, "version")?,
                    event_type: r.try_get(7).map_err(get)?,
                    error: r.try_get(8).map_err(get)?,
                    failed_at: r.try_get(9).map_err(get)?,
                    commit: to_u64(r.try_get(10).map_err(get)?, "commit")?,
                })
            })
            .collect()
    }

    async fn remove_dead_letter(&self, projection: &str, event_id: Uuid) -> Result<()> {
        sqlx::query(DEAD_REMOVE).bind(projection).bind(event_id).execute(&self.pool).await.map_err(store_err)?;
        Ok(())
    }

    async fn document_of(&self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        let row = sqlx::query(DOC_GET)
            .bind(collection)
            .bind(id)
            .bind(tenant_column(tenant)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref().map(decode_doc).transpose()
    }

    async fn documents_of(&self, tenant: Option<&str>, collection: &str) -> Result<Vec<Document>> {
        let rows = sqlx::query(DOC_ALL)
            .bind(collection)
            .bind(tenant_column(tenant)?)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter().map(decode_doc).collect()
    }
}

/// A projection transaction on SQLite; its connection is a `SqliteConnection`. Dropped
/// without `commit` or `rollback` (a cancelled batch), its connection is closed.
struct SqliteTxn {
    tx: Txn<Sqlite>,
}

#[async_trait]
impl ProjectionTxn for SqliteTxn {
    async fn get_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        let row = sqlx::query(DOC_GET)
            .bind(collection)
            .bind(id)
            .bind(tenant_column(tenant)?)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(store_err)?;
        row.as_ref().map(decode_doc).transpose()
    }

    async fn put_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str, json: String) -> Result<u64> {
        check_document(collection, id, &json)?;
        let v: i64 = sqlx::query_scalar(DOC_PUT)
            .bind(collection)
            .bind(id)
            .bind(json)
            .bind(chrono::Utc::now())
            .bind(tenant_column(tenant)?)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| {
                write_err(e, || format!("document `{}/{}`", collection.escape_default(), id.escape_default()))
            })?;
        to_u64(v, "document version")
    }

    async fn delete_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<bool> {
        let done = sqlx::query(DOC_DELETE)
            .bind(collection)
            .bind(id)
            .bind(tenant_column(tenant)?)
            .execute(&mut *self.tx)
            .await
            .map_err(store_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn clear_docs(&mut self, collection: &str) -> Result<()> {
        sqlx::query(DOC_CLEAR).bind(collection).execute(&mut *self.tx).await.map_err(store_err)?;
        Ok(())
    }

    async fn save_checkpoint(
        &mut self,
        projection: &str,
        partition: u32,
        expected: Option<Cursor>,
        to: Cursor,
    ) -> Result<()> {
        let (commit, position) = (to_i64(to.commit, "cursor")?, to_i64(to.position, "cursor")?);
        let now = chrono::Utc::now();
        let done = match expected {
            None => {
                sqlx::query(CHECKPOINT_INSERT)
                    .bind(projection)
                    .bind(i64::from(partition))
                    .bind(commit)
                    .bind(position)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
            }
            Some(e) => {
                sqlx::query(CHECKPOINT_UPDATE)
                    .bind(commit)
                    .bind(position)
                    .bind(now)
                    .bind(projection)
                    .bind(i64::from(partition))
                    .bind(to_i64(e.commit, "cursor")?)
                    .bind(to_i64(e.position, "cursor")?)
                    .execute(&mut *self.tx)
                    .await
            }
        }
        .map_err(store_err)?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(checkpoint_conflict(projection, partition, expected)) }
    }

    async fn reset_checkpoints(&mut self, projection: &str) -> Result<()> {
        sqlx::query(CHECKPOINTS_RESET).bind(projection).execute(&mut *self.tx).await.map_err(store_err)?;
        Ok(())
    }

    async fn dead_letter(&mut self, l: DeadLetter) -> Result<()> {
        sqlx::query(DEAD_INSERT)
            .bind(&l.projection)
            .bind(l.event_id)
            .bind(to_i64(l.position, "position")?)
            .bind(tenant(&l.stream))
            .bind(&l.stream.stream_type)
            .bind(&l.stream.stream_id)
            .bind(to_i64(l.version, "version")?)
            .bind(&l.event_type)
            .bind(lossy(&l.error))
            .bind(l.failed_at)
            .bind(to_i64(l.commit, "commit")?)
            .execute(&mut *self.tx)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(store_err)
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.tx.rollback().await.map_err(store_err)
    }

    fn connection(&mut self) -> &mut (dyn Any + Send) {
        let conn: &mut SqliteConnection = &mut self.tx;
        conn
    }
}
