//! The store's own connections: taken from the pool and kept between uses.
//!
//! sqlx's pool checks every connection given back to it with a statement of its own
//! (`return_to_pool` pings), one more round trip per use, because a connection can come
//! back in the middle of a statement whose future was dropped. A [`Lease`] knows whether
//! its statements ran to their end: when they did, its connection is kept here for the
//! store's next statement, unchecked; when one did not (dropped, failed, or used through
//! a plain `&mut` the lease cannot follow), the connection goes back to the pool, which
//! checks it as before.
//!
//! The store holds at most half the pool's connections between statements by default
//! (`SqlStore::keep_connections` changes it; more run its statements at busy times, and
//! go back to the pool after each), so the application's own queries on the pool get the
//! rest. Every kept connection goes back to the pool when the store has not used one
//! for [`IDLE`], or when the pool closes (so `Pool::close`, which waits for every
//! connection, does not wait on the store).

use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

use crate::exec::{SqlConn, Stmt};

/// How long a kept connection waits for the store's next statement before it goes back
/// to the pool.
pub(crate) const IDLE: Duration = Duration::from_millis(250);

/// The connections a store keeps, and the pool they belong to.
pub(crate) struct Conns<DB: Database> {
    pool: Pool<DB>,
    kept: Mutex<Kept<DB>>,
    /// How many the store may hold between statements.
    most: AtomicUsize,
}

struct Kept<DB: Database> {
    idle: Vec<PoolConnection<DB>>,
    /// The pool's connections the store holds: leased and idle.
    held: usize,
    /// When a connection was last taken or kept.
    used: Instant,
    /// Whether a task gives idle connections back (started at the first one kept).
    watched: bool,
}

impl<DB: Database> Conns<DB> {
    pub(crate) fn new(pool: Pool<DB>) -> Arc<Self> {
        // A pool of one keeps nothing: the application's own queries would wait on it.
        let most = usize::try_from(pool.options().get_max_connections() / 2).unwrap_or(0);
        let kept = Kept { idle: Vec::with_capacity(most), held: 0, used: Instant::now(), watched: false };
        Arc::new(Conns { pool, kept: Mutex::new(kept), most: AtomicUsize::new(most) })
    }

    /// Lets the store hold up to `most` connections between statements (at most the
    /// pool's size).
    pub(crate) fn keep_at_most(&self, most: u32) {
        let most = most.min(self.pool.options().get_max_connections());
        self.most.store(usize::try_from(most).unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    pub(crate) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// A connection: a kept one when there is one, else one from the pool.
    pub(crate) async fn lease(self: &Arc<Self>) -> Result<Lease<DB>, sqlx::Error> {
        let kept = match self.kept.lock() {
            Ok(mut kept) => {
                kept.used = Instant::now();
                kept.idle.pop()
            }
            Err(_) => None,
        };
        let conn = match kept {
            Some(conn) if !self.pool.is_closed() => conn,
            kept => {
                if kept.is_some() {
                    self.forget(1);
                }
                drop(kept);
                let conn = self.pool.acquire().await?;
                if let Ok(mut kept) = self.kept.lock() {
                    kept.held += 1;
                }
                conn
            }
        };
        Ok(Lease { conn: Some(conn), home: Arc::downgrade(self), busy: false })
    }

    /// Keeps `conn` for the next statement, or gives it back to the pool when the store
    /// holds more than half the pool or the pool is closing.
    fn keep(self: &Arc<Self>, conn: PoolConnection<DB>) {
        let mut conn = Some(conn);
        let mut watch = false;
        if let Ok(mut kept) = self.kept.lock() {
            if !self.pool.is_closed() && kept.held <= self.most.load(Ordering::Relaxed) {
                kept.idle.extend(conn.take());
                kept.used = Instant::now();
                watch = !std::mem::replace(&mut kept.watched, true);
            } else {
                kept.held = kept.held.saturating_sub(1);
            }
        }
        drop(conn);
        if watch {
            self.watch();
        }
    }

    /// Counts `n` held connections as given back to the pool.
    fn forget(&self, n: usize) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.held = kept.held.saturating_sub(n);
        }
    }

    /// Gives every kept connection back to the pool (which checks them).
    fn release(&self) {
        let idle = match self.kept.lock() {
            Ok(mut kept) => {
                let idle = std::mem::take(&mut kept.idle);
                kept.held = kept.held.saturating_sub(idle.len());
                idle
            }
            Err(_) => Vec::new(),
        };
        drop(idle);
    }

    /// Starts the task that gives kept connections back once the store stops using them
    /// or the pool closes; it ends with the store, or when nothing is kept (the next
    /// connection kept starts it again). Without a runtime nothing is kept.
    fn watch(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.unwatched();
            return;
        };
        let watcher = Watcher(Arc::downgrade(self));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(IDLE / 2).await;
                let Some(conns) = watcher.0.upgrade() else { return };
                if conns.idle_for(IDLE) || conns.pool.is_closed() {
                    conns.unwatched();
                    return;
                }
            }
        });
    }

    /// Whether the store has not taken or kept a connection for `long`.
    fn idle_for(&self, long: Duration) -> bool {
        self.kept.lock().map_or(true, |kept| kept.used.elapsed() >= long)
    }

    /// Gives the kept connections back and notes that no task watches them.
    fn unwatched(&self) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.watched = false;
        }
        self.release();
    }
}

