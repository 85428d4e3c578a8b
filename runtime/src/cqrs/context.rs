use std::future::Future;
use std::marker::PhantomData;

use chrono::Utc;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::cqrs::deps::Dep;
use crate::cqrs::mediator::Mediator;
use crate::cqrs::message::{AggregateCommand, CommandHandler, QueryHandler};
use crate::deadline::{Deadlines, FireDeadline, OnDeadline};
use crate::domain::{Aggregate, CreationPolicy, Handle, new_id};
use crate::error::{Error, Result};
use crate::es::Loaded;
use crate::middleware::Reply;
use crate::ports::{DeadlineWrite, OutboxMessage, StreamKey};
use crate::uow::{Pending, Staged, UnitOfWork};

/// What a command handler can reach: its unit of work, nested commands, queries,
/// the outbox, after-commit hooks and the provided services.
pub struct CommandContext {
    mediator: Mediator,
    uow: UnitOfWork,
    request: RequestContext,
    /// Made on first use: a command that emits nothing never pays for an id.
    command_id: std::sync::OnceLock<Uuid>,
    command_name: &'static str,
    /// Whether an aggregate command leaves its [`Decision`] here (a root run that may
    /// decide again after a version conflict), and the decision it left.
    keeps_decision: bool,
    decision: Option<Box<dyn Decision>>,
}

impl CommandContext {
    pub(crate) fn new(
        mediator: Mediator,
        uow: UnitOfWork,
        request: RequestContext,
        command_name: &'static str,
    ) -> Self {
        CommandContext {
            mediator,
            uow,
            request,
            command_id: std::sync::OnceLock::new(),
            command_name,
            keeps_decision: false,
            decision: None,
        }
    }

    /// Makes an aggregate command run in this context leave its [`Decision`] behind.
    pub(crate) fn keep_decision(&mut self) {
        self.keeps_decision = true;
    }

    /// The decision an aggregate command left, when one could be worth repeating.
    pub(crate) fn take_decision(&mut self) -> Option<Box<dyn Decision>> {
        self.decision.take()
    }

    /// Sends a nested command; it joins this unit of work and commits with it.
    pub async fn send<C: CommandHandler>(&mut self, cmd: C) -> Result<C::Response> {
        let mut request = self.request.clone();
        request.causation_id = Some(self.command_id());
        self.mediator.send_nested(cmd, self.uow.clone(), request).await
    }

    /// Runs a query in this command's context.
    pub async fn query<Q: QueryHandler>(&self, query: Q) -> Result<Q::Response> {
        self.mediator.query(query).await
    }

    /// Loads an aggregate as committed (not as staged in this unit of work).
    pub async fn load<A: Aggregate>(&self, id: &A::Id) -> Result<Loaded<A>> {
        self.mediator.load_in(id, &self.request).await
    }

