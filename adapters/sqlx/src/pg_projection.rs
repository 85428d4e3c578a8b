//! Projections on PostgreSQL: checkpoints, leases, dead letters and the document store,
//! with the read model written in the checkpoint's transaction.

use std::any::Any;
use std::time::Duration;

use cqrs_ddd::ports::{Cursor, DeadLetter, Document, ProjectionStore, ProjectionTxn, StreamKey, async_trait};
use cqrs_ddd::{Error, Result};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row};
use uuid::Uuid;

use crate::common::{Txn, checkpoint_conflict, store_err, tenant, tenant_column, tenant_from, to_i64, to_u64};
use crate::postgres::{PgStore, millis};
use crate::storable::{check_document, lossy, refusal};

pub(crate) struct ProjectionSql {
    checkpoint: String,
    checkpoint_insert: String,
    checkpoint_update: String,
    checkpoints_reset: String,
    lease_acquire: String,
    lease_release: String,
    dead_insert: String,
    dead_list: String,
    dead_remove: String,
    doc_get: String,
    doc_put: String,
    doc_put_many: String,
    doc_get_many: String,
    doc_delete: String,
    doc_clear: String,
    doc_all: String,
}

impl ProjectionSql {
    pub(crate) fn new(s: &str) -> Self {
        ProjectionSql {
            checkpoint: format!(
                "SELECT commit_id, position FROM {s}.checkpoints WHERE projection = $1 AND partition = $2"
            ),
            checkpoint_insert: format!(
                "INSERT INTO {s}.checkpoints (projection, partition, commit_id, position) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (projection, partition) DO NOTHING"
            ),
            checkpoint_update: format!(
                "UPDATE {s}.checkpoints SET commit_id = $3, position = $4, updated_at = now() \
                 WHERE projection = $1 AND partition = $2 AND commit_id = $5 AND position = $6"
            ),
            checkpoints_reset: format!("DELETE FROM {s}.checkpoints WHERE projection = $1"),
            lease_acquire: format!(
                "INSERT INTO {s}.leases (projection, partition, owner, expires_at) \
                 VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond') ON CONFLICT (projection, partition) DO UPDATE \
                 SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
                 WHERE {s}.leases.owner = EXCLUDED.owner OR {s}.leases.expires_at < now() RETURNING owner"
            ),
            lease_release: format!("DELETE FROM {s}.leases WHERE projection = $1 AND partition = $2 AND owner = $3"),
            dead_insert: format!(
                "INSERT INTO {s}.dead_letters (projection, event_id, position, tenant_id, stream_type, stream_id, version, \
                 event_type, error, failed_at, commit_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (projection, event_id) DO UPDATE SET error = EXCLUDED.error, failed_at = EXCLUDED.failed_at"
            ),
            dead_list: format!(
                "SELECT projection, event_id, position, tenant_id, stream_type, stream_id, version, event_type, error, \
                 failed_at, commit_id FROM {s}.dead_letters WHERE projection = $1 ORDER BY position"
            ),
            dead_remove: format!("DELETE FROM {s}.dead_letters WHERE projection = $1 AND event_id = $2"),
            doc_get: format!(
                "SELECT id, version, document::text FROM {s}.documents WHERE collection = $1 AND id = $2 AND tenant_id = $3"
            ),
            doc_put: format!(
                "INSERT INTO {s}.documents (collection, id, version, document, tenant_id) VALUES ($1, $2, 1, $3::jsonb, $4) \
                 ON CONFLICT (tenant_id, collection, id) DO UPDATE SET version = {s}.documents.version + 1, \
                 document = EXCLUDED.document, updated_at = now() RETURNING version"
            ),
            doc_put_many: format!(
                "INSERT INTO {s}.documents (collection, id, version, document, tenant_id) \
                 SELECT $1, i, 1, d::jsonb, $4 FROM UNNEST($2::text[], $3::text[]) AS x(i, d) \
                 ON CONFLICT (tenant_id, collection, id) DO UPDATE SET version = {s}.documents.version + 1, \
                 document = EXCLUDED.document, updated_at = now()"
            ),
            doc_get_many: format!(
                "SELECT id, version, document::text FROM {s}.documents WHERE collection = $1 AND id = ANY($2) AND tenant_id = $3"
            ),
            doc_delete: format!("DELETE FROM {s}.documents WHERE collection = $1 AND id = $2 AND tenant_id = $3"),
            doc_clear: format!("DELETE FROM {s}.documents WHERE collection = $1"),
            doc_all: format!(
                "SELECT id, version, document::text FROM {s}.documents WHERE collection = $1 AND tenant_id = $2 ORDER BY id"
            ),
        }
    }
}

