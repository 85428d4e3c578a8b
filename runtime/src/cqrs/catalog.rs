//! Messages by name, as JSON: the catalogue of every command and query the program can
//! receive from outside (HTTP, a CLI), how each is decoded, answered and described.
//!
//! Every `#[command]` and `#[query]` registers, besides its stored name, how its response
//! becomes JSON and (with the `openapi` feature) the JSON schemas of its payload and
//! response. Each is chosen where the macro expands, for the concrete type, by method
//! resolution on a probe (the first impl that applies wins, as for dispatch by name):
//!
//! - a response that is `Serialize` is encoded with `serde_json`; any other response
//!   fails the call with [`Error::Encode`] naming the type (`send` and `query` in Rust are
//!   not affected);
//! - a query that is `Deserialize`, has a `#[query_handler]` and a `Serialize` response
//!   can be asked by name ([`Mediator::query_json`]); otherwise asking it by name fails
//!   with [`Error::Decode`] saying what it lacks;
//! - with the `openapi` feature, a payload or response type that implements
//!   `utoipa::ToSchema` (or, for responses, `utoipa::PartialSchema`: numbers, strings,
//!   lists and options) carries its JSON schema; without one the schema is absent.

use std::cell::Cell;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cqrs::by_name::SendOptions;
use crate::cqrs::{Command, Mediator, Query, QueryHandler};
use crate::domain::{Cursor, Metadata};
use crate::error::{Error, Result};
pub use crate::middleware::MessageKind;
use crate::middleware::Reply;

/// A message's payload as it arrived.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A JSON document (a request body).
    Json(&'a str),
    /// `application/x-www-form-urlencoded` (a URL's query string): each field a key.
    Form(&'a str),
}

/// What a command sent by name answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    /// The handler's response, as JSON (`null` for `()`).
    pub response: serde_json::Value,
    /// Where the reader of all events stands once it has read the last event the
    /// command committed (`None` when it committed none): a read model whose projection
    /// has reached it shows the command's effects (see [`Mediator::wait_for_position`]).
    /// Its text form (`Display`, `FromStr`) travels in HTTP headers.
    pub position: Option<Cursor>,
}

/// One command or query of the catalogue ([`Mediator::messages`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageInfo {
    /// Command or query.
    pub kind: MessageKind,
    /// The stored name it is sent or asked by.
    pub name: &'static str,
    /// The Rust type.
    pub type_name: &'static str,
    /// The JSON schema of its payload (with the `openapi` feature, when the type
    /// implements `utoipa::ToSchema`).
    pub request_schema: Option<serde_json::Value>,
    /// The JSON schema of its response, likewise.
    pub response_schema: Option<serde_json::Value>,
    /// The named schemas the two above refer to (`#/components/schemas/{name}`).
    pub components: Vec<(String, serde_json::Value)>,
    /// For a query, the projections whose read models it reads (`#[query(reads = [..])]`;
    /// empty: every projection the application hosts).
    pub reads: &'static [&'static str],
}

/// Turns a command's reply into JSON.
pub type EncodeReply = fn(Reply) -> Result<serde_json::Value>;

/// A type's JSON schema, pushing the named schemas it refers to.
pub type SchemaFn = fn(&mut Vec<(String, serde_json::Value)>) -> Option<serde_json::Value>;

/// Decodes a query from its payload, answers it and encodes the answer.
pub type QueryJson =
    for<'a> fn(&'a Mediator, Payload<'a>, Option<Metadata>) -> BoxFuture<'a, Result<serde_json::Value>>;

/// The schema of a type without one.
pub fn no_schema(_: &mut Vec<(String, serde_json::Value)>) -> Option<serde_json::Value> {
    None
}

/// The probe of dispatch by name, which the choices here are made on too (see the module
/// docs).
pub use crate::cqrs::by_name::Probe;

/// First choice for a command's reply: its response is `Serialize`.
pub trait EncodeSerialize {
    /// The encoding function.
    fn __cqrs_ddd_encode(&self) -> EncodeReply;
}

/// Last resort: the response cannot be encoded.
pub trait EncodeNot {
    /// The encoding function.
    fn __cqrs_ddd_encode(&self) -> EncodeReply;
}

impl<T: Command> EncodeSerialize for &Probe<T>
where
    T::Response: Serialize,
{
    fn __cqrs_ddd_encode(&self) -> EncodeReply {
        encode_reply::<T>
    }
}

impl<T: Command> EncodeNot for Probe<T> {
    fn __cqrs_ddd_encode(&self) -> EncodeReply {
        not_encodable::<T>
    }
}

