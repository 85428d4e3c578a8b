//! Task-local request context: correlation, causation, tenant and principal.
//!
//! A root `send`/`query`/`publish` opens a scope; nested calls made inside it (from the
//! handler's task) inherit it; when the root call returns the scope ends, so nothing
//! leaks into the next root call. Spawned tasks do not inherit it: pass
//! [`RequestContext::current`] along and re-enter with [`RequestContext::scope`].
//!
//! # Tenancy
//!
//! A context with a tenant is an isolation boundary: a root command sent inside it
//! runs for that tenant, and one whose [`Metadata`] names another tenant is refused with
//! [`TenantError::CrossTenant`]. Work that must cross
//! tenants (an operator tool, a migration, a fan-out to every tenant) runs in
//! [`RequestContext::system`], where each message may name its own tenant. An empty
//! tenant id (`Some("")`) is refused everywhere ([`TenantError::Empty`]):
//! some stores would read it as "no tenant", others as a tenant of its own.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;

use crate::domain::{Metadata, new_correlation_id};
use crate::error::{Error, Result, TenantError};

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
    /// A system scope (see [`RequestContext::system`]): messages sent inside it may name
    /// any tenant.
    pub system: bool,
}

/// The work a command running on this task joins (its unit of work), opaque here: the
/// unit of work puts itself in with [`enter`] and finds itself again with [`joined`].
pub(crate) type Joined = Arc<dyn Any + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Scope {
    pub(crate) request: RequestContext,
    pub(crate) joined: Option<Joined>,
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
            system: false,
        }
    }

    /// A system context: no tenant of its own, and the messages sent inside its
    /// [`RequestContext::scope`] may each name a tenant in their [`Metadata`] (crossing
    /// tenants is refused everywhere else).
    pub fn system() -> Self {
        RequestContext { system: true, ..RequestContext::new() }
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
        SCOPE.scope(Scope { request: self, joined: None }, fut).await
    }

    /// The context for a root call: the message's own metadata wins, then the current
    /// context, then a fresh correlation id. Refuses an empty tenant id, and a tenant
    /// other than the one of the current (non-system) scope.
    pub(crate) fn for_root(meta: Option<&Metadata>) -> Result<RequestContext> {
        let outer = RequestContext::current();
        let named = meta.and_then(|m| m.tenant_id.as_deref());
        match &outer {
            Some(o) => {
                check_tenant(o.tenant_id.as_deref())?;
                check_named(o, named)?;
            }
            None => check_tenant(named)?,
        }
        let meta_corr = meta.and_then(|m| m.correlation_id);
        let correlation_id = meta_corr.or(outer.as_ref().map(|o| o.correlation_id)).unwrap_or_else(new_correlation_id);
        let pick = |m: Option<&String>, o: Option<&String>| m.or(o).cloned();
        let tenant_id =
            pick(meta.and_then(|m| m.tenant_id.as_ref()), outer.as_ref().and_then(|o| o.tenant_id.as_ref()));
        Ok(RequestContext {
            correlation_id,
            causation_id: meta.and_then(|m| m.causation_id).or(outer.as_ref().and_then(|o| o.causation_id)),
            system: tenant_id.is_none() && outer.as_ref().is_some_and(|o| o.system),
            tenant_id,
            principal: pick(meta.and_then(|m| m.principal.as_ref()), outer.as_ref().and_then(|o| o.principal.as_ref())),
            headers: match meta.filter(|m| !m.headers.is_empty()) {
                Some(m) => m.headers.clone(),
                None => outer.map(|o| o.headers).unwrap_or_default(),
            },
        })
    }

    /// The context for a command joining the current unit of work: the current one (the
    /// nested command's own metadata does not replace it), after refusing an empty or
    /// another tenant named in that metadata.
    pub(crate) fn for_nested(meta: Option<&Metadata>) -> Result<RequestContext> {
        let request = RequestContext::current().unwrap_or_default();
        check_named(&request, meta.and_then(|m| m.tenant_id.as_deref()))?;
        Ok(request)
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

/// Refuses an empty tenant id ([`TenantError::Empty`]). Every store checks the tenants
/// it is given with it, so `Some("")` means the same (nothing) everywhere.
pub fn check_tenant(tenant: Option<&str>) -> Result<()> {
    match tenant {
        Some("") => Err(Error::Tenant(TenantError::Empty)),
        _ => Ok(()),
    }
}

/// Refuses an empty tenant id, and a message that names `named` from inside `scope`
/// unless `scope` is a system scope, has no tenant, or names the same one.
fn check_named(scope: &RequestContext, named: Option<&str>) -> Result<()> {
    check_tenant(named)?;
    match (scope.tenant_id.as_deref(), named) {
        (Some(own), Some(other)) if !scope.system && own != other => {
            Err(Error::Tenant(TenantError::CrossTenant { scope: own.to_owned(), named: other.to_owned() }))
        }
        _ => Ok(()),
    }
}

/// The work joined by the command being handled on this task, if any.
pub(crate) fn joined() -> Option<Joined> {
    SCOPE.try_with(|s| s.joined.clone()).ok().flatten()
}

/// Runs `fut` in `request`'s scope, joining `joined` (none: a new root call may start).
/// Returns the scope's own future, with no `async fn` state machine around it.
pub(crate) fn enter<F: Future>(
    request: RequestContext,
    joined: Option<Joined>,
    fut: F,
) -> impl Future<Output = F::Output> {
    SCOPE.scope(Scope { request, joined }, fut)
}