    /// A provided service.
    pub fn dep<T: Send + Sync + 'static>(&self) -> Result<Dep<T>> {
        self.mediator.dep::<T>(self.command_name)
    }

    /// Stages a message for the transactional outbox: written with this command's events.
    pub fn outbox(&mut self, topic: impl Into<String>, payload: &impl serde::Serialize) -> Result<Uuid> {
        let topic = topic.into();
        let payload = serde_json::to_string(payload)
            .map_err(|source| Error::Encode { what: format!("outbox message for `{topic}`"), source })?;
        let id = new_id();
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("correlation_id".to_owned(), self.request.correlation_id.to_string());
        headers.insert("causation_id".to_owned(), self.command_id().to_string());
        let traceparent = crate::uow::traceparent_for(&self.request.headers, self.request.correlation_id, id);
        headers.insert(crate::broker::headers::TRACEPARENT.to_owned(), traceparent);
        self.uow.add_outbox(OutboxMessage { id, topic, payload, headers, created_at: Utc::now() })?;
        Ok(id)
    }

    /// Runs `hook` after the unit of work commits (never if it rolls back).
    pub fn after_commit(&mut self, hook: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        self.uow.after_commit(Box::pin(hook))
    }

    /// The unit of work this command runs in.
    pub fn unit_of_work(&self) -> &UnitOfWork {
        &self.uow
    }

    /// Correlation, causation, tenant, principal of this command.
    pub fn request(&self) -> &RequestContext {
        &self.request
    }

    /// The id of this command (the causation id of its events).
    pub fn command_id(&self) -> Uuid {
        *self.command_id.get_or_init(new_id)
    }

    /// The mediator, for work that must not join this unit of work.
    pub fn mediator(&self) -> &Mediator {
        &self.mediator
    }

    /// Decides an aggregate command (see [`CommandContext::decide`]). In a root run the
    /// command is kept afterwards as a [`Decision`], when a conflict at commit could make
    /// the run decide again: the retry policy allows retries, or the aggregate came from
    /// the cache.
    pub(crate) async fn execute_aggregate<A, C>(&mut self, cmd: C) -> Result<()>
    where
        A: Handle<C>,
        C: AggregateCommand<Aggregate = A> + Sync,
    {
        let result = self.decide::<A, C>(&cmd).await;
        if self.keeps_decision
            && (self.mediator.retries_conflicts()
                || self.uow.used_cache()
                || self.mediator.transient_retry(C::NAME).retries())
        {
            self.decision = Some(Box::new(AggregateDecision::<A, C>(cmd, PhantomData)));
        }
        result
    }

    /// Loads (or finds staged) the command's aggregate, runs its `#[handle]` method and
    /// stages the events it decides.
    async fn decide<A, C>(&mut self, cmd: &C) -> Result<()>
    where
        A: Handle<C>,
        C: AggregateCommand<Aggregate = A>,
    {
        let key = StreamKey::new(A::TYPE, cmd.aggregate_id().to_string()).with_tenant(self.request.tenant_id.clone());
        self.stage_aggregate::<A>(&key).await?;
        self.decide_staged::<A>(&key, |state, version, deadlines| {
            match (<A as Handle<C>>::POLICY, version) {
                (CreationPolicy::MustExist, 0) => return Err(Error::NotFound { stream: key.to_string() }),
                (CreationPolicy::Create, v) if v > 0 => {
                    return Err(Error::AlreadyExists { stream: key.to_string(), version: v });
                }
                _ => {}
            }
            state.decide(cmd, deadlines).map_err(|e| domain_error::<A>(e))
        })
    }

    /// Loads the aggregate behind `key` into the unit of work, unless it is staged.
    async fn stage_aggregate<A: Aggregate>(&mut self, key: &StreamKey) -> Result<()> {
        if self.uow.contains(key) {
            return Ok(());
        }
        let staged = match self.mediator.cache().and_then(|c| c.take::<A>(key)) {
            Some(c) => Staged::<A> {
                key: key.clone(),
                state: c.state,
                loaded_version: c.version,
                snapshot_version: c.snapshot_version,
                from_cache: true,
                pending: Vec::new(),
            },
            None => {
                let loaded = self.mediator.loader().load::<A>(self.mediator.store(), key).await?;
                let (state, loaded_version, snapshot_version) =
                    loaded.map_or_else(|| (A::default(), 0, 0), |l| (l.state, l.version, l.snapshot_version));
                Staged::<A> {
                    key: key.clone(),
                    state,
                    loaded_version,
                    snapshot_version,
                    from_cache: false,
                    pending: Vec::new(),
                }
            }
        };
        self.uow.stage(staged)
    }

    /// Runs a decision on the staged aggregate behind `key` (its state, its version and
    /// its deadlines), applies and stages the events it returns, and stages the deadlines
    /// it scheduled or cancelled.
    fn decide_staged<A: Aggregate>(
        &mut self,
        key: &StreamKey,
        decide: impl FnOnce(&A, u64, &mut Deadlines<A>) -> Result<Vec<A::Event>>,
    ) -> Result<()> {
        let metadata = self.request.metadata(self.command_id());
        let now = self.mediator.clock().now();
        let changes = self.uow.with_staged::<A, _>(key, |staged| {
            let mut deadlines = Deadlines::new(now);
            let events = decide(&staged.state, staged.version(), &mut deadlines)?;
            let changes = deadlines.into_changes()?;
            let occurred_at = Utc::now();
            staged.pending.reserve(events.len());
            for event in events {
                staged.state.apply(&event);
                staged.pending.push(Pending { event, event_id: new_id(), metadata: metadata.clone(), occurred_at });
            }
            Ok::<_, Error>(changes)
        })??;
        if !changes.is_empty() {
            self.uow.add_deadlines(crate::deadline::writes(key, changes, &metadata, now)?)?;
        }
        Ok(())
    }

    /// Fires an aggregate's deadline (see [`mod@crate::deadline`]), kept as a [`Decision`]
    /// like an aggregate command.
    pub(crate) async fn execute_deadline<A, P>(&mut self, fired: FireDeadline<A, P>) -> Result<()>
    where
        A: OnDeadline<P>,
        P: Send + Sync + 'static,
    {
        let result = self.fire_deadline::<A, P>(&fired).await;
        if self.keeps_decision && (self.mediator.retries_conflicts() || self.uow.used_cache()) {
            self.decision = Some(Box::new(DeadlineDecision(fired)));
        }
        result
    }

    /// Removes the deadline in this unit of work (refused if it was cancelled or
    /// scheduled again meanwhile), then lets the aggregate decide what it causes; an
    /// aggregate without events causes nothing.
    async fn fire_deadline<A, P>(&mut self, fired: &FireDeadline<A, P>) -> Result<()>
    where
        A: OnDeadline<P>,
        P: Send + Sync + 'static,
    {
        let key = StreamKey::new(A::TYPE, fired.stream_id.clone()).with_tenant(self.request.tenant_id.clone());
        self.uow.add_deadlines([DeadlineWrite::Fire {
            tenant_id: key.tenant_id.clone(),
            id: fired.deadline,
            scheduled_by: fired.scheduled_by,
        }])?;
        self.stage_aggregate::<A>(&key).await?;
        self.decide_staged::<A>(&key, |state, version, deadlines| {
            if version == 0 {
                return Ok(Vec::new());
            }
            state.on_deadline(&fired.due, deadlines).map_err(|e| domain_error::<A>(e))
        })
    }
}