fn encode_reply<T: Command>(reply: Reply) -> Result<serde_json::Value>
where
    T::Response: Serialize,
{
    let response = crate::cqrs::mediator::downcast_reply::<T::Response>(Ok(reply), T::NAME)?;
    serde_json::to_value(&response)
        .map_err(|e| Error::Encode { what: format!("the response of `{}`", T::NAME), source: e })
}

pub(crate) fn not_encodable<T: Command>(_: Reply) -> Result<serde_json::Value> {
    Err(unencodable(T::NAME, std::any::type_name::<T::Response>()))
}

fn unencodable(name: &str, response: &str) -> Error {
    let reason =
        format!("its response `{response}` does not implement `serde::Serialize`; derive it to answer over HTTP");
    Error::Encode { what: format!("the response of `{name}`"), source: serde::ser::Error::custom(reason) }
}

/// A domain error's fields: it is `Serialize`.
pub trait FieldsSerialize<T> {
    /// Its fields as JSON.
    fn __cqrs_ddd_fields(&self, error: &T) -> Option<serde_json::Value>;
}

/// A domain error without fields: not `Serialize`.
pub trait FieldsNot<T> {
    /// Nothing.
    fn __cqrs_ddd_fields(&self, error: &T) -> Option<serde_json::Value>;
}

impl<T: Serialize> FieldsSerialize<T> for &Probe<T> {
    fn __cqrs_ddd_fields(&self, error: &T) -> Option<serde_json::Value> {
        serde_json::to_value(error).ok()
    }
}

impl<T> FieldsNot<T> for Probe<T> {
    fn __cqrs_ddd_fields(&self, _: &T) -> Option<serde_json::Value> {
        None
    }
}

/// First choice for a query: it is `Deserialize` with a handler whose response is
/// `Serialize`.
pub trait AskViaHandler {
    /// The answering function.
    fn __cqrs_ddd_ask(&self) -> QueryJson;
}

/// Last resort: the query cannot be asked by name.
pub trait AskNot {
    /// The answering function.
    fn __cqrs_ddd_ask(&self) -> QueryJson;
}

impl<T: QueryHandler + DeserializeOwned> AskViaHandler for &Probe<T>
where
    T::Response: Serialize,
{
    fn __cqrs_ddd_ask(&self) -> QueryJson {
        ask::<T>
    }
}

impl<T: Query> AskNot for Probe<T> {
    fn __cqrs_ddd_ask(&self) -> QueryJson {
        not_askable::<T>
    }
}

/// Decodes a message of type `T` named `name` from `payload`.
pub(crate) fn decode<T: DeserializeOwned>(kind: &'static str, name: &str, payload: Payload<'_>) -> Result<T> {
    // Decoded once without tracking where; a payload that does not decode is decoded
    // again, tracking the path, to say where.
    let (path, reason) = match payload {
        Payload::Json(json) => {
            let e = match serde_json::from_str::<T>(json) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if e.is_syntax() || e.is_eof() {
                // Text that is not JSON has no field at fault.
                (None, format!("not JSON: {e}"))
            } else {
                let de = &mut serde_json::Deserializer::from_str(json);
                match serde_path_to_error::deserialize::<_, T>(de) {
                    Err(tracked) => (Some(tracked.path().to_string()), tracked.into_inner().to_string()),
                    Ok(_) => (None, e.to_string()),
                }
            }
        }
        Payload::Form(form) => {
            let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(form.as_bytes()));
            match serde_path_to_error::deserialize(de) {
                Ok(v) => return Ok(v),
                Err(e) => (Some(e.path().to_string()), e.into_inner().to_string()),
            }
        }
    };
    Err(Error::Decode { kind, name: name.to_owned(), reason, path: path.filter(|p| p != ".") })
}

fn ask<'a, T: QueryHandler + DeserializeOwned>(
    mediator: &'a Mediator,
    payload: Payload<'a>,
    metadata: Option<Metadata>,
) -> BoxFuture<'a, Result<serde_json::Value>>
where
    T::Response: Serialize,
{
    Box::pin(async move {
        let query = decode::<T>("query", T::NAME, payload)?;
        let response = match metadata {
            Some(metadata) => {
                let request = crate::context::RequestContext::for_root(Some(&metadata))?;
                request.scope(mediator.query(query)).await?
            }
            None => mediator.query(query).await?,
        };
        serde_json::to_value(&response)
            .map_err(|e| Error::Encode { what: format!("the response of `{}`", T::NAME), source: e })
    })
}

