//! Outbox messages as AMQP messages and back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_ddd::broker::{DeadMessage, headers};
use cqrs_ddd::ports::OutboxMessage;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use uuid::Uuid;

use crate::error::RabbitMqError;
use crate::topology::name;

/// Set on a dead letter: when it was given up (RFC 3339).
pub const DEAD_AT: &str = "dead-at";

/// Carries an outbox message's creation time exactly (RFC 3339 with nanoseconds); the
/// AMQP `timestamp` property has it in whole seconds.
pub const CREATED_AT: &str = "created-at";

/// The header RabbitMQ's quorum queues add to a message they deliver again.
const DELIVERY_COUNT: &str = "x-delivery-count";

/// The longest error text a dead letter keeps (its headers must fit in one frame).
const MAX_ERROR_LEN: usize = 4096;

/// The properties of a published outbox message: persistent JSON, its id as
/// `message_id`, its topic as `type`, its creation time as `timestamp` (seconds) and
/// [`CREATED_AT`], its headers as strings.
pub(crate) fn properties(message: &OutboxMessage) -> Result<BasicProperties, RabbitMqError> {
    let mut headers = table(&message.headers)?;
    headers.insert(CREATED_AT.into(), AMQPValue::LongString(rfc3339(message.created_at).into()));
    let mut props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(message.id.to_string().into())
        .with_headers(headers);
    if let Ok(seconds) = u64::try_from(message.created_at.timestamp()) {
        props = props.with_timestamp(seconds);
    }
    // The event type header names the topic of events; `type` keeps it for other messages
    // as long as it fits.
    if let Ok(topic) = ShortString::try_new(message.topic.as_str()) {
        props = props.with_type(topic);
    }
    Ok(props)
}

/// String headers as an AMQP table.
fn table(headers: &BTreeMap<String, String>) -> Result<FieldTable, RabbitMqError> {
    let mut table = FieldTable::default();
    for (key, value) in headers {
        table.insert(name("header name", key)?, AMQPValue::LongString(value.as_str().into()));
    }
    Ok(table)
}

/// The outbox message a delivery carries; an error says why it is not one (it goes to
/// the dead letters as it is).
pub(crate) fn decode(queue: &str, props: &BasicProperties, body: &[u8]) -> Result<OutboxMessage, RabbitMqError> {
    let malformed = |reason: String| RabbitMqError::Malformed { queue: queue.to_owned(), reason };
    let id = message_id(props).ok_or_else(|| {
        malformed(match props.message_id() {
            Some(id) => format!("message id `{id}` is not a UUID"),
            None => "no message id".to_owned(),
        })
    })?;
    let payload = std::str::from_utf8(body)
        .map_err(|e| malformed(format!("message {id}: the body is not UTF-8 ({e})")))?
        .to_owned();
    let mut headers = BTreeMap::new();
    for (key, value) in props.headers().iter().flatten() {
        if key.as_str().starts_with("x-") || key.as_str() == CREATED_AT {
            continue;
        }
        let text = match value {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes())
                .map_err(|_| malformed(format!("message {id}: header `{key}` is not UTF-8")))?
                .to_owned(),
            other => {
                text_of(other).ok_or_else(|| malformed(format!("message {id}: header `{key}` is not a string")))?
            }
        };
        headers.insert(key.to_string(), text);
    }
    let topic = headers
        .get(headers::EVENT_TYPE)
        .cloned()
        .or_else(|| props.kind().as_ref().map(ToString::to_string))
        .ok_or_else(|| malformed(format!("message {id}: no `{}` header", headers::EVENT_TYPE)))?;
    Ok(OutboxMessage { id, topic, payload, headers, created_at: created_at(props) })
}

/// How many times the broker delivered a message before this delivery (`x-delivery-count`
/// of quorum queues: after a consumer crashed, lost its connection or was cancelled).
pub(crate) fn earlier_deliveries(props: &BasicProperties) -> u32 {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(DELIVERY_COUNT))
        .and_then(integer)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// The properties of a dead letter: those of the delivery with the error, the number of
