//! The connections a store keeps between its statements (its pool's check of every
//! connection given back is skipped for them): at most half the pool, given back when
//! the store is idle or the pool closes.

use std::time::Duration;

use cqrs_ddd::ports::EventStore;
use cqrs_ddd_sqlx::{Dialect, SqlStore};

use super::{TestDb, eventually};

/// Longer than any wait this file expects, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// Reads from `tasks` tasks at once, `rounds` each.
async fn busy<D: Dialect>(store: &SqlStore<D>, tasks: usize, rounds: usize) {
    let reads = (0..tasks).map(|_| async {
        for _ in 0..rounds {
            store.head().await.unwrap();
        }
    });
    futures::future::join_all(reads).await;
}

/// After a burst of statements on every connection of the pool, the store gives the
/// connections it kept back once it has been idle a moment; a pool closed while the
/// store still lives closes (it does not wait on the store), and the store then answers
/// with an error rather than waiting.
pub async fn kept_connections_go_back_when_idle_and_when_the_pool_closes<D: Dialect>(
    db: &impl TestDb<Store = SqlStore<D>>,
) {
    let store = db.store().await;
    let pool = store.pool().clone();
    let size = usize::try_from(pool.options().get_max_connections()).unwrap();
    busy(&store, size, 20).await;
    eventually("every connection is back in the pool", PATIENCE, || {
        let pool = pool.clone();
        async move { pool.num_idle() == pool.size() as usize }
    })
    .await;

    busy(&store, size, 20).await;
    tokio::time::timeout(PATIENCE, pool.close()).await.expect("the pool closes while the store holds connections");
    let after = tokio::time::timeout(PATIENCE, store.head()).await;
    assert!(matches!(after, Ok(Err(_))), "a store on a closed pool fails at once: {after:?}");
}

/// While the store runs statements on every connection of the pool from many tasks, the
/// application still gets half the pool for its own queries: the store keeps at most
/// half, and the rest go back to the pool between statements.
pub async fn the_application_gets_half_the_pool_while_the_store_is_busy<D: Dialect>(
    db: &impl TestDb<Store = SqlStore<D>>,
) {
    let store = db.store().await;
    let half = usize::try_from(store.pool().options().get_max_connections() / 2).unwrap();
    the_application_gets(store, half).await;
}

/// A store told to keep none gives every connection back after each statement: the
/// application gets the whole pool while the store is busy.
pub async fn a_store_keeping_no_connection_leaves_the_whole_pool<D: Dialect>(db: &impl TestDb<Store = SqlStore<D>>) {
    let store = db.store().await.keep_connections(0);
    let all = usize::try_from(store.pool().options().get_max_connections()).unwrap();
    the_application_gets(store, all).await;
}

/// Takes `wanted` connections of the store's pool, one after the other and held, while
/// tasks of the store fill the pool with statements.
async fn the_application_gets<D: Dialect>(store: SqlStore<D>, wanted: usize) {
    let pool = store.pool().clone();
    let max = pool.options().get_max_connections();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..max)
        .map(|_| {
            let (store, stopped) = (store.clone(), stopped.clone());
            tokio::spawn(async move {
                while !*stopped.borrow() {
                    store.head().await.unwrap();
                }
            })
        })
        .collect();
    // The store's tasks have every connection of the pool.
    eventually("the store's tasks fill the pool", PATIENCE, || {
        let pool = pool.clone();
        async move { pool.size() == max }
    })
    .await;
    let mut held = Vec::new();
    for k in 0..wanted {
        let conn = tokio::time::timeout(PATIENCE, pool.acquire()).await;
        let conn =
            conn.unwrap_or_else(|_| panic!("connection {k} of {wanted} for the application within {PATIENCE:?}"));
        held.push(conn.unwrap());
    }
    let _ = stop.send(true);
    drop(held);
    for worker in workers {
        worker.await.unwrap();
    }
}
