//! Projections: checkpoints, leases, dead letters and the document store, with the read
//! model written in the checkpoint's transaction.

use std::any::Any;
use std::time::Duration;

use chrono::Utc;
use cqrs_ddd::ports::{Cursor, DeadLetter, Document, ProjectionStore, ProjectionTxn, async_trait};
use cqrs_ddd::{Error, Result};

use crate::common::{
    Txn, checkpoint_conflict, is_unique_violation, lease_until, store_err, tenant, tenant_column, to_i64,
};
use crate::dialect::{Dialect, Flavor, at, instant, number_placeholders};
use crate::exec::{SqlConn, Stmt, Value};
use crate::rows::{self, Cols, DOCUMENT_COLUMNS};
use crate::spec::{Arg, Compiler, Frag, aggregate_row};
use crate::sql::{ROWS_PER_INSERT, with_list};
use crate::storable::{check_document, lossy, refusal};
use crate::store::SqlStore;
use cqrs_ddd::spec::{Aggregation, EvalError, Index, QueryOptions, project};

/// A statement of a projection transaction failed. Deadlocks and serialization failures
/// (SQLSTATE 40P01, 40001) mean another worker collided with this one: a conflict, which
/// the worker treats as "someone else applied this batch".
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

/// A document write failed: [`Error::Unstorable`] naming it when the database refused its
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

fn partition(p: u32) -> i64 {
    i64::from(p)
}

#[async_trait]
impl<D: Dialect> ProjectionStore for SqlStore<D> {
    async fn begin(&self) -> Result<Box<dyn ProjectionTxn>> {
        let tx = self.begin_write().await?;
        Ok(Box::new(SqlTxn { tx, store: self.clone() }))
    }

    async fn checkpoint(&self, projection: &str, p: u32) -> Result<Option<Cursor>> {
        let stmt = Stmt::new(&self.sql.checkpoint).str(projection).int(partition(p));
        let row = self.conn().await?.row(stmt).await.map_err(store_err)?;
        row.as_ref().map(rows::cursor::<D>).transpose()
    }