fn not_askable<'a, T: Query>(
    _: &'a Mediator,
    _: Payload<'a>,
    _: Option<Metadata>,
) -> BoxFuture<'a, Result<serde_json::Value>> {
    Box::pin(async {
        Err(Error::Decode {
            kind: "query",
            name: T::NAME.to_owned(),
            reason: format!(
                "`{}` cannot be asked by name: it needs `serde::Deserialize`, a `#[query_handler]`, and a response that implements `serde::Serialize`",
                std::any::type_name::<T>()
            ),
            path: None,
        })
    })
}

/// Schemas by probe, with the `openapi` feature: see [`crate::__cqrs_ddd_schema`].
#[cfg(feature = "openapi")]
pub mod schema {
    use super::{Command, Probe, QueryHandler, SchemaFn};

    fn to_json<S: serde::Serialize>(schema: &S) -> Option<serde_json::Value> {
        serde_json::to_value(schema).ok()
    }

    fn named<T: utoipa::ToSchema>(components: &mut Vec<(String, serde_json::Value)>) -> Option<serde_json::Value> {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        components.extend(nested.into_iter().filter_map(|(name, s)| Some((name, to_json(&s)?))));
        to_json(&T::schema())
    }

    fn partial<T: utoipa::PartialSchema>(_: &mut Vec<(String, serde_json::Value)>) -> Option<serde_json::Value> {
        to_json(&T::schema())
    }

    /// A payload's schema: `T: ToSchema`.
    pub trait Request {
        /// The schema function.
        fn __cqrs_ddd_request_schema(&self) -> SchemaFn;
    }
    impl<T: utoipa::ToSchema> Request for &&Probe<T> {
        fn __cqrs_ddd_request_schema(&self) -> SchemaFn {
            named::<T>
        }
    }

    /// A command's response schema: named, then partial.
    pub trait CommandResponse {
        /// The schema function.
        fn __cqrs_ddd_command_response_schema(&self) -> SchemaFn;
    }
    impl<T: Command> CommandResponse for &&Probe<T>
    where
        T::Response: utoipa::ToSchema,
    {
        fn __cqrs_ddd_command_response_schema(&self) -> SchemaFn {
            named::<T::Response>
        }
    }
    /// A command's response schema without a name.
    pub trait CommandResponsePartial {
        /// The schema function.
        fn __cqrs_ddd_command_response_schema(&self) -> SchemaFn;
    }
    impl<T: Command> CommandResponsePartial for &Probe<T>
    where
        T::Response: utoipa::PartialSchema,
    {
        fn __cqrs_ddd_command_response_schema(&self) -> SchemaFn {
            partial::<T::Response>
        }
    }

    /// A query's response schema: named, then partial.
    pub trait QueryResponse {
        /// The schema function.
        fn __cqrs_ddd_query_response_schema(&self) -> SchemaFn;
    }
    impl<T: QueryHandler> QueryResponse for &&Probe<T>
    where
        T::Response: utoipa::ToSchema,
    {
        fn __cqrs_ddd_query_response_schema(&self) -> SchemaFn {
            named::<T::Response>
        }
    }
    /// A query's response schema without a name.
    pub trait QueryResponsePartial {
        /// The schema function.
        fn __cqrs_ddd_query_response_schema(&self) -> SchemaFn;
    }
    impl<T: QueryHandler> QueryResponsePartial for &Probe<T>
    where
        T::Response: utoipa::PartialSchema,
    {
        fn __cqrs_ddd_query_response_schema(&self) -> SchemaFn {
            partial::<T::Response>
        }
    }
}

/// The schema fallbacks, for every type.
pub trait NoSchema {
    /// No payload schema.
    fn __cqrs_ddd_request_schema(&self) -> SchemaFn {
        no_schema
    }
    /// No command response schema.
    fn __cqrs_ddd_command_response_schema(&self) -> SchemaFn {
        no_schema
    }
    /// No query response schema.
    fn __cqrs_ddd_query_response_schema(&self) -> SchemaFn {
        no_schema
    }
}

impl<T> NoSchema for Probe<T> {}

/// The schema function of `$kind` (`request`, `command_response`, `query_response`) for
/// `$t`, chosen by probe with the `openapi` feature, [`no_schema`] without it.
#[cfg(feature = "openapi")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_ddd_schema {
    (request, $t:ty) => {{
        #[allow(unused_imports)]
        use $crate::__private::catalog::{NoSchema as _, schema::Request as _};
        (&&&$crate::__private::catalog::Probe::<$t>::new()).__cqrs_ddd_request_schema()
    }};
    (command_response, $t:ty) => {{
        #[allow(unused_imports)]
        use $crate::__private::catalog::{
            NoSchema as _,
            schema::{CommandResponse as _, CommandResponsePartial as _},
        };
        (&&&$crate::__private::catalog::Probe::<$t>::new()).__cqrs_ddd_command_response_schema()
    }};
    (query_response, $t:ty) => {{
        #[allow(unused_imports)]
        use $crate::__private::catalog::{
            NoSchema as _,
            schema::{QueryResponse as _, QueryResponsePartial as _},
        };
        (&&&$crate::__private::catalog::Probe::<$t>::new()).__cqrs_ddd_query_response_schema()
    }};
}