/// A domain error of aggregate `A`, with the fields it serializes to.
fn domain_error<A: Aggregate>(e: A::Error) -> Error {
    let fields = A::error_fields(&e);
    Error::Domain(crate::DomainError::with_fields(e, fields))
}

struct DeadlineDecision<A, P>(FireDeadline<A, P>);

impl<A, P> Decision for DeadlineDecision<A, P>
where
    A: OnDeadline<P>,
    P: Send + Sync + 'static,
{
    fn decide<'a>(&'a self, ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            ctx.fire_deadline::<A, P>(&self.0).await?;
            Ok(Box::new(()) as Reply)
        })
    }
}

/// An aggregate command kept by a root run, to be decided again (reloaded, handled,
/// staged) in a fresh unit of work after its commit met a version conflict; safe because
/// `#[handle]` methods are pure.
pub(crate) trait Decision: Send + Sync {
    /// Decides again in `ctx`; the reply is the command's response, `()`.
    fn decide<'a>(&'a self, ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>>;
}

struct AggregateDecision<A, C>(C, PhantomData<fn() -> A>);

impl<A, C> Decision for AggregateDecision<A, C>
where
    A: Handle<C>,
    C: AggregateCommand<Aggregate = A> + Sync,
{
    fn decide<'a>(&'a self, ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            ctx.decide::<A, C>(&self.0).await?;
            Ok(Box::new(()) as Reply)
        })
    }
}

/// What a query handler can reach: committed aggregates and provided services.
pub struct QueryContext {
    mediator: Mediator,
    request: RequestContext,
    query_name: &'static str,
}

impl QueryContext {
    pub(crate) fn new(mediator: Mediator, request: RequestContext, query_name: &'static str) -> Self {
        QueryContext { mediator, request, query_name }
    }

    /// Loads a committed aggregate; [`Error::NotFound`] when it has no events.
    pub async fn load<A: Aggregate>(&self, id: &A::Id) -> Result<Loaded<A>> {
        self.mediator.load_in(id, &self.request).await
    }

    /// Runs another query.
    pub async fn query<Q: QueryHandler>(&self, query: Q) -> Result<Q::Response> {
        self.mediator.query(query).await
    }

    /// A provided service.
    pub fn dep<T: Send + Sync + 'static>(&self) -> Result<Dep<T>> {
        self.mediator.dep::<T>(self.query_name)
    }

    /// Correlation, tenant, principal of this query.
    pub fn request(&self) -> &RequestContext {
        &self.request
    }

    /// The read models of this query's tenant, answering specifications
    /// ([`crate::spec`]); an error when the application has no
    /// [`read_models`](crate::AppBuilder::read_models) store.
    pub fn read_models(&self) -> Result<super::ReadModels> {
        let store = self
            .mediator
            .dep::<super::ReadModelStore>(self.query_name)
            .map_err(|_| crate::Error::NoReadModels { needed_by: self.query_name })?;
        Ok(super::ReadModels::new(store.0.clone(), self.request.tenant_id.clone()))
    }

    /// The mediator.
    pub fn mediator(&self) -> &Mediator {
        &self.mediator
    }
}

/// What an event handler can reach: the mediator (commands it sends are new root
/// commands that keep the correlation id) and the provided services.
pub struct EventContext {
    mediator: Mediator,
}

impl EventContext {
    pub(crate) fn new(mediator: Mediator) -> Self {
        EventContext { mediator }
    }

    /// Sends a command (a root command of its own).
    pub async fn send<C: CommandHandler>(&self, cmd: C) -> Result<C::Response> {
        self.mediator.send(cmd).await
    }

    /// Runs a query.
    pub async fn query<Q: QueryHandler>(&self, query: Q) -> Result<Q::Response> {
        self.mediator.query(query).await
    }

    /// A provided service.
    pub fn dep<T: Send + Sync + 'static>(&self) -> Result<Dep<T>> {
        self.mediator.dep::<T>("event handler")
    }

    /// The mediator.
    pub fn mediator(&self) -> &Mediator {
        &self.mediator
    }
}
