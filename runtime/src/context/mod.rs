//! Task-local request context: correlation, causation, tenant and principal.
//!
//! A root `send`/`query`/`publish` opens a scope; nested calls made inside it (from the
//! handler's task) inherit it; when the root call returns the scope ends, so nothing
//! leaks into the next root call. Spawned tasks do not inherit it: pass
//! [`RequestContext::current`] along and re-enter with [`RequestContext::scope`].

use std::future::Future;

use uuid::Uuid;

use crate::domain::{Metadata, new_correlation_id};
use crate::uow::UnitOfWork;

/// The context of one business transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// Shared by every message of the transaction.
    pub correlation_id: Uuid,
    /// The message that caused the current one.
    pub causation_id: Option<Uuid>,
    /// The tenant, when the application is multi-tenant.
    pub tenant_id: Option<String>,
    /// Who asked.
    pub principal: Option<String>,
    /// Headers given with the root message, copied onto every event it causes.
    pub headers: std::collections::BTreeMap<String, String>,
}

#[derive(Clone)]
pub(crate) struct Scope {
    pub(crate) request: RequestContext,
    pub(crate) uow: Option<UnitOfWork>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

impl RequestContext {
    /// A context with a fresh correlation id and nothing else.
    pub fn new() -> Self {
        RequestContext {
            correlation_id: new_correlation_id(),
            causation_id: None,
            tenant_id: None,
            principal: None,
            headers: std::collections::BTreeMap::new(),
        }
    }

    /// The context of the running call, if any.
    pub fn current() -> Option<RequestContext> {
        SCOPE.try_with(|s| s.request.clone()).ok()
    }

    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant.into());
        self
    }

    /// Sets the principal.
    pub fn with_principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// Runs `fut` with this context as the current one.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        SCOPE.scope(Scope { request: self, uow: None }, fut).await
    }

    /// The context for a root call: the message's own metadata wins, then the current
    /// context, then a fresh correlation id.
    pub(crate) fn for_root(meta: Option<&Metadata>) -> RequestContext {
        let outer = RequestContext::current();
        let meta_corr = meta.and_then(|m| m.correlation_id);
        let correlation_id = meta_corr.or(outer.as_ref().map(|o| o.correlation_id)).unwrap_or_else(new_correlation_id);
        let pick = |m: Option<&String>, o: Option<&String>| m.or(o).cloned();
        RequestContext {
            correlation_id,
            causation_id: meta.and_then(|m| m.causation_id).or(outer.as_ref().and_then(|o| o.causation_id)),
            tenant_id: pick(meta.and_then(|m| m.tenant_id.as_ref()), outer.as_ref().and_then(|o| o.tenant_id.as_ref())),
            principal: pick(meta.and_then(|m| m.principal.as_ref()), outer.as_ref().and_then(|o| o.principal.as_ref())),
            headers: match meta.filter(|m| !m.headers.is_empty()) {
                Some(m) => m.headers.clone(),
                None => outer.map(|o| o.headers).unwrap_or_default(),
            },
        }
    }

    /// Metadata for a message caused by `causation` in this context.
    pub(crate) fn metadata(&self, causation: Uuid) -> Metadata {
        Metadata {
            correlation_id: Some(self.correlation_id),
            causation_id: Some(causation),
            tenant_id: self.tenant_id.clone(),
            principal: self.principal.clone(),
            headers: self.headers.clone(),
        }
    }
}

impl Default for RequestContext {
    fn default() -> Self {
        Self::new()
    }
}

/// The unit of work of the command being handled on this task, if any.
pub(crate) fn current_uow() -> Option<UnitOfWork> {
    SCOPE.try_with(|s| s.uow.clone()).ok().flatten()
}

pub(crate) async fn enter<F: Future>(request: RequestContext, uow: Option<UnitOfWork>, fut: F) -> F::Output {
    SCOPE.scope(Scope { request, uow }, fut).await
}