    /// Renews the lease when this owner holds it or it ran out, else takes it when nobody
    /// holds it; an insert that loses a race finds it held.
    async fn acquire_lease(&self, projection: &str, p: u32, owner: &str, ttl: Duration) -> Result<bool> {
        let now = Utc::now();
        let until = at::<D>(lease_until(now, ttl));
        let mut conn = self.conn().await?;
        let renew = Stmt::new(&self.sql.lease_renew)
            .str(owner)
            .arg(until.clone())
            .str(projection)
            .int(partition(p))
            .str(owner)
            .arg(at::<D>(now));
        if conn.run(renew).await.map_err(store_err)? > 0 {
            return Ok(true);
        }
        let insert = Stmt::new(&self.sql.lease_insert).str(owner).arg(until).str(projection).int(partition(p));
        match conn.run(insert).await {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn release_lease(&self, projection: &str, p: u32, owner: &str) -> Result<()> {
        let stmt = Stmt::new(&self.sql.lease_release).str(projection).int(partition(p)).str(owner);
        self.conn().await?.run(stmt).await.map_err(store_err)?;
        Ok(())
    }

    async fn dead_letters(&self, projection: &str) -> Result<Vec<DeadLetter>> {
        let rows = self.conn().await?.rows(Stmt::new(&self.sql.dead_list).str(projection)).await.map_err(store_err)?;
        rows.iter().map(rows::dead_letter::<D>).collect()
    }

    async fn remove_dead_letter(&self, projection: &str, event_id: uuid::Uuid) -> Result<()> {
        let stmt = Stmt::new(&self.sql.dead_remove).str(projection).uuid(event_id);
        self.conn().await?.run(stmt).await.map_err(store_err)?;
        Ok(())
    }

    async fn document_of(&self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        let stmt = Stmt::new(&self.sql.doc_get).str(collection).str(id).str(tenant_column(tenant)?);
        let row = self.conn().await?.row(stmt).await.map_err(store_err)?;
        row.as_ref().map(rows::document::<D>).transpose()
    }

    async fn documents_of(&self, tenant: Option<&str>, collection: &str) -> Result<Vec<Document>> {
        let stmt = Stmt::new(&self.sql.doc_all).str(collection).str(tenant_column(tenant)?);
        let rows = self.conn().await?.rows(stmt).await.map_err(store_err)?;
        rows.iter().map(rows::document::<D>).collect()
    }

    /// Compiled to one `SELECT` by the specification compiler: filter, order, keyset and
    /// page in SQL; the selected fields are cut from the found documents.
    async fn find_of(&self, tenant: Option<&str>, collection: &str, query: &QueryOptions) -> Result<Vec<Document>> {
        let frag = Compiler::new(D::FLAVOR).find(&self.documents_table(), collection, tenant_column(tenant)?, query)?;
        let sql = Self::compiled_sql(&frag);
        let rows = self.conn().await?.rows(compiled_stmt(&sql, &frag)).await.map_err(query_err::<D>)?;
        let mut docs = rows.iter().map(rows::document::<D>).collect::<Result<Vec<_>>>()?;
        if !query.select.is_empty() {
            for doc in &mut docs {
                let value: serde_json::Value = serde_json::from_str(&doc.json)
                    .map_err(|e| Error::store(format!("document `{collection}/{}` is not JSON: {e}", doc.id)))?;
                doc.json = project(&value, &query.select).to_string();
            }
        }
        Ok(docs)
    }

    /// `SELECT count(*)` with the query's filter.
    async fn count_of(&self, tenant: Option<&str>, collection: &str, query: &QueryOptions) -> Result<u64> {
        let frag =
            Compiler::new(D::FLAVOR).count(&self.documents_table(), collection, tenant_column(tenant)?, query)?;
        let sql = Self::compiled_sql(&frag);
        let row = self.conn().await?.row(compiled_stmt(&sql, &frag)).await.map_err(query_err::<D>)?;
        match row {
            Some(r) => Cols::<D>::of(&r).count("n", "document count"),
            None => Ok(0),
        }
    }

    /// `GROUP BY` with the measures, in SQL.
    async fn aggregate_of(
        &self,
        tenant: Option<&str>,
        collection: &str,
        aggregate: &Aggregation,
    ) -> Result<Vec<serde_json::Value>> {
        let frag = Compiler::new(D::FLAVOR).aggregate(
            &self.documents_table(),
            collection,
            tenant_column(tenant)?,
            aggregate,
        )?;
        let sql = Self::compiled_sql(&frag);
        let rows = self.conn().await?.rows(compiled_stmt(&sql, &frag)).await.map_err(query_err::<D>)?;
        rows.iter()
            .map(|row| {
                let c = Cols::<D>::of(row);
                aggregate_row(aggregate, |col| c.text_opt(col).map_err(store_err))
            })
            .collect()
    }

    /// An expression index on PostgreSQL and SQLite (the collection, the tenant, then
    /// each field's typed expression); MariaDB has no expression indexes, so nothing.
    async fn ensure_index(&self, collection: &str, index: &Index) -> Result<()> {
        let Some(sql) = Compiler::new(D::FLAVOR).index(self.dialect.prefix(), collection, index)? else {
            return Ok(());
        };
        self.conn().await?.script(&sql).await.map_err(store_err)
    }
}

impl<D: Dialect> SqlStore<D> {
    fn documents_table(&self) -> String {
        format!("{}documents", self.dialect.prefix())
    }

    fn compiled_sql(frag: &Frag) -> String {
        if D::FLAVOR == Flavor::Postgres { number_placeholders(&frag.sql) } else { frag.sql.clone() }
    }

    /// The database's plan for a query of documents (PostgreSQL's `EXPLAIN`, SQLite's
    /// `EXPLAIN QUERY PLAN`, MariaDB's `EXPLAIN`), one line per row: to check that a
    /// declared index serves it.
    pub async fn explain(&self, tenant: Option<&str>, collection: &str, query: &QueryOptions) -> Result<String> {
        let frag = Compiler::new(D::FLAVOR).find(&self.documents_table(), collection, tenant_column(tenant)?, query)?;
        let (prefix, column) = match D::FLAVOR {
            Flavor::Postgres => ("EXPLAIN ", "QUERY PLAN"),
            Flavor::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            Flavor::MariaDb => ("EXPLAIN ", "key"),
        };
        let sql = format!("{prefix}{}", Self::compiled_sql(&frag));
        let rows = self.conn().await?.rows(compiled_stmt(&sql, &frag)).await.map_err(query_err::<D>)?;
        let mut lines = Vec::new();
        for row in &rows {
            lines.push(Cols::<D>::of(row).text_opt(column).map_err(store_err)?.unwrap_or_default());
        }
        Ok(lines.join("\n"))
    }
}

fn compiled_stmt<'q>(sql: &'q str, frag: &Frag) -> Stmt<'q> {
    frag.args.iter().fold(Stmt::new(sql), |stmt, arg| match arg {
        Arg::Text(t) => stmt.arg(Value::String(t.clone())),
        Arg::Int(i) => stmt.int(*i),
        Arg::Real(x) => stmt.arg(Value::Float(*x)),
    })
}

