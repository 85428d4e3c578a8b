//! What can go wrong talking to RabbitMQ, before it becomes a [`cqrs_ddd::Error`].

use std::future::Future;
use std::time::Duration;

use cqrs_ddd::Error;

/// The backend name in [`Error::Connect`].
pub(crate) const BACKEND: &str = "RabbitMQ";

/// A RabbitMQ failure, carried inside [`Error::Store`] (see
/// [`cqrs_ddd::Error::is_transient`]: every one is retried by the relay and the consumer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RabbitMqError {
    /// The broker refused or failed an operation (a closed channel, a lost connection, an
    /// argument it does not accept).
    #[error("RabbitMQ {operation} failed: {source}")]
    Broker {
        /// What was asked (`basic.publish to `x.events``, `queue.declare `x.g.p0``).
        operation: String,
        /// What lapin said.
        #[source]
        source: lapin::Error,
    },
    /// A mandatory message that no queue is bound to take: the broker returned it.
    #[error(
        "RabbitMQ returned message {message_id} published to exchange `{exchange}` with routing key \
         `{routing_key}`: {reply} (no queue is bound for it; declare the consumer groups with `.groups(..)`)"
    )]
    Unroutable {
        /// The message id.
        message_id: String,
        /// The exchange it was published to (empty: the default exchange).
        exchange: String,
        /// Its routing key.
        routing_key: String,
        /// The broker's reply text (`NO_ROUTE`).
        reply: String,
    },
    /// The broker could not take a message (publisher confirm `nack`).
    #[error("RabbitMQ refused message {message_id} published to exchange `{exchange}` (negative confirm)")]
    Nacked {
        /// The message id.
        message_id: String,
        /// The exchange it was published to.
        exchange: String,
    },
    /// The broker did not answer in time (the connection may be gone without lapin
    /// having noticed yet).
    #[error("RabbitMQ did not answer {operation} within {waited:?}")]
    NoAnswer {
        /// What was asked.
        operation: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The connection or channel closed while an operation waited for its answer.
    #[error("RabbitMQ closed the channel before {operation} was answered")]
    Closed {
        /// What was asked.
        operation: String,
    },
    /// The broker did not confirm a message in time; it may or may not have it.
    #[error("RabbitMQ did not confirm message {message_id} within {waited:?}")]
    ConfirmTimeout {
        /// The message id.
        message_id: String,
        /// How long the publisher waited.
        waited: Duration,
    },
    /// A delivered message that cannot be read as an outbox message; it goes to the dead
    /// letters as it is.
    #[error("malformed message in queue `{queue}`: {reason}")]
    Malformed {
        /// The queue it came from.
        queue: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A name longer than AMQP allows (255 bytes): an exchange, queue, routing key,
    /// header name or consumer tag made from the configuration or a message.
    #[error("`{name}…` is too long for AMQP ({len} bytes; at most 255): {what}")]
    NameTooLong {
        /// What the name is for.
        what: &'static str,
        /// Its first characters.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
}

impl RabbitMqError {
    pub(crate) fn broker(operation: impl Into<String>, source: lapin::Error) -> Self {
        RabbitMqError::Broker { operation: operation.into(), source }
    }

    /// Whether this is the broker saying that a queue or exchange does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, RabbitMqError::Broker { source, .. } if is_amqp_code(source, 404))
    }

    /// Whether retrying would fail the same way: the broker refused access (403
    /// `ACCESS_REFUSED`) or to declare something that exists with other arguments (406
    /// `PRECONDITION_FAILED`), or a name is too long.
    pub(crate) fn is_permanent(&self) -> bool {
        match self {
            RabbitMqError::Broker { source, .. } => is_amqp_code(source, 403) || is_amqp_code(source, 406),
            RabbitMqError::NameTooLong { .. } => true,
            _ => false,
        }
    }
}

fn is_amqp_code(error: &lapin::Error, code: u16) -> bool {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => e.get_id() == code,
        _ => false,
    }
}

impl From<RabbitMqError> for Error {
    fn from(e: RabbitMqError) -> Self {
        match e {
            RabbitMqError::NameTooLong { what, ref name, .. } => {
                Error::Unstorable { what: format!("{what} `{name}…`"), reason: e.to_string() }
            }
            other => Error::store(other),
        }
    }
}

/// How long a broker operation other than connecting and confirming a message may take.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker's answer to `operation`, within [`ANSWER_TIMEOUT`]: a lost connection can
/// leave an operation that was under way without an answer.
pub(crate) async fn answer<T>(
    operation: impl Into<String>,
    request: impl Future<Output = lapin::Result<T>>,
) -> Result<T, RabbitMqError> {
    match tokio::time::timeout(ANSWER_TIMEOUT, request).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(source)) => Err(RabbitMqError::Broker { operation: operation.into(), source }),
        Err(_) => Err(RabbitMqError::NoAnswer { operation: operation.into(), waited: ANSWER_TIMEOUT }),
    }
}

/// Like [`answer`], and gives up as soon as `is_open` says the channel or connection
/// closed: lapin may leave an operation made as the connection broke unanswered.
pub(crate) async fn answer_while<T>(
    is_open: impl Fn() -> bool,
    operation: impl Into<String>,
    request: impl Future<Output = lapin::Result<T>>,
) -> Result<T, RabbitMqError> {
    let operation = operation.into();
    let closed = async {
        while is_open() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        answer = answer(operation.clone(), request) => answer,
        () = closed => Err(RabbitMqError::Closed { operation }),
    }
}

/// Shorthand: `op` failed with `source`, as a [`cqrs_ddd::Error`].
pub(crate) fn broker(operation: impl Into<String>, source: lapin::Error) -> Error {
    RabbitMqError::broker(operation, source).into()
}

/// An unreachable broker (refused, timed out, handshake failed), as [`Error::Connect`].
pub(crate) fn unreachable(target: &str, reason: impl ToString) -> Error {
    Error::Connect { backend: BACKEND, target: target.to_owned(), reason: reason.to_string() }
}
