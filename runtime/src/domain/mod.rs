//! The domain side: events, aggregates, envelopes and ids.

mod envelope;

pub use envelope::{BadCursor, Cursor, Envelope, EventHeader, Metadata};

use std::any::{Any, TypeId};
use std::fmt::{Debug, Display};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A domain event: a fact with a stable type name and a schema version.
///
/// Implemented by `#[event]`; the name is what is stored, so renaming the Rust type does
/// not break stored streams.
///
/// Its payload is read and written through [`Payload`], which every `Serialize +
/// Deserialize` type has. Generic code over `E: Event` that calls serde itself adds the
/// bounds it needs (`E: Event + Serialize + DeserializeOwned`), or calls
/// [`Payload::to_json_checked`] and [`Payload::from_json`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not marked `#[event]`",
    note = "mark the type with `#[event]` (and derive `Serialize`, `Deserialize`, `Debug`, `Clone`)"
)]
pub trait Event: Payload + Send + Sync + 'static {
    /// The stable type name written to the store (defaults to the Rust type name).
    const NAME: &'static str;
    /// The schema version of the payload shape (defaults to 1).
    const VERSION: u32;
}

/// What an event's payload needs to be stored and read back: `Serialize` and
/// `Deserialize`. Implemented for every type that has both; never by hand.
///
/// Generic code reads and writes an `E: Event` through these methods: `Event` has this
/// trait, not serde's, as its supertrait, so an event missing a derive is one error that
/// says so (serde's two traits would each be reported, with their implementors).
#[diagnostic::on_unimplemented(
    message = "event `{Self}` cannot be stored: it does not implement `Serialize` and `Deserialize`",
    label = "derive `Serialize` and `Deserialize` on `{Self}`",
    note = "write `#[derive(Debug, Clone, Serialize, Deserialize)]` under `#[event]`"
)]
pub trait Payload: Sized {
    /// The payload as JSON text, refused when it would not read back (see [`encode_checked`]).
    fn to_json_checked(&self) -> serde_json::Result<String>;
    /// Reads the payload from JSON text.
    fn from_json(json: &str) -> serde_json::Result<Self>;
    /// Reads the payload from a JSON value (an upcast payload).
    fn from_json_value(value: serde_json::Value) -> serde_json::Result<Self>;
    /// Reads a whole envelope of this payload from JSON text (outbox delivery).
    fn envelope_from_json(json: &str) -> serde_json::Result<Envelope<Self>>;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Payload for T {
    fn to_json_checked(&self) -> serde_json::Result<String> {
        encode_checked(self)
    }

    fn from_json(json: &str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }

    fn from_json_value(value: serde_json::Value) -> serde_json::Result<Self> {
        serde_json::from_value(value)
    }

    fn envelope_from_json(json: &str) -> serde_json::Result<Envelope<Self>> {
        serde_json::from_str(json)
    }
}

/// The event enum `#[aggregate]` generates from its `events(..)` list.
pub trait AggregateEvent: Debug + Clone + Send + Sync + Sized + 'static {
    /// The stable names of every event of the aggregate.
    const NAMES: &'static [&'static str];
    /// The stored type name of this event.
    fn event_type(&self) -> &'static str;
    /// The schema version of this event's payload.
    fn schema_version(&self) -> u32;
    /// The `TypeId` of the event struct inside the variant.
    fn payload_type_id(&self) -> TypeId;
    /// Serializes the payload (without the variant tag) to JSON text.
    fn to_json(&self) -> serde_json::Result<String>;
    /// The current schema version of the event stored as `event_type`; `None` when the
    /// name is not one of this aggregate's events.
    fn current_version(event_type: &str) -> Option<u32>;
    /// Decodes a payload by its stored type name; `None` when the name is not one of
    /// this aggregate's events.
    fn from_json(event_type: &str, payload: &str) -> Option<serde_json::Result<Self>>;
    /// Decodes an (upcast) payload by its stored type name.
    fn from_value(event_type: &str, payload: serde_json::Value) -> Option<serde_json::Result<Self>>;
    /// Wraps the payload in an [`Envelope`] of its own type, erased for dispatch.
    fn into_envelope(self, header: EventHeader) -> Box<dyn Any + Send + Sync>;
}

