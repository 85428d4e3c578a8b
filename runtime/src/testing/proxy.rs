//! A TCP proxy for tests of faults: put it between a store (a bus, a cache) and its
//! server, then cut every connection through it (new ones are accepted and closed at
//! once, like a server that is restarting) and let traffic through again. Nothing else is
//! touched, so tests sharing the server run on undisturbed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Forwards connections from a port on 127.0.0.1 to `upstream` until cut.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: JoinHandle<()>,
}

struct Shared {
    upstream: SocketAddr,
    /// Whether traffic is let through.
    open: AtomicBool,
    /// Bumped by every cut; each forwarding task ends when it changes.
    cuts: watch::Sender<u64>,
    /// Connections forwarded and still open.
    live: AtomicUsize,
    /// Connections refused while cut.
    refused: AtomicUsize,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`, open.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            open: AtomicBool::new(true),
            cuts: watch::Sender::new(0),
            live: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let accepting = tokio::spawn(accept(listener, shared.clone()));
        Ok(TcpProxy { addr, shared, accepting })
    }

    /// [`TcpProxy::start`] to `upstream` given as `host:port` (resolved once, now).
    pub async fn start_to(upstream: &str) -> std::io::Result<TcpProxy> {
        let addr = tokio::net::lookup_host(upstream).await?.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("`{upstream}` resolves to no address"))
        })?;
        Self::start(addr).await
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every live connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.shared.open.store(false, Ordering::SeqCst);
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// Lets traffic through again.
    pub fn restore(&self) {
        self.shared.open.store(true, Ordering::SeqCst);
    }

    /// Connections forwarded and still open.
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Connections refused while cut.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        // Watch for cuts before looking whether it is open: a cut in between is seen.
        let cuts = shared.cuts.subscribe();
        if !shared.open.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        tokio::spawn(forward(client, cuts, shared.clone()));
    }
}

/// Copies both ways until either side closes or the proxy is cut; dropping the sockets
/// closes both ends.
async fn forward(mut client: TcpStream, mut cuts: watch::Receiver<u64>, shared: Arc<Shared>) {
    let Ok(mut server) = TcpStream::connect(shared.upstream).await else { return };
    shared.live.fetch_add(1, Ordering::SeqCst);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed() => {}
    }
    shared.live.fetch_sub(1, Ordering::SeqCst);
}
