//! A TCP proxy inside the test ([`cqrs_ddd::testing::TcpProxy`]): [`Proxy::cut`] closes
//! every connection through it and turns new ones away until [`Proxy::restore`].

use cqrs_ddd::testing::TcpProxy;

/// See the module docs.
pub struct Proxy(TcpProxy);

impl Proxy {
    /// A proxy to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        Proxy(TcpProxy::start_to(upstream).await.expect("a proxy on a loopback port"))
    }

    /// `127.0.0.1:{port}`.
    pub fn address(&self) -> String {
        self.0.addr().to_string()
    }

    /// Closes every connection and turns new ones away.
    pub fn cut(&self) {
        self.0.cut();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.0.restore();
    }
}
