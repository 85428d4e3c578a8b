//! Connections: where the broker is, connecting with a timeout, and the shared
//! publishing connection that reconnects by itself.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use cqrs_ddd::{Error, Result};
use lapin::options::ConfirmSelectOptions;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

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

/// The connection publishers share, with its confirming channel: made again when it
/// was lost, the next time it is needed.
pub(crate) struct Link {
    pub(crate) endpoint: Endpoint,
    session: Mutex<Option<Session>>,
    /// Held from a publish to its confirm. The broker's `basic.return` for an unroutable
    /// message names no delivery tag, and lapin hands it to the next confirm it completes
    /// (any of them when the broker confirms several at once): with one message in
    /// flight, that confirm is its own.
    pub(crate) one_in_flight: Mutex<()>,
}

struct Session {
    connection: Connection,
    /// In confirm mode; replaced when the broker closed it.
    publishing: Option<Channel>,
    /// The topologies declared on this connection.
    declared: HashSet<String>,
}

impl Link {
    /// Connects now, so that an unreachable broker is known at once.
    pub(crate) async fn open(endpoint: Endpoint) -> Result<Self> {
        let connection = endpoint.connect("cqrs-ddd publisher").await?;
        let session = Session { connection, publishing: None, declared: HashSet::new() };
        Ok(Link { endpoint, session: Mutex::new(Some(session)), one_in_flight: Mutex::new(()) })
    }

    /// The confirming channel, with `topology` declared for `groups` on this connection.
    pub(crate) async fn publishing(&self, topology: &Topology, groups: &[String]) -> Result<Channel> {
        let mut guard = self.session.lock().await;
        let session = self.connected(&mut guard).await?;
        let channel = match &session.publishing {
            Some(channel) if channel.status().connected() => channel.clone(),
            _ => {
                let channel = answer("channel.open", session.connection.create_channel()).await?;
                answer("confirm.select", channel.confirm_select(ConfirmSelectOptions::default())).await?;
                session.publishing = Some(channel.clone());
                channel
            }
        };
        let key = format!("{topology:?}{groups:?}");
        if !session.declared.contains(&key) {
            topology.declare(&channel, groups).await?;
            session.declared.insert(key);
        }
        Ok(channel)
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
            *session = Some(Session { connection, publishing: None, declared: HashSet::new() });
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
