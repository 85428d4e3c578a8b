//! Events delivered through the outbox (by the in-process relay or a broker): each async
//! handler in a unit of work of its own, exactly once in effect.

use std::any::Any;
use std::time::Duration;

use tracing::Instrument;
use uuid::Uuid;

use crate::Backoff;
use crate::broker::{self, headers};
use crate::context::{self, RequestContext};
use crate::cqrs::context::EventContext;
use crate::cqrs::mediator::{EventHandlerEntry, Mediator};
use crate::cqrs::root::Root;
use crate::error::{Error, Result};
use crate::ports::OutboxMessage;
use crate::telemetry;

/// Conflicts an async handler's unit of work retries before the delivery fails.
const CONFLICT_RETRIES: u32 = 5;

/// The namespace of delivery idempotency keys (a UUIDv5 of `event id/handler`).
const DELIVERY_KEYS: Uuid = Uuid::from_u128(0x6371_7273_6464_6464_8000_0000_6465_6c76);

/// The idempotency key under which `handler`'s unit of work for `event_id` commits.
pub(crate) fn delivery_key(event_id: Uuid, handler: &str) -> Uuid {
    Uuid::new_v5(&DELIVERY_KEYS, format!("{event_id}/{handler}").as_bytes())
}

impl Mediator {
    /// Runs the `#[event_handler(async)]`s and saga steps of the event an outbox row (or
    /// a broker message made from one) carries, in the context its headers restore
    /// (correlation id, tenant, principal, trace context; see [`crate::broker`]).
    ///
    /// Each async handler runs in a unit of work of its own: the commands it sends join
    /// it, and it commits with an idempotency key made of the event id and the handler's
    /// name. A redelivered event is therefore refused by the store for every handler
    /// that already committed, and changes nothing; a version conflict runs the handler
    /// again. What a handler does outside its unit of work (a call to another service)
    /// may happen once per delivery. Saga steps record the events they processed in the
    /// saga's state instead.
    ///
    /// Every handler runs even when one fails; the first error is returned, so the
    /// caller (a relay, a broker consumer) delivers the message again later. An event
    /// type no `#[event]` of this program registers is [`Error::UnknownMessage`]; an
    /// envelope that does not decode is [`Error::Serialization`].
    pub async fn deliver(&self, message: &OutboxMessage) -> Result<()> {
        match message.headers.get(headers::KIND).map(String::as_str) {
            Some("event") => {}
            _ => {
                return Err(Error::handler(format!(
                    "outbox topic `{}` is not an event: it is for other consumers, and no handler of this program \
                     takes it",
                    message.topic
                )));
            }
        }
        let event_type = message.headers.get(headers::EVENT_TYPE).unwrap_or(&message.topic);
        let Some((type_id, decode)) = self.rt.event_decoders.get(event_type.as_str()) else {
            return Err(Error::UnknownMessage { kind: "event", name: event_type.clone() });
        };
        let Some(handlers) = self.rt.async_handlers.get(type_id) else { return Ok(()) };
        let envelope = decode(&message.payload).map_err(|source| Error::Serialization {
            stream: message.headers.get(headers::STREAM).cloned().unwrap_or_else(|| "<outbox>".to_owned()),
            version: 0,
            event_type: event_type.clone(),
            source,
        })?;
        let mut request = broker::request_of(message)?;
        let span = delivery_span(message, event_type, handlers.len());
        if let Some(traceparent) = span.in_scope(telemetry::current_traceparent) {
            // What the handlers stage is caused by this delivery, not by its sender.
            request.headers.insert(headers::TRACEPARENT.to_owned(), traceparent);
        }
        let ctx = EventContext::new(self.clone());
        async {
            let mut first = None;
            for h in handlers {
                let result = if h.unit_of_work {
                    self.deliver_once(h, &*envelope, &ctx, &request, message.id).await
                } else {
                    context::enter(request.clone(), None, h.handler.call(&*envelope, &ctx)).await
                };
                if let Err(e) = result {
                    metrics::counter!(crate::metrics::ASYNC_HANDLER_FAILURES_TOTAL, "handler" => h.name).increment(1);
                    tracing::warn!(handler = h.name, event = %event_type, message = %message.id, error = %e, "async event handler failed");
                    first.get_or_insert(e);
                }
            }
            first.map_or(Ok(()), Err)
        }
        .instrument(span)
        .await
    }

    /// One async handler in its own unit of work under its delivery key.
    async fn deliver_once(
        &self,
        h: &EventHandlerEntry,
        envelope: &(dyn Any + Send + Sync),
        ctx: &EventContext,
        request: &RequestContext,
        event_id: Uuid,
    ) -> Result<()> {
        let root = Root::new(self.clone(), request.clone(), Some(delivery_key(event_id, h.name)));
        let backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(200)).with_jitter(0.5);
        let mut attempt = 0;
        loop {
            let (uow, _) = root.begin(h.name);
            let result = uow.enter(request.clone(), h.handler.call(envelope, ctx)).await;
            if result.is_ok() && uow.is_untouched() {
                // Nothing to commit, so no key to record: a handler that only acts
                // outside its unit of work acts again on a redelivery either way.
                uow.rollback();
                return Ok(());
            }
            match root.finish(&uow, result).await {
                Err(Error::AlreadyProcessed { .. }) => {
                    metrics::counter!(crate::metrics::REDELIVERIES_IGNORED_TOTAL, "handler" => h.name).increment(1);
                    return Ok(());
                }
                Err(e) if e.is_conflict() && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(backoff.delay(attempt)).await;
                }
                other => return other,
            }
        }
    }
}

/// The span the handlers of a delivered message run in, `cqrs_ddd.deliver`, a child of the
/// span that staged the message when its `traceparent` header names one and a
/// [`telemetry::Propagator`] is installed.
fn delivery_span(message: &OutboxMessage, event_type: &str, handlers: usize) -> tracing::Span {
    let span = tracing::info_span!(
        "cqrs_ddd.deliver",
        event_type,
        stream = message.headers.get(headers::STREAM).map_or("", String::as_str),
        event_id = %message.id,
        handlers,
    );
    if let Some(traceparent) = message.headers.get(headers::TRACEPARENT) {
        telemetry::set_parent(&span, traceparent);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_keys_are_per_event_and_handler() {
        let e = Uuid::now_v7();
        assert_eq!(delivery_key(e, "a"), delivery_key(e, "a"));
        assert_ne!(delivery_key(e, "a"), delivery_key(e, "b"));
        assert_ne!(delivery_key(e, "a"), delivery_key(Uuid::now_v7(), "a"));
    }
}
