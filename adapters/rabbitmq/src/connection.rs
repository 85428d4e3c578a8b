//! Connections: where the broker is, connecting with a timeout, and the shared
//! publishing connection that reconnects by itself.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use cqrs_ddd::{Error, Result};
use lapin::options::ConfirmSelectOptions;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::{Mutex, Semaphore, SemaphorePermit};

use crate::error::{answer, unreachable};
use crate::topology::Topology;

/// How long connecting may take when the URL does not say (`?connection_timeout=ms`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the broker is.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    uri: AMQPUri,
    /// `host:port` (and `/vhost` unless it is `/`), without credentials, for errors and logs.
    pub(crate) target: String,
    timeout: Duration,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let mut uri = AMQPUri::from_str(url).map_err(|reason| unreachable("<invalid AMQP URL>", reason))?;
        let (host, port) = (&uri.authority.host, uri.authority.port);
        let target = if uri.vhost == "/" { format!("{host}:{port}") } else { format!("{host}:{port}/{}", uri.vhost) };
        let timeout = uri.query.connection_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_millis);
        // The TCP connect gives up at the same time as the handshake.
        uri.query.connection_timeout = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        Ok(Endpoint { uri, target, timeout })
    }

    /// A new connection, or [`Error::Connect`] within the timeout.
    pub(crate) async fn connect(&self, name: &str) -> Result<Connection> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        match tokio::time::timeout(self.timeout, Connection::connect_uri(self.uri.clone(), properties)).await {
            Ok(Ok(connection)) => {
                tracing::debug!(broker = %self.target, name, "connected to RabbitMQ");
                Ok(connection)
            }
            Ok(Err(e)) => Err(unreachable(&self.target, e)),
            Err(_) => Err(unreachable(&self.target, format!("no answer within {:?}", self.timeout))),
        }
    }
}

/// The connection publishers share, with its confirming channels: made again when it
/// was lost, the next time it is needed.
///
/// A channel carries one message at a time, from its publish to its confirm: the
/// broker's `basic.return` for an unroutable message names no delivery tag, and lapin
/// hands it to the next confirm it completes on that channel (any of them when the
/// broker confirms several at once). With one message in flight per channel, that
/// confirm is its own. Messages are published at once on up to `channels` channels.
pub(crate) struct Link {
    pub(crate) endpoint: Endpoint,
    session: Mutex<Option<Session>>,
    /// One permit per publishing channel.
    channels: Semaphore,
}

struct Session {
    connection: Connection,
    /// Channels in confirm mode with no message in flight.
    idle: Vec<Channel>,
    /// The topologies declared on this connection.
    declared: HashSet<String>,
}

/// A confirming channel taken for one message; [`Link::give_back`] returns it.
pub(crate) struct Publishing<'a> {
    pub(crate) channel: Channel,
    _permit: SemaphorePermit<'a>,
}

impl Link {
    /// Connects now, so that an unreachable broker is known at once.
    pub(crate) async fn open(endpoint: Endpoint, channels: usize) -> Result<Self> {
        let connection = endpoint.connect("cqrs-ddd publisher").await?;
        let session = Session { connection, idle: Vec::new(), declared: HashSet::new() };
        Ok(Link { endpoint, session: Mutex::new(Some(session)), channels: Semaphore::new(channels.max(1)) })
    }

    /// A confirming channel of its own for one message, with `topology` declared for
    /// `groups` on this connection.
    pub(crate) async fn publishing(&self, topology: &Topology, groups: &[String]) -> Result<Publishing<'_>> {
        let permit = self.channels.acquire().await.map_err(|_| unreachable(&self.endpoint.target, "closed"))?;
        let mut guard = self.session.lock().await;
        let session = self.connected(&mut guard).await?;
        let channel = loop {
            match session.idle.pop() {
                Some(channel) if channel.status().connected() => break channel,
                Some(_) => {}
                None => {
                    let channel = answer("channel.open", session.connection.create_channel()).await?;
                    answer("confirm.select", channel.confirm_select(ConfirmSelectOptions::default())).await?;
                    break channel;
                }
            }
        };
        let key = format!("{topology:?}{groups:?}");
        if !session.declared.contains(&key) {
            topology.declare(&channel, groups).await?;
            session.declared.insert(key);
        }
        Ok(Publishing { channel, _permit: permit })
    }

    /// Keeps a channel whose message was confirmed (or returned) for the next one.
    pub(crate) async fn give_back(&self, publishing: Publishing<'_>) {
        if !publishing.channel.status().connected() {
            return;
        }
        let mut guard = self.session.lock().await;
        if let Some(session) = guard.as_mut().filter(|s| s.connection.status().connected()) {
            session.idle.push(publishing.channel);
        }
    }

    /// A channel of its own on the shared connection, for the caller to close.
    pub(crate) async fn channel(&self) -> Result<Channel> {
        let mut guard = self.session.lock().await;
        let session = self.connected(&mut guard).await?;
        Ok(answer("channel.open", session.connection.create_channel()).await?)
    }

    /// Closes the connection; the next use opens another.
    pub(crate) async fn close(&self) -> Result<()> {
        let session = self.session.lock().await.take();
        match session {
            Some(s) if s.connection.status().connected() => {
                Ok(answer("connection.close", s.connection.close(200, "OK".into())).await?)
            }
            _ => Ok(()),
        }
    }

    async fn connected<'a>(&self, session: &'a mut Option<Session>) -> Result<&'a mut Session, Error> {
        if !session.as_ref().is_some_and(|s| s.connection.status().connected()) {
            if session.is_some() {
                let broker = &self.endpoint.target;
                tracing::warn!(%broker, "the RabbitMQ publishing connection was lost; connecting again");
            }
            *session = None;
            let connection = self.endpoint.connect("cqrs-ddd publisher").await?;
            *session = Some(Session { connection, idle: Vec::new(), declared: HashSet::new() });
        }
        session.as_mut().ok_or_else(|| unreachable(&self.endpoint.target, "not connected"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_names_host_port_and_vhost_without_credentials() {
        let e = Endpoint::parse("amqp://guest:secret@example.invalid:5673/%2f").unwrap();
        assert_eq!(e.target, "example.invalid:5673");
        assert_eq!(e.timeout, DEFAULT_CONNECT_TIMEOUT);
        let e = Endpoint::parse("amqp://h/v?connection_timeout=1500").unwrap();
        assert_eq!(e.target, "h:5672/v");
        assert_eq!(e.timeout, Duration::from_millis(1500));
        assert!(matches!(Endpoint::parse("http://nope"), Err(Error::Connect { .. })));
    }
}