/// A statement of a projection transaction failed. Deadlocks and serialization failures
/// mean another worker collided with this one: a conflict, which the worker treats as
/// "someone else applied this batch".
fn txn_err(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e
        && matches!(db.code().as_deref(), Some("40P01" | "40001"))
    {
        return Error::Conflict {
            stream: format!("projection transaction ({})", db.message()),
            expected: 0,
            actual: 0,
        };
    }
    store_err(e)
}

/// A document write failed: [`Error::Unstorable`] naming it when PostgreSQL refused its
/// value (text that is not JSON), else as [`txn_err`].
fn doc_err(e: sqlx::Error, collection: &str, id: &str) -> Error {
    match refusal(&e) {
        Some(reason) => Error::Unstorable {
            what: format!("document `{}/{}`", collection.escape_default(), id.escape_default()),
            reason,
        },
        None => txn_err(e),
    }
}

fn partition(p: u32) -> i32 {
    i32::try_from(p).unwrap_or(i32::MAX)
}

fn decode_doc(row: &PgRow) -> Result<Document> {
    Ok(Document {
        id: row.try_get(0).map_err(store_err)?,
        version: to_u64(row.try_get(1).map_err(store_err)?, "document version")?,
        json: row.try_get(2).map_err(store_err)?,
    })
}

fn decode_cursor(row: &PgRow) -> Result<Cursor> {
    Ok(Cursor {
        commit: to_u64(row.try_get(0).map_err(store_err)?, "checkpoint")?,
        position: to_u64(row.try_get(1).map_err(store_err)?, "checkpoint")?,
    })
}

#[async_trait]
impl ProjectionStore for PgStore {
    async fn begin(&self) -> Result<Box<dyn ProjectionTxn>> {
        let tx = Txn::begin(&self.pool, None).await?;
        Ok(Box::new(PgTxn { tx, store: self.clone() }))
    }

    async fn checkpoint(&self, projection: &str, p: u32) -> Result<Option<Cursor>> {
        let row = sqlx::query(&self.sql.p.checkpoint)
            .bind(projection)
            .bind(partition(p))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref().map(decode_cursor).transpose()
    }

    async fn acquire_lease(&self, projection: &str, p: u32, owner: &str, ttl: Duration) -> Result<bool> {
        let row = sqlx::query(&self.sql.p.lease_acquire)
            .bind(projection)
            .bind(partition(p))
            .bind(owner)
            .bind(millis(ttl))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(row.is_some())
    }