/// How an aggregate is persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// The event stream is the truth; state is rebuilt by applying events.
    EventSourced,
    /// A JSON state row with a version column is the truth; events are still journaled
    /// to the event log in the same transaction for handlers, projections and the outbox.
    /// The journal stream and the row share their version (the row's version check and
    /// the stream's expected version guard the same write), so state rows are written
    /// through the framework only.
    StateStored,
}

/// Ids of aggregates: anything that prints as the stream id.
pub trait AggregateId: Display + Clone + Send + Sync + 'static {}
impl<T: Display + Clone + Send + Sync + 'static> AggregateId for T {}

/// A consistency boundary that decides on commands and evolves by events.
///
/// Implemented by `#[aggregate]` on the struct; the `#[aggregate]` on the impl block
/// supplies the `#[handle]` and `#[apply]` methods.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "not marked `#[aggregate(..)]`",
    note = "mark the struct with `#[aggregate(id = .., events(..), error = ..)]` and derive `Default`, `Serialize`, `Deserialize`"
)]
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stream type, the aggregate's name in storage.
    const TYPE: &'static str;
    /// How the aggregate is persisted.
    const STORAGE: Storage;
    /// The id type; its `Display` form is the stream id.
    type Id: AggregateId;
    /// The generated event enum.
    type Event: AggregateEvent;
    /// The domain error its commands return.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Evolves the state by one event.
    fn apply(&mut self, event: &Self::Event);
    /// The fields of a domain error as JSON, for callers outside Rust (an HTTP problem):
    /// `#[aggregate]` gives them when the error type is `Serialize`.
    fn error_fields(error: &Self::Error) -> Option<serde_json::Value> {
        let _ = error;
        None
    }
    /// How a state-stored aggregate's root command merges its state with the one another
    /// writer stored first, instead of deciding again (`#[aggregate(state_stored,
    /// on_conflict = merge(..))]`); `None`: a conflict is decided again.
    fn on_conflict() -> Option<&'static crate::conflict::MergeStrategy> {
        None
    }
}

/// One `#[apply]` method: how the aggregate evolves by event `E`.
#[diagnostic::on_unimplemented(
    message = "aggregate `{Self}` has no `#[apply]` method for event `{E}`",
    label = "`{E}` is listed in `events(..)` but never applied",
    note = "add `#[apply] fn on_event(&mut self, event: &{E}) {{ .. }}` to the impl block of `{Self}` marked `#[aggregate]` (an impl block without `#[aggregate]` is not read)"
)]
pub trait Apply<E> {
    /// Applies the event.
    fn apply_event(&mut self, event: &E);
}

/// Marks `Self` as an event listed in `#[aggregate(events(..))]` of `A`.
#[diagnostic::on_unimplemented(
    message = "event `{Self}` is not one of the events of aggregate `{A}`",
    label = "not listed in `events(..)`",
    note = "add `{Self}` to `#[aggregate(events(..))]` on the struct `{A}`"
)]
pub trait EventOf<A> {}

/// When a command may run, depending on whether its aggregate exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreationPolicy {
    /// The aggregate must exist (`#[handle]`); otherwise [`crate::Error::NotFound`].
    MustExist,
    /// The aggregate must not exist (`#[handle(create)]`); otherwise
    /// [`crate::Error::AlreadyExists`].
    Create,
    /// Runs on the existing aggregate or on a fresh default one
    /// (`#[handle(create_if_missing)]`).
    CreateIfMissing,
}

