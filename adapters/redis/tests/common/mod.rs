//! Shared by the integration tests: the Redis URL, unique key prefixes, a TCP proxy that
//! can cut connections, and extra `redis-server` processes killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::TcpStream;

pub fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test (or run) uses.
pub fn prefix(test: &str) -> String {
    format!("cqrs_ddd_test:{test}:{:x}:", rand::random::<u64>())
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A proxy to a TCP address; [`Proxy::cut`] closes every connection and refuses new ones.
pub struct Proxy(cqrs_ddd::testing::TcpProxy);

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        Proxy(cqrs_ddd::testing::TcpProxy::start_to(upstream).await.expect("a proxy on a loopback port"))
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.0.addr())
    }

    pub fn cut(&self) {
        self.0.cut();
    }
}

/// A `redis-server` on a spare port, killed (SIGKILL) when dropped, also on panic.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    pub async fn start() -> Node {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let node = Node { port, child: Some(child) };
        // Bounded poll until it answers.
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not come up within 10 s");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
