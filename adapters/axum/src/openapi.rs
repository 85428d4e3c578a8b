//! The OpenAPI 3.1 document of an [`crate::Api`], served at `/openapi.json`.
//!
//! It is generated from what the API serves: one path per registered command
//! (`/commands/{name}`) and query (`/queries/{name}`, `GET` and `POST`), the read-model
//! routes, the health endpoints. Each message's payload and response schemas come from
//! the runtime's catalogue ([`cqrs_ddd::Mediator::messages`]): present when the type
//! derives `utoipa::ToSchema` (with the runtime's `openapi` feature), a generic schema
//! otherwise. Every error response is an RFC 9457 problem (`#/components/schemas/Problem`,
//! `application/problem+json`); the bearer scheme is declared when the context layer
//! verifies tokens.

use cqrs_ddd::MessageKind;
use cqrs_ddd::cqrs::MessageInfo;
use serde_json::{Value, json};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::{Tag, TagBuilder};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, Header, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref,
    RefOr, Required, Schema,
};

use crate::context::{CORRELATION_ID, TRACEPARENT};
use crate::messages::{IDEMPOTENCY_KEY, MIN_POSITION, POSITION, WAIT_MS};
use crate::problem::{PROBLEM_JSON, PROBLEM_TYPES};
use crate::read_model::ReadModelRoute;

const JSON: &str = "application/json";

/// What the document describes.
#[allow(clippy::struct_excessive_bools)] // one per group of routes the API may serve
pub(crate) struct Spec<'a> {
    pub(crate) title: &'a str,
    pub(crate) version: &'a str,
    pub(crate) messages: Vec<MessageInfo>,
    pub(crate) commands: bool,
    pub(crate) queries: bool,
    pub(crate) read_models: &'a [ReadModelRoute],
    pub(crate) health: bool,
    pub(crate) metrics: bool,
    /// `Some(required)` when bearer tokens are verified.
    pub(crate) bearer: Option<bool>,
    pub(crate) tenant_header: Option<&'a str>,
}

/// A JSON schema as an OpenAPI schema; a schema utoipa does not read becomes "any value".
fn schema(value: &Value) -> RefOr<Schema> {
    let mut value = value.clone();
    typeless_as_any(&mut value);
    serde_json::from_value(value).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "a JSON schema does not read as an OpenAPI schema; documented as any value");
        any()
    })
}

/// Marks every sub-schema without a `type` (`{}`, `{"description": ..}`) as typeless
/// with `"type": null`, the form utoipa reads (and writes back without the `type`).
fn typeless_as_any(value: &mut Value) {
    let Some(map) = value.as_object_mut() else { return };
    if !["type", "$ref", "oneOf", "allOf", "anyOf"].iter().any(|k| map.contains_key(*k)) {
        map.insert("type".to_owned(), Value::Null);
    }
    for key in ["items", "additionalProperties", "not", "propertyNames", "contentSchema"] {
        if let Some(sub) = map.get_mut(key) {
            typeless_as_any(sub);
        }
    }
    for key in ["oneOf", "allOf", "anyOf", "prefixItems"] {
        if let Some(Value::Array(list)) = map.get_mut(key) {
            list.iter_mut().for_each(typeless_as_any);
        }
    }
    for key in ["properties", "$defs", "patternProperties"] {
        if let Some(Value::Object(subs)) = map.get_mut(key) {
            subs.values_mut().for_each(typeless_as_any);
        }
    }
}

fn any() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue).build(),
    ))
}

fn object() -> RefOr<Schema> {
    schema(&json!({"type": "object"}))
}

fn problem_ref() -> RefOr<utoipa::openapi::Response> {
    RefOr::Ref(Ref::from_response_name("Problem"))
}

fn header_param(name: &str, description: &str, schema_json: &Value) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema(schema_json)))
        .build()
}

struct Ops<'a> {
    spec: &'a Spec<'a>,
}

