//! Scenario 15: a read model of 100k documents on PostgreSQL, queried by a specification
//! through `cqrs-ddd-sqlx` (compiled SQL, a declared index) and by the same queries
//! written by hand with sqlx (`->>` and an expression index of their own). Both read the
//! same rows of `cqrs_ddd.documents`.

use cqrs_ddd::ports::ProjectionStore;
use cqrs_ddd::spec::{Dir, FieldKind, Index, Op, QueryOptions, Spec};

use super::ours_pg::store;
use super::ours_sql::ME;
use crate::db::Target;
use crate::error::{BenchError, SqlContext};
use crate::measure::{Outcome, sequential};
use crate::scenarios::{SPEC_COUNT, SPEC_DOCUMENTS, SPEC_PAGE, Workload};

const COLLECTION: &str = "bench_books";
const STATUSES: [&str; 10] =
    ["available", "lent", "lost", "repair", "reserved", "sold", "gone", "draft", "archived", "hold"];
const PAGE: usize = 20;

/// Seeds the collection once (both contenders' cells call it; the first one writes),
/// with both contenders' indexes.
async fn seed(target: &Target) -> Result<(), BenchError> {
    let store = store(target, 1).await?;
    store.migrate().await.map_err(|e| BenchError::framework(ME, "migrate", e))?;
    let mut conn = target.connect().await?;
    let have: i64 =
        sqlx::query_scalar("SELECT count(*) FROM cqrs_ddd.documents WHERE collection = $1 AND tenant_id = ''")
            .bind(COLLECTION)
            .fetch_one(&mut conn)
            .await
            .sql("counting documents")?;
    if usize::try_from(have).ok() != Some(SPEC_DOCUMENTS) {
        sqlx::query("DELETE FROM cqrs_ddd.documents WHERE collection = $1")
            .bind(COLLECTION)
            .execute(&mut conn)
            .await
            .sql("clearing")?;
        sqlx::query(
            "INSERT INTO cqrs_ddd.documents (collection, id, version, document, updated_at, tenant_id) \
             SELECT $1, 'b' || lpad(i::text, 6, '0'), 1, \
                    jsonb_build_object('title', 't' || ((i * 7919) % $2), 'status', ($3::text[])[1 + i % 10], 'copies', i % 7), \
                    now(), '' \
             FROM generate_series(0, $2 - 1) i",
        )
        .bind(COLLECTION)
        .bind(i64::try_from(SPEC_DOCUMENTS).unwrap_or(i64::MAX))
        .bind(STATUSES.to_vec())
        .execute(&mut conn)
        .await
        .sql("seeding documents")?;
    }
    store
        .ensure_index(COLLECTION, &Index::on("status", FieldKind::Text).then("title", FieldKind::Text))
        .await
        .map_err(|e| BenchError::framework(ME, "ensure_index", e))?;
    sqlx::raw_sql(
        "CREATE INDEX IF NOT EXISTS plain_books_status_title ON cqrs_ddd.documents \
         (collection, tenant_id, (document->>'status'), (document->>'title') COLLATE \"C\")",
    )
    .execute(&mut conn)
    .await
    .sql("hand-written index")?;
    sqlx::raw_sql("VACUUM ANALYZE cqrs_ddd.documents").execute(&mut conn).await.sql("VACUUM ANALYZE")?;
    Ok(())
}

fn check(what: &str, found: usize, expected: usize) -> Result<(), BenchError> {
    if found == expected {
        Ok(())
    } else {
        Err(BenchError::Check(format!("{what}: {found} rows, expected {expected}")))
    }
}

/// cqrs-ddd: `find_of` and `count_of` with a specification.
pub(crate) async fn ours(target: &Target, w: &Workload) -> Result<Outcome, BenchError> {
    seed(target).await?;
    // Two connections, as on the other PostgreSQL rows (the store keeps both).
    let store = store(target, 2).await?;
    let page = |k: usize| {
        QueryOptions::new()
            .filter(Spec::leaf("status", Op::Eq, STATUSES[k % 10]))
            .order_by_kind("title", Dir::Asc, FieldKind::Text)
            .page(PAGE as u64, 0)
    };
    let pages = sequential(w.spec_queries, async |k| {
        let found =
            store.find_of(None, COLLECTION, &page(k)).await.map_err(|e| BenchError::framework(ME, "find", e))?;
        check("cqrs-ddd page", found.len(), PAGE)
    })
    .await?;
    let counts = sequential(w.spec_queries, async |k| {
        let n = store.count_of(None, COLLECTION, &page(k)).await.map_err(|e| BenchError::framework(ME, "count", e))?;
        check("cqrs-ddd count", usize::try_from(n).unwrap_or(usize::MAX), SPEC_DOCUMENTS / 10)
    })
    .await?;
    let mut out = Outcome::default();
    out.figure(SPEC_PAGE, pages.per_second());
    out.figure(SPEC_COUNT, counts.per_second());
    Ok(out)
}

/// sqlx: the same page and count written by hand.
pub(crate) async fn plain(target: &Target, w: &Workload) -> Result<Outcome, BenchError> {
    seed(target).await?;
    let mut conn = target.connect().await?;
    let pages = sequential(w.spec_queries, async |k| {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT id, version, document::text FROM cqrs_ddd.documents \
             WHERE collection = $1 AND tenant_id = '' AND document->>'status' = $2 \
             ORDER BY (document->>'title') COLLATE \"C\", id LIMIT $3",
        )
        .bind(COLLECTION)
        .bind(STATUSES[k % 10])
        .bind(i64::try_from(PAGE).unwrap_or(i64::MAX))
        .fetch_all(&mut conn)
        .await
        .sql("page")?;
        check("sqlx page", rows.len(), PAGE)
    })
    .await?;
    let counts = sequential(w.spec_queries, async |k| {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cqrs_ddd.documents WHERE collection = $1 AND tenant_id = '' AND document->>'status' = $2",
        )
        .bind(COLLECTION)
        .bind(STATUSES[k % 10])
        .fetch_one(&mut conn)
        .await
        .sql("count")?;
        check("sqlx count", usize::try_from(n).unwrap_or(usize::MAX), SPEC_DOCUMENTS / 10)
    })
    .await?;
    let mut out = Outcome::default();
    out.figure(SPEC_PAGE, pages.per_second());
    out.figure(SPEC_COUNT, counts.per_second());
    Ok(out)
}