/// The schema function of `$kind` for `$t`: [`no_schema`] without the `openapi` feature.
#[cfg(not(feature = "openapi"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_ddd_schema {
    ($kind:ident, $t:ty) => {
        $crate::__private::catalog::no_schema as $crate::__private::catalog::SchemaFn
    };
}

/// The registered query a name stands for.
#[derive(Clone, Copy)]
pub(crate) struct NamedQuery {
    pub(crate) ask: QueryJson,
    pub(crate) reads: &'static [&'static str],
}

/// What a registration gives the catalogue.
#[derive(Clone, Copy)]
pub(crate) struct Described {
    pub(crate) kind: MessageKind,
    pub(crate) name: &'static str,
    pub(crate) type_name: &'static str,
    pub(crate) request: SchemaFn,
    pub(crate) response: SchemaFn,
    pub(crate) reads: &'static [&'static str],
}

impl Described {
    pub(crate) fn info(&self) -> MessageInfo {
        let mut components = Vec::new();
        let request_schema = (self.request)(&mut components);
        let response_schema = (self.response)(&mut components);
        components.sort_by(|a, b| a.0.cmp(&b.0));
        components.dedup_by(|a, b| a.0 == b.0);
        MessageInfo {
            kind: self.kind,
            name: self.name,
            type_name: self.type_name,
            request_schema,
            response_schema,
            components,
            reads: self.reads,
        }
    }
}

tokio::task_local! {
    /// The position of the last event committed by the root command running in this
    /// task, for [`Mediator::send_json`].
    static COMMITTED: Cell<Option<Cursor>>;
}

/// Records that the root command of this task committed up to `cursor`.
pub(crate) fn committed(cursor: Cursor) {
    let _ = COMMITTED.try_with(|c| c.set(Some(c.get().map_or(cursor, |p| p.max(cursor)))));
}

impl Mediator {
    /// Every command and query this program can receive by name, commands first, each
    /// sorted by name.
    pub fn messages(&self) -> Vec<MessageInfo> {
        self.rt.catalog.iter().map(Described::info).collect()
    }

    /// Sends a command known by name with its payload, as [`Mediator::dispatch_by_name`]
    /// does, and answers its response as JSON with the position it committed.
    ///
    /// Errors: [`Error::UnknownMessage`] for a name no command has, [`Error::Decode`]
    /// for a payload that does not decode (saying where), [`Error::Encode`] when the
    /// response is not `Serialize`, and whatever the command fails with.
    pub async fn send_json(&self, name: &str, payload: Payload<'_>, options: SendOptions) -> Result<Receipt> {
        let Some(command) = self.named_command(name) else {
            return Err(Error::UnknownMessage { kind: "command", name: name.to_owned() });
        };
        let json = match payload {
            Payload::Json(json) => json,
            Payload::Form(_) => {
                return Err(Error::Decode {
                    kind: "command",
                    name: name.to_owned(),
                    reason: "a command's payload is a JSON document".to_owned(),
                    path: None,
                });
            }
        };
        let (reply, position) = COMMITTED
            .scope(Cell::new(None), async {
                let reply = (command.dispatch)(self, json, options).await;
                (reply, COMMITTED.with(Cell::get))
            })
            .await;
        let response = (command.encode)(reply?)?;
        Ok(Receipt { response, position })
    }

    /// Asks a query known by name, decoded from `payload`, in the context `metadata`
    /// gives (else the current one); the answer is its response as JSON.
    ///
    /// Errors: [`Error::UnknownMessage`] for a name no query has, [`Error::Decode`] for a
    /// payload that does not decode or a query that cannot be asked by name,
    /// [`Error::Encode`], and whatever the query fails with.
    pub async fn query_json(
        &self,
        name: &str,
        payload: Payload<'_>,
        metadata: Option<Metadata>,
    ) -> Result<serde_json::Value> {
        let query = self.named_query(name)?;
        (query.ask)(self, payload, metadata).await
    }

    pub(crate) fn named_query(&self, name: &str) -> Result<NamedQuery> {
        self.rt
            .queries_by_name
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownMessage { kind: "query", name: name.to_owned() })
    }
}