/// A compiled query failed: a regular expression the database refused is the filter's
/// fault, not the store's.
fn query_err<D: Dialect>(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e {
        let msg = db.message().to_ascii_lowercase();
        if msg.contains("regular expression") || msg.contains("regexp") || msg.contains("regex") {
            return Error::Spec(EvalError::BadValue {
                attr: String::new(),
                op: cqrs_ddd::spec::Op::Regex,
                reason: format!("the database refused the regular expression: {}", db.message()),
            });
        }
        // A geometry condition on a database without its spatial extension.
        if msg.contains("geomfromgeojson") && (msg.contains("does not exist") || msg.contains("no such function")) {
            let needs = match D::FLAVOR {
                Flavor::Sqlite => {
                    "the SpatiaLite extension loaded on every connection \
                     (`SqliteStore::options(url)?.extension(\"mod_spatialite\")`)"
                }
                _ => "PostGIS in the database (`CREATE EXTENSION postgis`)",
            };
            return Error::store(format!("geometry conditions need {needs}: {}", db.message()));
        }
    }
    store_err(e)
}

/// A projection transaction; its connection (for the application's own rows) is the
/// dialect's connection type. Dropped without `commit` or `rollback` (a cancelled
/// batch), its connection is closed.
struct SqlTxn<D: Dialect> {
    tx: Txn<D::Db>,
    store: SqlStore<D>,
}

#[async_trait]
impl<D: Dialect> ProjectionTxn for SqlTxn<D> {
    async fn get_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<Option<Document>> {
        let stmt = Stmt::new(&self.store.sql.doc_get).str(collection).str(id).str(tenant_column(tenant)?);
        let row = self.tx.row(stmt).await.map_err(txn_err)?;
        row.as_ref().map(rows::document::<D>).transpose()
    }