    async fn release_lease(&self, projection: &str, p: u32, owner: &str) -> Result<()> {
        sqlx::query(&self.sql.p.lease_release)
            .bind(projection)
            .bind(partition(p))
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>> {
        let rows =
            sqlx::query(&self.sql.p.dead_list).bind(projection).fetch_all(&self.pool).await.map_err(store_err)?;
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
        sqlx::query(&self.sql.p.dead_remove)
            .bind(projection)
            .bind(event_id)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn document_of(&self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        let row = sqlx::query(&self.sql.p.doc_get)
            .bind(collection)
            .bind(id)
            .bind(tenant_column(tenant)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref().map(decode_doc).transpose()
    }

    async fn documents_of(&self, tenant: Option<&str>, collection: &str) -> Result<Vec<Document>> {
        let rows = sqlx::query(&self.sql.p.doc_all)
            .bind(collection)
            .bind(tenant_column(tenant)?)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter().map(decode_doc).collect()
    }
}

/// A projection transaction on PostgreSQL; its connection is a `PgConnection`. Dropped
/// without `commit` or `rollback` (a cancelled batch), its connection is closed.
struct PgTxn {
    tx: Txn<Postgres>,
    store: PgStore,
}

impl PgTxn {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

#[async_trait]
impl ProjectionTxn for PgTxn {
    async fn get_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        let sql = &self.store.sql.p.doc_get;
        let row = sqlx::query(sql)
            .bind(collection)
            .bind(id)
            .bind(tenant_column(tenant)?)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(txn_err)?;
        row.as_ref().map(decode_doc).transpose()
    }

    async fn put_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str, json: String) -> Result<u64> {
        check_document(collection, id, &json)?;
        let sql = &self.store.sql.p.doc_put;
        let v: i64 = sqlx::query_scalar(sql)
            .bind(collection)
            .bind(id)
            .bind(json)
            .bind(tenant_column(tenant)?)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| doc_err(e, collection, id))?;
        to_u64(v, "document version")
    }

    async fn get_docs(&mut self, tenant: Option<&str>, collection: &str, ids: &[String]) -> Result<Vec<Document>> {
        let sql = &self.store.sql.p.doc_get_many;
        let rows = sqlx::query(sql)
            .bind(collection)
            .bind(ids)
            .bind(tenant_column(tenant)?)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(txn_err)?;
        rows.iter().map(decode_doc).collect()
    }

    async fn put_docs(&mut self, tenant: Option<&str>, collection: &str, docs: Vec<(String, String)>) -> Result<()> {
        for (id, json) in &docs {
            check_document(collection, id, json)?;
        }
        let (ids, jsons): (Vec<String>, Vec<String>) = docs.into_iter().unzip();
        let sql = &self.store.sql.p.doc_put_many;
        let done = sqlx::query(sql)
            .bind(collection)
            .bind(&ids)
            .bind(&jsons)
            .bind(tenant_column(tenant)?)
            .execute(&mut *self.tx)
            .await;
        if let Err(e) = done {
            // Which document PostgreSQL refused: the first that is not JSON.
            let refused = jsons.iter().position(|j| serde_json::from_str::<&serde_json::value::RawValue>(j).is_err());
            return Err(doc_err(e, collection, refused.map_or("(one of the batch)", |i| ids[i].as_str())));
        }
        Ok(())
    }

    async fn delete_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<bool> {
        let sql = &self.store.sql.p.doc_delete;
        let done = sqlx::query(sql)
            .bind(collection)
            .bind(id)
            .bind(tenant_column(tenant)?)
            .execute(&mut *self.tx)
            .await
            .map_err(txn_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn clear_docs(&mut self, collection: &str) -> Result<()> {
        let sql = &self.store.sql.p.doc_clear;
        sqlx::query(sql).bind(collection).execute(&mut *self.tx).await.map_err(txn_err)?;
        Ok(())
    }

    async fn save_checkpoint(&mut self, projection: &str, p: u32, expected: Option<Cursor>, to: Cursor) -> Result<()> {
        let sql = self.store.sql.clone();
        let (commit, position) = (to_i64(to.commit, "cursor")?, to_i64(to.position, "cursor")?);
        let done = match expected {
            None => {
                sqlx::query(&sql.p.checkpoint_insert)
                    .bind(projection)
                    .bind(partition(p))
                    .bind(commit)
                    .bind(position)
                    .execute(&mut *self.tx)
                    .await
            }
            Some(e) => {
                sqlx::query(&sql.p.checkpoint_update)
                    .bind(projection)
                    .bind(partition(p))
                    .bind(commit)
                    .bind(position)
                    .bind(to_i64(e.commit, "cursor")?)
                    .bind(to_i64(e.position, "cursor")?)
                    .execute(&mut *self.tx)
                    .await
            }
        }
        .map_err(txn_err)?;
        if done.rows_affected() == 1 { Ok(()) } else { Err(checkpoint_conflict(projection, p, expected)) }
    }

    async fn reset_checkpoints(&mut self, projection: &str) -> Result<()> {
        let sql = &self.store.sql.p.checkpoints_reset;
        sqlx::query(sql).bind(projection).execute(&mut *self.tx).await.map_err(txn_err)?;
        Ok(())
    }

    async fn dead_letter(&mut self, l: DeadLetter) -> Result<()> {
        let sql = &self.store.sql.p.dead_insert;
        sqlx::query(sql)
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
            .map_err(txn_err)?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(txn_err)
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.tx.rollback().await.map_err(txn_err)
    }

    fn connection(&mut self) -> &mut (dyn Any + Send) {
        self.conn()
    }
}
