//! Listing and replaying the dead letters of a group.
//!
//! Both read the dead-letter queue with `basic.get` on a channel of their own without
//! acknowledging, so every message stays in the queue: closing the channel gives back
//! what was only read. Replaying acknowledges (removes) a dead letter only after its
//! copy was confirmed in the partition queue.
//!
//! The broker takes messages back asynchronously, after the channel closed: both wait
//! (boundedly) until the dead-letter queue holds again every message they read, so that
//! the next listing sees them. The queue's order is not necessarily the order in which
//! messages died: a listing reads them all (up to [`MAX_SCAN`]) and sorts them by the
//! time they died.

use std::collections::HashSet;
use std::time::Duration;

use cqrs_ddd::broker::{DeadMessage, partition_key, partition_of};
use cqrs_ddd::{Error, Result};
use lapin::Channel;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use uuid::Uuid;

use crate::RabbitMq;
use crate::codec;
use crate::error::{ANSWER_TIMEOUT, answer};
use crate::topology::name;

/// The most dead letters of one group a listing reads.
pub const MAX_SCAN: usize = 100_000;

pub(crate) async fn list(bus: &RabbitMq, group: &str, limit: usize) -> Result<Vec<DeadMessage>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let queue = bus.topology.dead_queue(group);
    let channel = bus.link.channel().await?;
    let result = read(&channel, &queue).await;
    close(&channel).await;
    let mut dead = result?;
    settle(bus, &queue, dead.len()).await?;
    dead.sort_by_key(|d| (d.dead_at, d.message.id));
    dead.truncate(limit);
    Ok(dead)
}

async fn read(channel: &Channel, queue: &str) -> Result<Vec<DeadMessage>> {
    let mut dead = Vec::new();
    if !exists(channel, queue).await? {
        return Ok(dead);
    }
    while dead.len() < MAX_SCAN {
        let Some(got) = get(channel, queue).await? else { break };
        dead.push(codec::read_dead(&got.delivery.properties, &got.delivery.data));
    }
    Ok(dead)
}

pub(crate) async fn replay(bus: &RabbitMq, group: &str, ids: &[Uuid]) -> Result<u64> {
    let wanted: HashSet<Uuid> = ids.iter().copied().collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let queue = bus.topology.dead_queue(group);
    let channel = bus.link.channel().await?;
    let mut kept = 0;
    let result = republish(bus, &channel, group, &wanted, &mut kept).await;
    close(&channel).await;
    let settled = settle(bus, &queue, kept).await;
    let replayed = result?;
    settled?;
    Ok(replayed)
}

/// Republishes the dead letters in `wanted`; counts in `kept` those it read and leaves.
async fn republish(
    bus: &RabbitMq,
    channel: &Channel,
    group: &str,
    wanted: &HashSet<Uuid>,
    kept: &mut usize,
) -> Result<u64> {
    let queue = bus.topology.dead_queue(group);
    let mut replayed = 0;
    if !exists(channel, &queue).await? {
        return Ok(replayed);
    }
    // Every dead letter once: those read stay unacknowledged until the channel closes.
    while let Some(got) = get(channel, &queue).await? {
        *kept += 1;
        let props = &got.delivery.properties;
        let Some(id) = codec::message_id(props).filter(|id| wanted.contains(id)) else { continue };
        let dead = codec::read_dead(props, &got.delivery.data);
        let partition = partition_of(&partition_key(&dead.message), bus.topology.partitions);
        let target = bus.topology.partition_queue(group, partition);
        bus.send("", &target, &got.delivery.data, codec::replay_properties(props)).await?;
        let acked = answer("basic.ack", got.delivery.acker.ack(BasicAckOptions::default())).await;
        if !matches!(acked, Ok(true)) {
            return Err(Error::store(format!(
                "dead letter {id} of `{group}` was published again to `{target}` but could not be removed from \
                 `{queue}` (the channel closed); it is still listed, and replaying it again delivers it again"
            )));
        }
        tracing::info!(message = %id, %group, queue = %target, "dead letter replayed");
        *kept -= 1;
        replayed += 1;
    }
    Ok(replayed)
}

/// Closes a channel of our own: the broker takes back every message read on it and not
/// acknowledged.
async fn close(channel: &Channel) {
    if channel.status().connected() {
        let _ = answer("channel.close", channel.close(200, "OK".into())).await;
    }
}

/// Waits until `queue` holds at least `held` messages ready again (those a closed channel
/// read and did not acknowledge), for at most [`ANSWER_TIMEOUT`].
async fn settle(bus: &RabbitMq, queue: &str, held: usize) -> Result<()> {
    if held == 0 {
        return Ok(());
    }
    let channel = bus.link.channel().await?;
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    let result = loop {
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let declare = channel.queue_declare(name("queue", queue)?, options, FieldTable::default());
        let ready = match answer(format!("queue.declare (passive) `{queue}`"), declare).await {
            Ok(info) => usize::try_from(info.message_count()).unwrap_or(usize::MAX),
            Err(e) => break Err(e.into()),
        };
        if ready >= held {
            break Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(%queue, ready, held, "the broker has not taken every dead letter back yet");
            break Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    close(&channel).await;
    result
}

/// Whether `queue` exists (a group that never consumed has no dead letters). The broker
/// closes the channel when it does not: nothing else is done on it then.
async fn exists(channel: &Channel, queue: &str) -> Result<bool> {
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let declare = channel.queue_declare(name("queue", queue)?, options, FieldTable::default());
    match answer(format!("queue.declare (passive) `{queue}`"), declare).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn get(channel: &Channel, queue: &str) -> Result<Option<BasicGetMessage>> {
    let get = channel.basic_get(name("queue", queue)?, BasicGetOptions { no_ack: false });
    Ok(answer(format!("basic.get from `{queue}`"), get).await?)
}