impl Ops<'_> {
    /// An operation with the parameters and error responses every route shares.
    fn operation(&self, tag: &str, id: String, summary: String, errors: &[u16]) -> OperationBuilder {
        let mut op = OperationBuilder::new().tag(tag).operation_id(Some(id)).summary(Some(summary));
        op = op.parameter(header_param(
            CORRELATION_ID,
            "The correlation id of the request (a UUID); a new one when absent. Echoed on every response.",
            &json!({"type": "string", "format": "uuid"}),
        ));
        op = op.parameter(header_param(
            TRACEPARENT,
            "W3C trace context; its trace id becomes the correlation id.",
            &json!({"type": "string"}),
        ));
        if let Some(tenant) = self.spec.tenant_header {
            op = op.parameter(header_param(tenant, "The tenant the request runs for.", &json!({"type": "string"})));
        }
        let mut codes: Vec<u16> = vec![400, 403, 500];
        codes.extend_from_slice(errors);
        if let Some(required) = self.spec.bearer {
            codes.push(401);
            op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
            if !required {
                op = op.security(SecurityRequirement::default());
            }
        }
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            op = op.response(code.to_string(), problem_ref());
        }
        op
    }

    fn command(&self, info: &MessageInfo) -> Operation {
        let payload = info.request_schema.as_ref().map_or_else(object, schema);
        let response = info.response_schema.as_ref().map_or_else(any, schema);
        let receipt = ContentBuilder::new()
            .schema(Some(schema(&json!({
                "type": "object",
                "required": ["position", "response"],
                "properties": {
                    "position": {"type": ["string", "null"], "pattern": "^[0-9]+(\\.[0-9]+)?$",
                                 "description": "Where the reader of all events stands once it read the command's last event (`null`: it committed none); give it to a query as `x-cqrs-min-position`."},
                    "response": {}
                }
            }))))
            .build();
        let receipt = with_property(receipt, "response", response);
        self.operation(
            "commands",
            format!("send_{}", info.name),
            format!("Send the command `{}`", info.name),
            &[404, 409, 415, 422, 503],
        )
        .description(Some(format!("Sends `{}` with the JSON body as its payload.", info.name)))
        .parameter(header_param(
            IDEMPOTENCY_KEY,
            "Sends the command at most once per key (a UUID); a repeat answers 409.",
            &json!({"type": "string", "format": "uuid"}),
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(JSON, ContentBuilder::new().schema(Some(payload)).build())
                .build(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The command's response and the position it committed.")
                .content(JSON, receipt)
                .header(POSITION, Header::new(schema(&json!({"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}))))
                .build(),
        )
        .build()
    }

    fn query(&self, info: &MessageInfo, get: bool) -> Operation {
        let payload = info.request_schema.as_ref().map_or_else(object, schema);
        let response = info.response_schema.as_ref().map_or_else(any, schema);
        let (id, summary) = if get {
            (format!("ask_{}", info.name), format!("Ask the query `{}`", info.name))
        } else {
            (format!("ask_{}_by_body", info.name), format!("Ask the query `{}` with a JSON body", info.name))
        };
        let mut op = self
            .operation("queries", id, summary, &[404, 415, 503])
            .description(Some(format!(
                "Asks `{}`. With `{MIN_POSITION}` it first waits until the read models it reads reached that position.",
                info.name
            )))
            .parameter(header_param(
                MIN_POSITION,
                "Wait until the read models this query reads have reached this position (the `x-cqrs-position` of a command).",
                &json!({"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}),
            ))
            .parameter(header_param(
                WAIT_MS,
                "How long to wait for the position, in milliseconds (default 5000, at most 30000).",
                &json!({"type": "integer", "minimum": 0}),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The query's response.")
                    .content(JSON, ContentBuilder::new().schema(Some(response)).build())
                    .build(),
            );
        if get {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("query")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("The query's fields, each a query-string parameter."))
                    .style(Some(ParameterStyle::Form))
                    .explode(Some(true))
                    .schema(Some(payload))
                    .build(),
            );
        } else {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(JSON, ContentBuilder::new().schema(Some(payload)).build())
                    .build(),
            ));
        }
        op.build()
    }

    fn read_model(&self, route: &ReadModelRoute) -> Operation {
        let document = route.schema.as_ref().map_or_else(object, |(s, _)| schema(s));
        let item = RefOr::T(Schema::Object(
            utoipa::openapi::ObjectBuilder::new()
                .property(
                    "id",
                    schema(&json!({"type": "string", "description": "The document's id in its collection."})),
                )
                .property(
                    "version",
                    schema(
                        &json!({"type": "integer", "minimum": 1, "description": "1 on insert, one more per update."}),
                    ),
                )
                .property("document", document)
                .required("id")
                .required("version")
                .required("document")
                .build(),
        ));
        let page = ContentBuilder::new()
            .schema(Some(schema(&json!({
                "type": "object",
                "required": ["items", "next"],
                "properties": {
                    "items": {"type": "array", "items": {}},
                    "next": {"type": ["string", "null"],
                             "description": "The cursor of the next page; give it back as `cursor` with the same `sort`."}
                }
            }))))
            .build();
        let page = with_items(page, item);
        let param = |name: &str, description: &str, schema_json: Value| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(schema(&schema_json)))
                .build()
        };
        self.operation(
            "read models",
            format!("read_{}", route.collection),
            format!("Read the `{}` read model", route.collection),
            &[401, 503],
        )
        .description(Some(format!("Documents of `{}`, a page at a time.", route.collection)))
        .parameter(param(
            "filter",
            "Clauses `field:op:value` joined by commas (`status:eq:open,total:gte:10`), or a JSON filter.",
            json!({"type": "string"}),
        ))
        .parameter(param("sort", "Fields, `-` for descending (`-created_at,name`).", json!({"type": "string"})))
        .parameter(param("fields", "The fields to return.", json!({"type": "string"})))
        .parameter(param(
            "limit",
            "The page size (20 by default, at most 100).",
            json!({"type": "integer", "minimum": 1}),
        ))
        .parameter(param("offset", "Documents to skip.", json!({"type": "integer", "minimum": 0})))
        .parameter(param("cursor", "The `next` of the previous page.", json!({"type": "string"})))
        .response("200", ResponseBuilder::new().description("One page of documents.").content(JSON, page).build())
        .build()
    }

    fn health(ready: bool) -> Operation {
        let report = ContentBuilder::new().schema(Some(RefOr::Ref(Ref::from_schema_name("HealthReport")))).build();
        let (id, summary) = if ready {
            ("health_ready", "Readiness: every check (stores, brokers, workers)")
        } else {
            ("health_live", "Liveness: the workers, without I/O")
        };
        OperationBuilder::new()
            .tag("health")
            .operation_id(Some(id))
            .summary(Some(summary))
            .response(
                "200",
                ResponseBuilder::new().description("Ready: no check is down.").content(JSON, report.clone()).build(),
            )
            .response(
                "503",
                ResponseBuilder::new().description("Not ready: a check is down.").content(JSON, report).build(),
            )
            .build()
    }
}

/// Sets one property of the object schema of `content`.
fn with_property(content: utoipa::openapi::Content, name: &str, property: RefOr<Schema>) -> utoipa::openapi::Content {
    let mut content = content;
    if let Some(RefOr::T(Schema::Object(object))) = content.schema.as_mut() {
        object.properties.insert(name.to_owned(), property);
    }
    content
}

/// Sets the item schema of the `items` array of the object schema of `content`.
fn with_items(content: utoipa::openapi::Content, item: RefOr<Schema>) -> utoipa::openapi::Content {
    let mut content = content;
    if let Some(RefOr::T(Schema::Object(object))) = content.schema.as_mut() {
        object.properties.insert(
            "items".to_owned(),
            RefOr::T(Schema::Array(utoipa::openapi::schema::ArrayBuilder::new().items(item).build())),
        );
    }
    content
}

fn tag(name: &str, description: &str) -> Tag {
    TagBuilder::new().name(name).description(Some(description)).build()
}

/// The document.
pub(crate) fn document(spec: &Spec<'_>) -> OpenApi {
    let ops = Ops { spec };
    let mut paths = PathsBuilder::new();
    let mut components = ComponentsBuilder::new();
    let mut tags = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut add_components = |components: ComponentsBuilder, named: &[(String, Value)]| {
        named.iter().fold(
            components,
            |c, (name, s)| if seen.insert(name.clone()) { c.schema(name.clone(), schema(s)) } else { c },
        )
    };
    if spec.commands {
        tags.push(tag("commands", "Commands sent by name: `POST /commands/{name}`."));
        for info in spec.messages.iter().filter(|m| m.kind == MessageKind::Command) {
            paths = paths.path(format!("/commands/{}", info.name), PathItem::new(HttpMethod::Post, ops.command(info)));
            components = add_components(components, &info.components);
        }
    }
    if spec.queries {
        tags.push(tag("queries", "Queries asked by name: `GET` or `POST /queries/{name}`."));
        for info in spec.messages.iter().filter(|m| m.kind == MessageKind::Query) {
            let mut item = PathItem::new(HttpMethod::Get, ops.query(info, true));
            item.post = Some(ops.query(info, false));
            paths = paths.path(format!("/queries/{}", info.name), item);
            components = add_components(components, &info.components);
        }
    }
    if !spec.read_models.is_empty() {
        tags.push(tag("read models", "Read models, filtered, sorted and paged: `GET /read-models/{collection}`."));
        for route in spec.read_models {
            paths = paths.path(route.path(), PathItem::new(HttpMethod::Get, ops.read_model(route)));
            if let Some((_, named)) = &route.schema {
                components = add_components(components, named);
            }
        }
    }
    if spec.health {
        tags.push(tag("health", "Liveness and readiness."));
        paths = paths.path("/health/live", PathItem::new(HttpMethod::Get, Ops::health(false)));
        paths = paths.path("/health/ready", PathItem::new(HttpMethod::Get, Ops::health(true)));
        components = components.schema("HealthReport", schema(&health_schema()));
    }
    if spec.metrics {
        tags.push(tag("metrics", "The framework's metrics for Prometheus."));
        let text = ContentBuilder::new().schema(Some(schema(&json!({"type": "string"})))).build();
        let scrape = OperationBuilder::new()
            .tag("metrics")
            .operation_id(Some("metrics"))
            .summary(Some("Every metric recorded, in Prometheus' text format"))
            .response("200", ResponseBuilder::new().description("The metrics.").content("text/plain", text).build())
            .build();
        paths = paths.path("/metrics", PathItem::new(HttpMethod::Get, scrape));
    }
    components = components.schema("Problem", schema(&problem_schema())).response(
        "Problem",
        ResponseBuilder::new()
            .description("An RFC 9457 problem; `type` names it (see the `Problem` schema).")
            .content(
                PROBLEM_JSON,
                ContentBuilder::new().schema(Some(RefOr::Ref(Ref::from_schema_name("Problem")))).build(),
            )
            .build(),
    );
    if spec.bearer.is_some() {
        components = components.security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(spec.title)
                .version(spec.version)
                .description(Some(
                    "Every response carries `x-correlation-id`; every error is an RFC 9457 problem (`application/problem+json`).",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .tags(Some(tags))
        .build()
}

fn problem_schema() -> Value {
    let types: Vec<&str> = PROBLEM_TYPES.iter().map(|(uri, _, _)| *uri).collect();
    json!({
        "type": "object",
        "description": "An RFC 9457 problem. Extension members: `path` (the field of a body that did not decode), `error` and `fields` (a domain error), `stream`, `expected`, `actual` (a conflict), `kind` and `name` (an unknown message).",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "format": "uri", "description": "What kind of problem.", "examples": types},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "detail": {"type": "string"},
            "path": {"type": "string"},
            "fields": {}
        },
        "additionalProperties": true
    })
}

fn health_schema() -> Value {
    let status = json!({"type": "string", "enum": ["up", "degraded", "down"]});
    json!({
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": status,
            "checks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "status"],
                    "properties": {"name": {"type": "string"}, "status": status, "detail": {}}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schemas_read_back_as_written() {
        for s in [
            problem_schema(),
            health_schema(),
            json!({"type": "object"}),
            json!({"$ref": "#/components/schemas/X"}),
            json!({}),
            json!({"type": "array", "items": {}}),
            json!({"type": "object", "properties": {"v": {"description": "any"}}, "additionalProperties": {}}),
            json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/X"}]}),
        ] {
            let back = serde_json::to_value(schema(&s)).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(serde_json::to_value(any()).unwrap(), json!({}));
    }
}
