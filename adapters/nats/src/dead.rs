//! Dead letters: a stream of their own, one subject per consumer group.

use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use chrono::Utc;
use cqrs_ddd::broker::{DeadMessage, headers};
use cqrs_ddd::{Error, Result};
use uuid::Uuid;

use crate::bus::{Nats, REPLAY_GROUP};
use crate::consumer::outbox_message;

/// A dead letter and where it sits in the dead-letter stream.
struct Stored {
    sequence: u64,
    dead: DeadMessage,
}

impl Nats {
    /// Reads up to `limit` dead letters of `group`, oldest first.
    async fn read_dead(&self, stream: &Stream, group: &str, limit: usize) -> Result<Vec<Stored>> {
        let subject = self.dead_subject(group);
        let mut found = Vec::new();
        let mut from = 1;
        while found.len() < limit {
            let message =
                match stream.raw_message_builder().sequence(from).next_by_subject(subject.clone()).send().await {
                    Ok(m) => m,
                    Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => break,
                    Err(e) => return Err(Error::store(e)),
                };
            from = message.sequence + 1;
            let (outbox, _) = outbox_message(&message.subject, Some(&message.headers), &message.payload);
            let read = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
            let dead = DeadMessage {
                message: outbox,
                error: read(headers::ERROR).unwrap_or_default(),
                deliveries: read(headers::DELIVERIES).and_then(|d| d.parse().ok()).unwrap_or(0),
                dead_at: message.time,
            };
            found.push(Stored { sequence: message.sequence, dead });
        }
        Ok(found)
    }

    /// See [`cqrs_ddd::broker::Bus::dead_letters`].
    pub(crate) async fn list_dead(&self, group: &str, limit: usize) -> Result<Vec<DeadMessage>> {
        let stream = self.dead_stream().await?;
        Ok(self.read_dead(&stream, group, limit).await?.into_iter().map(|s| s.dead).collect())
    }

    /// See [`cqrs_ddd::broker::Bus::replay_dead`]: published again on their partition,
    /// marked for `group` only, then deleted from the dead letters.
    pub(crate) async fn replay(&self, group: &str, ids: &[Uuid]) -> Result<u64> {
        let stream = self.dead_stream().await?;
        let mut replayed = 0;
        for stored in self.read_dead(&stream, group, usize::MAX).await? {
            if !ids.contains(&stored.dead.message.id) {
                continue;
            }
            let message = &stored.dead.message;
            let msg_id = format!("{}:replay:{}:{}", message.id, stored.sequence, Utc::now().timestamp_micros());
            self.publish_on(self.subject_of(message), message, &msg_id, &[(REPLAY_GROUP, group.to_owned())]).await?;
            stream.delete_message(stored.sequence).await.map_err(Error::store)?;
            replayed += 1;
        }
        Ok(replayed)
    }
}