    async fn put_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str, json: String) -> Result<u64> {
        check_document(collection, id, &json)?;
        let stmt = Stmt::new(&self.store.sql.doc_put)
            .str(collection)
            .str(id)
            .arg(Value::String(json))
            .arg(instant::<D>(Utc::now()));
        let tenant = tenant_column(tenant)?;
        let stmt = stmt.str(tenant);
        let row = if D::RETURNING {
            self.tx.row(stmt).await.map_err(|e| doc_err(e, collection, id))?
        } else {
            // The version the upsert left (MariaDB cannot return it from the upsert).
            self.tx.run(stmt).await.map_err(|e| doc_err(e, collection, id))?;
            let stmt = Stmt::new(&self.store.sql.doc_get).str(collection).str(id).str(tenant);
            self.tx.row(stmt).await.map_err(txn_err)?
        };
        match row {
            Some(r) => Cols::<D>::of(&r).count("version", "document version"),
            None => Err(Error::store(format!("document `{collection}/{id}` is missing after its write"))),
        }
    }

    async fn get_docs(&mut self, tenant: Option<&str>, collection: &str, ids: &[String]) -> Result<Vec<Document>> {
        let tenant = tenant_column(tenant)?;
        let mut docs = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let sql = with_list(
                &self.store.dialect,
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM {{t}}documents WHERE collection = ? AND tenant_id = ? AND id IN ({{in}})"
                ),
                "?",
                chunk.len(),
            );
            let mut stmt = Stmt::new(&sql).str(collection).str(tenant);
            for id in chunk {
                stmt = stmt.str(id);
            }
            for row in self.tx.rows(stmt).await.map_err(txn_err)? {
                docs.push(rows::document::<D>(&row)?);
            }
        }
        Ok(docs)
    }

    async fn put_docs(&mut self, tenant: Option<&str>, collection: &str, docs: Vec<(String, String)>) -> Result<()> {
        for (id, json) in &docs {
            check_document(collection, id, json)?;
        }
        let tenant = tenant_column(tenant)?;
        let now = Utc::now();
        let d = &self.store.dialect;
        for chunk in docs.chunks(ROWS_PER_INSERT / 5) {
            let sql = with_list(
                d,
                &format!(
                    "INSERT INTO {{t}}documents (collection, id, version, document, updated_at, tenant_id) VALUES {{in}}{}",
                    d.upsert(
                        "tenant_id, collection, id",
                        &[
                            ("version", Some(&d.render("{t}documents.version + 1"))),
                            ("document", None),
                            ("updated_at", None)
                        ]
                    )
                ),
                "(?, ?, 1, ?::jsonb, ?, ?)",
                chunk.len(),
            );
            let mut stmt = Stmt::new(&sql);
            for (id, json) in chunk {
                stmt = stmt.str(collection).str(id).str(json).arg(instant::<D>(now)).str(tenant);
            }
            if let Err(e) = self.tx.run(stmt).await {
                // Which document the database refused: the first that is not JSON.
                let refused =
                    chunk.iter().find(|(_, j)| serde_json::from_str::<&serde_json::value::RawValue>(j).is_err());
                return Err(doc_err(e, collection, refused.map_or("(one of the batch)", |(id, _)| id.as_str())));
            }
        }
        Ok(())
    }

    async fn delete_doc(&mut self, tenant: Option<&str>, collection: &str, id: &str) -> Result<bool> {
        let stmt = Stmt::new(&self.store.sql.doc_delete).str(collection).str(id).str(tenant_column(tenant)?);
        Ok(self.tx.run(stmt).await.map_err(txn_err)? > 0)
    }

    async fn clear_docs(&mut self, collection: &str) -> Result<()> {
        self.tx.run(Stmt::new(&self.store.sql.doc_clear).str(collection)).await.map_err(txn_err)?;
        Ok(())
    }

    async fn save_checkpoint(&mut self, projection: &str, p: u32, expected: Option<Cursor>, to: Cursor) -> Result<()> {
        let (commit, position) = (to_i64(to.commit, "cursor")?, to_i64(to.position, "cursor")?);
        let now = instant::<D>(Utc::now());
        let sql = &self.store.sql;
        let done = match expected {
            None => {
                let stmt =
                    Stmt::new(&sql.checkpoint_insert).str(projection).int(partition(p)).int(commit).int(position);
                self.tx.run(stmt.arg(now)).await
            }
            Some(e) => {
                let stmt = Stmt::new(&sql.checkpoint_update)
                    .int(commit)
                    .int(position)
                    .arg(now)
                    .str(projection)
                    .int(partition(p))
                    .int(to_i64(e.commit, "cursor")?)
                    .int(to_i64(e.position, "cursor")?);
                self.tx.run(stmt).await
            }
        };
        match done {
            Ok(1) => Ok(()),
            Ok(_) => Err(checkpoint_conflict(projection, p, expected)),
            Err(e) if is_unique_violation(&e) => Err(checkpoint_conflict(projection, p, expected)),
            Err(e) => Err(txn_err(e)),
        }
    }

    async fn reset_checkpoints(&mut self, projection: &str) -> Result<()> {
        self.tx.run(Stmt::new(&self.store.sql.checkpoints_reset).str(projection)).await.map_err(txn_err)?;
        Ok(())
    }

    async fn dead_letter(&mut self, l: DeadLetter) -> Result<()> {
        let stmt = Stmt::new(&self.store.sql.dead_insert)
            .str(&l.projection)
            .uuid(l.event_id)
            .int(to_i64(l.position, "position")?)
            .int(to_i64(l.commit, "commit")?)
            .str(tenant(&l.stream))
            .str(&l.stream.stream_type)
            .str(&l.stream.stream_id)
            .int(to_i64(l.version, "version")?)
            .str(&l.event_type)
            .arg(Value::String(lossy(&l.error).into_owned()))
            .arg(instant::<D>(l.failed_at));
        self.tx.run(stmt).await.map_err(txn_err)?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(txn_err)
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.tx.rollback().await.map_err(txn_err)
    }

    fn connection(&mut self) -> &mut (dyn Any + Send) {
        let conn: &mut D::Conn = &mut self.tx;
        conn
    }
}