/// deliveries and the time ([`DeadMessage::headers`] for a message that decoded). A
/// message without a usable id gets one, so that it can be listed and replayed.
pub(crate) fn dead_properties(
    props: &BasicProperties,
    message: Option<&OutboxMessage>,
    error: &str,
    deliveries: u32,
    dead_at: DateTime<Utc>,
) -> Result<BasicProperties, RabbitMqError> {
    let error = truncate(error, MAX_ERROR_LEN);
    let mut table = match message {
        Some(message) => {
            let dead = DeadMessage { message: message.clone(), error: error.to_owned(), deliveries, dead_at };
            table(&dead.headers())?
        }
        None => {
            let mut table = without_adapter_headers(props);
            table.insert(headers::ERROR.into(), AMQPValue::LongString(error.into()));
            table.insert(headers::DELIVERIES.into(), AMQPValue::LongString(deliveries.to_string().into()));
            table
        }
    };
    table.insert(DEAD_AT.into(), AMQPValue::LongString(rfc3339(dead_at).into()));
    if let Some(created) = props.headers().as_ref().and_then(|h| h.inner().get(CREATED_AT)) {
        table.insert(CREATED_AT.into(), created.clone());
    }
    let mut dead = props.clone().with_headers(table).with_delivery_mode(2);
    if message_id(props).is_none() {
        dead = dead.with_message_id(Uuid::now_v7().to_string().into());
    }
    Ok(dead)
}

/// A dead letter as listed: read leniently (a body that is not UTF-8 is shown lossily).
pub(crate) fn read_dead(props: &BasicProperties, body: &[u8]) -> DeadMessage {
    let mut headers = BTreeMap::new();
    let (mut error, mut deliveries, mut dead_at) = (String::new(), 0, None);
    for (key, value) in props.headers().iter().flatten() {
        let text = match value {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            other => text_of(other).unwrap_or_else(|| format!("{other:?}")),
        };
        match key.as_str() {
            headers::ERROR => error = text,
            headers::DELIVERIES => deliveries = text.parse().unwrap_or(0),
            DEAD_AT => dead_at = parse_time(&text),
            k if k.starts_with("x-") || k == CREATED_AT => {}
            k => {
                headers.insert(k.to_owned(), text);
            }
        }
    }
    let topic = headers
        .get(headers::EVENT_TYPE)
        .cloned()
        .or_else(|| props.kind().as_ref().map(ToString::to_string))
        .unwrap_or_default();
    let message = OutboxMessage {
        id: message_id(props).unwrap_or(Uuid::nil()),
        topic,
        payload: String::from_utf8_lossy(body).into_owned(),
        headers,
        created_at: created_at(props),
    };
    DeadMessage { message, error, deliveries, dead_at: dead_at.unwrap_or_else(|| created_at(props)) }
}

/// The properties a dead letter is published again with: as first published, without
/// the dead-letter headers.
pub(crate) fn replay_properties(props: &BasicProperties) -> BasicProperties {
    props.clone().with_headers(without_adapter_headers(props))
}

/// The headers of a delivery without the broker's (`x-…`) and the dead letters' own.
fn without_adapter_headers(props: &BasicProperties) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in props.headers().iter().flatten() {
        let k = key.as_str();
        if !(k.starts_with("x-") || k == headers::ERROR || k == headers::DELIVERIES || k == DEAD_AT) {
            table.insert(key.clone(), value.clone());
        }
    }
    table
}

/// The message id, when it is a UUID.
pub(crate) fn message_id(props: &BasicProperties) -> Option<Uuid> {
    props.message_id().as_ref().and_then(|id| Uuid::try_parse(id.as_str()).ok())
}

