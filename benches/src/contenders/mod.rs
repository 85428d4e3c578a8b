//! The contenders, one small module each, and the table of which one runs which group.

pub(crate) mod cqrs_es;
pub(crate) mod http;
pub(crate) mod ours_mem;
pub(crate) mod ours_pg;
pub(crate) mod ours_sql;
pub(crate) mod plain_lite;
#[cfg(feature = "mysql")]
pub(crate) mod plain_my;
pub(crate) mod plain_sqlx;
pub(crate) mod postgres_es;
pub(crate) mod redis_lock;
pub(crate) mod relay;
pub(crate) mod spec_docs;

use crate::db::Target;
use crate::error::BenchError;
use crate::measure::Outcome;
use crate::scenarios::{Contender, Group, Workload};

/// Runs one cell; `Ok(None)` when the contender has no implementation for the group
/// (yet). `target` is where the group's backend keeps the benchmark's data: the
/// PostgreSQL or MariaDB database, or the SQLite directory; `None` in memory.
pub(crate) async fn run(
    group: Group,
    contender: Contender,
    w: &Workload,
    rep: usize,
    target: Option<&Target>,
) -> Result<Option<Outcome>, BenchError> {
    use Contender::{CqrsEs, Ours, Sqlx};
    let db = || target.ok_or_else(|| BenchError::Usage(format!("`{}` needs a database (`--db`)", group.name())));
    Ok(match (group, contender) {
        (Group::MemSpread, Ours) => Some(ours_mem::spread(w).await?),
        (Group::MemSpread, CqrsEs) => Some(cqrs_es::spread(w).await?),
        (Group::MemLong, Ours) => Some(ours_mem::long_stream(w).await?),
        (Group::MemLong, CqrsEs) => Some(cqrs_es::long_stream(w).await?),
        (Group::Mediator, Ours) => Some(ours_mem::mediator(w).await?),
        (Group::MemScale, Ours) => Some(ours_mem::scale(w).await?),
        (Group::PgScale, Ours) => Some(ours_pg::scale(db()?, rep).await?),
        (Group::PgSeq, Ours) => ours_pg::pg_seq(db()?, w, rep).await?,
        (Group::PgSeq, CqrsEs) => Some(postgres_es::pg_seq(db()?, w, rep).await?),
        (Group::PgSeq, Sqlx) => Some(plain_sqlx::pg_seq(db()?, w, rep).await?),
        (Group::PgConc16, Ours) => ours_pg::pg_conc(db()?, w, rep).await?,
        (Group::PgConc16, CqrsEs) => Some(postgres_es::pg_conc(db()?, w, rep).await?),
        (Group::PgConc16, Sqlx) => Some(plain_sqlx::pg_conc(db()?, w, rep).await?),
        (Group::PgBatch100, Ours) => ours_pg::pg_batch(db()?, w, rep).await?,
        (Group::PgBatch100, CqrsEs) => Some(postgres_es::pg_batch(db()?, w, rep).await?),
        (Group::PgBatch100, Sqlx) => Some(plain_sqlx::pg_batch(db()?, w, rep).await?),
        (Group::Load, Ours) => ours_pg::load(db()?, w).await?,
        (Group::Load, CqrsEs) => Some(postgres_es::load(db()?, w).await?),
        (Group::Load, Sqlx) => Some(plain_sqlx::load(db()?, w).await?),
        (Group::Projection, Ours) => Some(ours_pg::projection(db()?).await?),
        (Group::Projection, Sqlx) => Some(plain_sqlx::projection(db()?).await?),
        (Group::Spec, Ours) => Some(spec_docs::ours(db()?, w).await?),
        (Group::RedisLock, Ours) => Some(redis_lock::ours(w).await?),
        (Group::RedisLock, Sqlx) => Some(redis_lock::plain(w).await?),
        (Group::Relay, Ours) => Some(relay::ours(db()?, w, rep).await?),
        (Group::Relay, Sqlx) => Some(relay::direct(w, rep).await?),
        (Group::Http, Ours) => Some(http::ours(w).await?),
        (Group::Http, Sqlx) => Some(http::by_hand(w).await?),
        (Group::Spec, Sqlx) => Some(spec_docs::plain(db()?, w).await?),
        (Group::LoadRss, Ours) => ours_pg::load_rss(db()?).await?,
        (Group::LoadRss, CqrsEs) => Some(postgres_es::load_rss(db()?).await?),
        (Group::LoadRss, Sqlx) => Some(plain_sqlx::load_rss(db()?).await?),
        #[cfg(feature = "mysql")]
        (Group::MySeq, Ours) => Some(ours_sql::my_seq(db()?, w, rep).await?),
        #[cfg(feature = "mysql")]
        (Group::MySeq, Sqlx) => Some(plain_my::seq(db()?, w, rep).await?),
        #[cfg(feature = "mysql")]
        (Group::MyConc16, Ours) => Some(ours_sql::my_conc(db()?, w, rep).await?),
        #[cfg(feature = "mysql")]
        (Group::MyConc16, Sqlx) => Some(plain_my::conc(db()?, w, rep).await?),
        #[cfg(feature = "mysql")]
        (Group::MyLoad, Ours) => Some(ours_sql::my_load(db()?, w).await?),
        #[cfg(feature = "mysql")]
        (Group::MyLoad, Sqlx) => Some(plain_my::load(db()?, w).await?),
        #[cfg(feature = "mysql")]
        (Group::MySeq | Group::MyConc16 | Group::MyLoad, CqrsEs) => None,
        (Group::LiteSeq, Ours) => Some(ours_sql::lite_seq(db()?, w, rep).await?),
        (Group::LiteSeq, Sqlx) => Some(plain_lite::seq(db()?, w, rep).await?),
        (Group::LiteLoad, Ours) => Some(ours_sql::lite_load(db()?, w).await?),
        (Group::LiteLoad, Sqlx) => Some(plain_lite::load(db()?, w).await?),
        (Group::MemSpread | Group::MemLong | Group::Mediator | Group::MemScale | Group::PgScale, Sqlx)
        | (
            Group::Mediator
            | Group::MemScale
            | Group::PgScale
            | Group::Projection
            | Group::LiteSeq
            | Group::LiteLoad
            | Group::Spec
            | Group::RedisLock
            | Group::Relay
            | Group::Http,
            CqrsEs,
        ) => None,
    })
}

/// Creates every Postgres contender's tables in the benchmark database, with the load
/// scenarios' streams when `seed` and the scale schemas when `scale`.
pub(crate) async fn prepare(target: &Target, seed: bool, scale: bool) -> Result<(), BenchError> {
    postgres_es::prepare(target, seed).await?;
    plain_sqlx::prepare(target, seed).await?;
    ours_pg::prepare(target, seed).await?;
    if scale {
        ours_pg::prepare_scale(target).await?;
    }
    Ok(())
}

/// Creates both MariaDB contenders' tables in the benchmark database, with the load
/// streams when `seed`.
#[cfg(feature = "mysql")]
pub(crate) async fn prepare_mariadb(target: &Target, seed: bool) -> Result<(), BenchError> {
    plain_my::prepare(target, seed).await?;
    ours_sql::prepare_mariadb(target, seed).await
}

/// Creates both SQLite contenders' files and tables in the run's directory, with the
/// load streams when `seed`.
pub(crate) async fn prepare_sqlite(target: &Target, seed: bool) -> Result<(), BenchError> {
    plain_lite::prepare(target, seed).await?;
    ours_sql::prepare_sqlite(target, seed).await
}