/// One `#[handle]` method: how the aggregate decides on command `C`.
#[diagnostic::on_unimplemented(
    message = "aggregate `{Self}` has no `#[handle]` method for command `{C}`",
    label = "`{C}` names this aggregate but it never handles it",
    note = "add `#[handle] fn on_command(&self, cmd: &{C}) -> Result<Vec<..Event>, ..Error>` to the impl block of `{Self}` marked `#[aggregate]` (an impl block without `#[aggregate]` is not read)"
)]
pub trait Handle<C>: Aggregate {
    /// Whether the aggregate must exist, must not, or either.
    const POLICY: CreationPolicy;
    /// Decides: returns the events the command causes, or a domain error. A method that
    /// schedules deadlines is called through [`Handle::decide`]; here its deadlines are
    /// dropped.
    fn handle(&self, cmd: &C) -> Result<Vec<Self::Event>, Self::Error>;

    /// Decides with the aggregate's deadlines at hand (what the runtime calls): the
    /// deadlines scheduled or cancelled are committed with the events (see
    /// [`mod@crate::deadline`]). By default, [`Handle::handle`].
    fn decide(
        &self,
        cmd: &C,
        deadlines: &mut crate::deadline::Deadlines<Self>,
    ) -> Result<Vec<Self::Event>, Self::Error> {
        let _ = deadlines;
        self.handle(cmd)
    }
}

/// Serializes `value` to JSON text and checks that the text reads back into `T`.
///
/// serde_json writes a non-finite float (`NaN`, `inf`) as `null`, and a hand-written
/// `Serialize` can disagree with its `Deserialize`; either way the stored payload could
/// never be loaded again. Every event payload and state row goes through this before
/// anything is written, so such a value is refused when it is staged, with the path of
/// the field that does not read back, instead of poisoning the stream for ever. It
/// costs one extra deserialization per staged payload.
pub fn encode_checked<T: Serialize + DeserializeOwned>(value: &T) -> serde_json::Result<String> {
    let json = serde_json::to_string(value)?;
    if serde_json::from_str::<T>(&json).is_ok() {
        return Ok(json);
    }
    let de = &mut serde_json::Deserializer::from_str(&json);
    let (path, cause) = match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(_) => (String::from("?"), String::from("reads back only with trailing data")),
        Err(e) => (e.path().to_string(), e.into_inner().to_string()),
    };
    Err(<serde_json::Error as serde::ser::Error>::custom(format!(
        "field `{path}` does not read back after serialization (a NaN or infinite float is written as null): \
         {cause}"
    )))
}

/// A fresh UUIDv7 (48-bit millisecond timestamp, 74 random bits), the id of events and
/// commands. The random bits come from a per-thread generator seeded once from the OS,
/// so an id costs a clock read, not a system call.
pub fn new_id() -> uuid::Uuid {
    use std::time::{SystemTime, UNIX_EPOCH};
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let (a, b) = (random_u64(), random_u64());
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a.to_le_bytes());
    random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(millis).unwrap_or(u64::MAX), &random).into_uuid()
}

/// A fresh random UUID (version 4) without a clock read: correlation ids, which need to
/// be unique, not ordered.
pub fn new_correlation_id() -> uuid::Uuid {
    let bytes = (u128::from(random_u64()) << 64 | u128::from(random_u64())).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// wyrand over a per-thread state seeded once from the OS (std's `RandomState`).
#[allow(clippy::cast_possible_truncation)] // folding the 128-bit product is the algorithm
fn random_u64() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_version_7_unique_and_time_ordered_across_milliseconds() {
        let a = super::new_id();
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| super::new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert_eq!(a.get_version_num(), 7);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(super::new_id() > a);
        let other_thread = std::thread::spawn(super::new_id).join().unwrap();
        assert!(!ids.contains(&other_thread));
    }

    #[test]
    fn correlation_ids_are_random_version_4() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| super::new_correlation_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.get_version_num() == 4));
    }
}