/// The watching task's hold on the connections: when the task ends, however it ends
/// (its runtime shutting down included), the next connection kept starts another.
struct Watcher<DB: Database>(Weak<Conns<DB>>);

impl<DB: Database> Drop for Watcher<DB> {
    fn drop(&mut self) {
        if let Some(conns) = self.0.upgrade()
            && let Ok(mut kept) = conns.kept.lock()
        {
            kept.watched = false;
        }
    }
}

/// A connection of the store, given back when dropped: kept by the store when every
/// statement run through the lease ran to its end, else to the pool.
pub(crate) struct Lease<DB: Database> {
    conn: Option<PoolConnection<DB>>,
    home: Weak<Conns<DB>>,
    /// A statement started and has not been seen to end well.
    busy: bool,
}

impl<DB: Database> Lease<DB> {
    /// Says that what ran on the connection through `&mut` ran to its end (the lease
    /// cannot see it): the connection may be kept.
    pub(crate) fn done(&mut self) {
        self.busy = false;
    }

    /// Closes the connection when the lease is dropped (it holds a session lock, or its
    /// transaction may still be open).
    pub(crate) fn close_on_drop(&mut self) {
        self.busy = true;
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

impl<DB: Database> Deref for Lease<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        match self.conn.as_ref() {
            Some(conn) => conn,
            None => unreachable!("a lease holds its connection until dropped"),
        }
    }
}

/// A plain `&mut` use is one the lease cannot follow: the connection goes back to the
/// pool unless [`Lease::done`] says it ran to its end.
impl<DB: Database> DerefMut for Lease<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.parts().0
    }
}

impl<DB: Database> Drop for Lease<DB> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let Some(home) = self.home.upgrade() else { return };
        if self.busy {
            home.forget(1);
            drop(conn);
        } else {
            home.keep(conn);
        }
    }
}

/// The statements of a lease, followed: the connection is kept only when each ran to its
/// end without an error.
impl<DB: Database> SqlConn for Lease<DB>
where
    DB::Connection: SqlConn,
{
    type Row = <DB::Connection as SqlConn>::Row;

    fn run<'a>(&'a mut self, s: Stmt<'a>) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
        self.follow(|conn| conn.run(s))
    }

    fn rows<'a>(&'a mut self, s: Stmt<'a>) -> BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>> {
        self.follow(|conn| conn.rows(s))
    }

    fn row<'a>(&'a mut self, s: Stmt<'a>) -> BoxFuture<'a, Result<Option<Self::Row>, sqlx::Error>> {
        self.follow(|conn| conn.row(s))
    }

    fn stream<'a>(&'a mut self, s: Stmt<'a>) -> BoxStream<'a, Result<Self::Row, sqlx::Error>> {
        let (conn, busy, home) = self.parts();
        Box::pin(Followed { rows: conn.stream(s), busy, home })
    }

    fn script<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        self.follow(|conn| conn.script(sql))
    }
}

impl<DB: Database> Lease<DB> {
    /// The connection for a statement about to start (the lease is busy until it is seen
    /// to end), the flag that says so, and the store.
    fn parts(&mut self) -> (&mut DB::Connection, &mut bool, &Weak<Conns<DB>>) {
        self.busy = true;
        match self.conn.as_mut() {
            Some(conn) => (&mut **conn, &mut self.busy, &self.home),
            None => unreachable!("a lease holds its connection until dropped"),
        }
    }

    /// Runs `statement` on the connection: done when it succeeds.
    fn follow<'a, T: Send + 'a>(
        &'a mut self,
        statement: impl FnOnce(&'a mut DB::Connection) -> BoxFuture<'a, Result<T, sqlx::Error>>,
    ) -> BoxFuture<'a, Result<T, sqlx::Error>> {
        let (conn, busy, home) = self.parts();
        let running = statement(conn);
        Box::pin(async move {
            let done = running.await;
            match &done {
                Ok(_) => *busy = false,
                Err(e) => failed(home, e),
            }
            done
        })
    }
}

/// After an error that may have left its connection broken, the other kept connections
/// (opened the same way) go back to the pool to be checked.
fn failed<DB: Database>(home: &Weak<Conns<DB>>, e: &sqlx::Error) {
    if !matches!(e, sqlx::Error::Database(_) | sqlx::Error::RowNotFound)
        && let Some(home) = home.upgrade()
    {
        home.release();
    }
}

/// A lease's rows, one at a time: the lease is done when the last has been read.
struct Followed<'a, DB: Database, R> {
    rows: BoxStream<'a, Result<R, sqlx::Error>>,
    busy: &'a mut bool,
    home: &'a Weak<Conns<DB>>,
}

impl<DB: Database, R> Stream for Followed<'_, DB, R> {
    type Item = Result<R, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.rows.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(None) => *self.busy = false,
            Poll::Ready(Some(Err(e))) => failed(self.home, e),
            _ => {}
        }
        next
    }
}
