//! Read-model routes: `GET /read-models/{collection}?filter=..&sort=..&limit=..&cursor=..&fields=..`.
//!
//! The query string is read by [`cqrs_ddd::spec::parse_query_in`] against the read
//! model's allow-list (what `#[derive(ReadModel)]` declares filterable, sortable and
//! selectable) and the request's context: a read model that is per tenant
//! (`tenant_required`) refuses a request without a tenant (403), one owned by its
//! callers (`owned_by`) shows each principal their own documents. The documents are read
//! from the application's read-model store for the request's tenant, a page at a time:
//! `{"items": [{"id": .., "version": .., "document": <document>}, ..], "next": <cursor or
//! null>}`; give `next` back as
//! `cursor` for the following page (with the same `sort`). A filter that cannot be
//! answered is a 400 ([`crate::problem::INVALID_FILTER`]) naming the offending part.

use std::sync::Arc;

use axum::Json;
use axum::extract::RawQuery;
use axum::response::{IntoResponse, Response};
use cqrs_ddd::spec::{AllowList, parse_query_in};
use serde_json::{Value, json};

use crate::extract::{Application, Context};
use crate::problem::{INVALID_FILTER, Problem};

/// A read model served over HTTP.
#[derive(Clone)]
pub(crate) struct ReadModelRoute {
    /// Its collection (the last segment of its path).
    pub(crate) collection: &'static str,
    /// What callers may filter, sort and select.
    pub(crate) allow: Arc<AllowList>,
    /// The JSON schema of one document and the named schemas it refers to, when known.
    pub(crate) schema: Option<(Value, Vec<(String, Value)>)>,
}

impl ReadModelRoute {
    /// Where it is served.
    pub(crate) fn path(&self) -> String {
        format!("/read-models/{}", self.collection)
    }
}

/// The pairs of a query string.
fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, Problem> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or_default()).map_err(|e| {
        Problem::new(axum::http::StatusCode::BAD_REQUEST, INVALID_FILTER, "Invalid filter")
            .detail(format!("the query string does not read: {e}"))
    })
}

/// One page of a read model's documents.
pub(crate) async fn page(
    route: &ReadModelRoute,
    Application(app): Application,
    Context(context): Context,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let pairs = pairs(query.as_deref())?;
    let options = parse_query_in(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), &route.allow, &context)?;
    let Some(store) = app.read_model_store() else {
        tracing::error!(
            collection = route.collection,
            "a read-model route is mounted and the application has no read-model store; add `.read_models(store)` to `App::builder()`"
        );
        return Err(Problem::internal());
    };
    let page = store.page_of(context.tenant_id.as_deref(), route.collection, &options).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for doc in page.items {
        let value: Value = serde_json::from_str(&doc.json).map_err(|e| {
            tracing::error!(collection = route.collection, id = doc.id, error = %e, "a stored document is not JSON");
            Problem::internal()
        })?;
        items.push(json!({"id": doc.id, "version": doc.version, "document": value}));
    }
    Ok(Json(json!({"items": items, "next": page.next})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_into_pairs() {
        let p = pairs(Some("filter=status%3Aeq%3Aopen&sort=-at&limit=5")).unwrap();
        assert_eq!(p[0], ("filter".to_owned(), "status:eq:open".to_owned()));
        assert_eq!(p.len(), 3);
        assert!(pairs(None).unwrap().is_empty());
    }
}