/// When the message was staged: [`CREATED_AT`], else the `timestamp` property, else now.
fn created_at(props: &BasicProperties) -> DateTime<Utc> {
    let exact = props.headers().as_ref().and_then(|h| h.inner().get(CREATED_AT)).and_then(|v| match v {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().and_then(parse_time),
        _ => None,
    });
    if let Some(exact) = exact {
        return exact;
    }
    props
        .timestamp()
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .unwrap_or_else(Utc::now)
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

fn integer(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

/// A header value other than a long string as text, if it is a scalar.
fn text_of(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::ShortString(s) => Some(s.to_string()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        AMQPValue::Float(f) => Some(f.to_string()),
        AMQPValue::Double(f) => Some(f.to_string()),
        other => integer(other).map(|n| n.to_string()),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> OutboxMessage {
        let mut headers = BTreeMap::new();
        headers.insert(headers::KIND.to_owned(), "event".to_owned());
        headers.insert(headers::EVENT_TYPE.to_owned(), "Placed".to_owned());
        headers.insert(headers::STREAM.to_owned(), "Order/o1".to_owned());
        OutboxMessage {
            id: Uuid::now_v7(),
            topic: "Placed".into(),
            payload: r#"{"order":"o1"}"#.into(),
            headers,
            created_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
        }
    }

    #[test]
    fn a_message_round_trips() {
        let m = message();
        let props = properties(&m).unwrap();
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(props.content_type().as_ref().map(ShortString::as_str), Some("application/json"));
        assert_eq!(decode("q", &props, m.payload.as_bytes()).unwrap(), m);
    }

    #[test]
    fn broken_messages_are_typed_errors() {
        let m = message();
        let props = properties(&m).unwrap();
        let e = decode("q", &props, &[0xff, 0xfe]).unwrap_err();
        assert!(matches!(&e, RabbitMqError::Malformed { reason, .. } if reason.contains("UTF-8")), "{e}");
        let e = decode("q", &props.clone().with_message_id("nope".into()), b"{}").unwrap_err();
        assert!(matches!(&e, RabbitMqError::Malformed { reason, .. } if reason.contains("not a UUID")), "{e}");
        let e = decode("q", &BasicProperties::default(), b"{}").unwrap_err();
        assert!(matches!(&e, RabbitMqError::Malformed { reason, .. } if reason.contains("no message id")), "{e}");
        let mut long = m.clone();
        long.headers.insert("h".repeat(300), String::new());
        assert!(matches!(properties(&long), Err(RabbitMqError::NameTooLong { .. })));
    }

    #[test]
    fn a_dead_letter_keeps_the_message_error_and_count_and_replays_as_published() {
        let m = message();
        let props = properties(&m).unwrap();
        let now = Utc::now();
        let dead = dead_properties(&props, Some(&m), "boom", 5, now).unwrap();
        let listed = read_dead(&dead, m.payload.as_bytes());
        assert_eq!(listed.message, m);
        assert_eq!((listed.error.as_str(), listed.deliveries), ("boom", 5));
        assert_eq!(listed.dead_at, now);
        assert_eq!(decode("q", &replay_properties(&dead), m.payload.as_bytes()).unwrap(), m);
    }

    #[test]
    fn a_malformed_dead_letter_gets_an_id_and_a_short_error() {
        let raw = BasicProperties::default().with_headers(FieldTable::default());
        let dead = dead_properties(&raw, None, &"é".repeat(5000), 1, Utc::now()).unwrap();
        let listed = read_dead(&dead, &[0xff]);
        assert!(!listed.message.id.is_nil());
        assert!(listed.error.len() <= MAX_ERROR_LEN && listed.error.starts_with('é'));
        assert_eq!(listed.message.payload, "\u{fffd}");
    }

    #[test]
    fn the_delivery_count_reads_any_integer() {
        let mut table = FieldTable::default();
        table.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(3));
        assert_eq!(earlier_deliveries(&BasicProperties::default().with_headers(table)), 3);
        assert_eq!(earlier_deliveries(&BasicProperties::default()), 0);
    }
}
