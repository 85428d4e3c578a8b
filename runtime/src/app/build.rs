//! `AppBuilder::build`: every registration of the program checked against the builder's
//! configuration, then the mediator assembled with its extensions.
//!
//! Each check reads registrations as slices, so the checks run the same on what
//! `inventory` collected and on registrations made up in a test.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::handlers::{StaticCommand, StaticEvent};
use super::{AppBuilder, NamedRegistration};
use crate::cqrs::Deps;
use crate::cqrs::Mediator;
use crate::cqrs::catalog::{Described, NamedQuery};
use crate::cqrs::extensions::{Extensions, TypeMap};
use crate::cqrs::mediator::{ErasedCommandHandler, EventHandlerEntry, NamedCommand, Runtime};
use crate::error::{BuildError, BuildProblem, Error, Result};
use crate::es::{AggregateCache, Loader, UpcastStep, Upcasters};
use crate::memory::{MemorySagaStore, MemoryScheduleStore, MemoryStore};
use crate::middleware::MessageKind;
use crate::ports::{EventStore, SystemClock};
use crate::registry::{
    AggregateRegistration, CommandRegistration, CommandTypeRegistration, DepKey, EventHandlerRegistration,
    EventRegistration, QueryRegistration, QueryTypeRegistration, SagaRegistration,
};
use crate::saga::{DEADLINE_COMMAND, SagaRuntime, SagaSendFn, fire_deadline};
use crate::scheduling::{InternalCommand, Schedules};

/// What `inventory` collected from every linked crate.
fn collected<T: inventory::Collect>() -> Vec<&'static T> {
    inventory::iter::<T>.into_iter().collect()
}

pub(super) fn build(builder: AppBuilder) -> Result<Mediator> {
    let AppBuilder {
        store,
        deps,
        mut middleware,
        commands: hand_commands,
        event_handlers: hand_event_handlers,
        retry,
        transient,
        transient_for,
        mut problems,
        snapshots,
        policies,
        cache,
        unknown,
        saga_store,
        schedule_store,
        clock,
        saga_options,
        named_commands,
        hand_sagas,
        hand_saga_deadlines,
        bus,
        read_models,
        outbox,
        projections,
        relay,
        consumer,
        health,
        undo_window,
        hand_jobs,
        job_options,
    } = builder;

    let events = check_events(&collected::<EventRegistration>(), &mut problems);
    check_aggregates(&collected::<AggregateRegistration>(), &events, &mut problems);

    // Commands: one handler each, unique names, dependencies provided.
    let mut named: Vec<NamedRegistration> = collected::<CommandTypeRegistration>()
        .into_iter()
        .map(|c| NamedRegistration {
            name: c.name,
            type_id: (c.type_id)(),
            type_name: (c.type_name)(),
            dispatch: (c.dispatch)(),
            encode: (c.encode)(),
            request_schema: (c.request_schema)(),
            response_schema: (c.response_schema)(),
        })
        .collect();
    named.extend(named_commands);
    let mut command_types: HashMap<TypeId, &'static str> = named.iter().map(|c| (c.type_id, c.type_name)).collect();
    let mut dyn_commands: TypeMap<Arc<dyn ErasedCommandHandler>> = TypeMap::default();
    let mut command_names: BTreeMap<&'static str, HashSet<TypeId>> = BTreeMap::new();
    for c in &named {
        command_names.entry(c.name).or_default().insert(c.type_id);
    }
    let mut static_handlers: HashMap<TypeId, &'static str> = HashMap::new();
    for c in collected::<CommandRegistration>() {
        let type_id = (c.type_id)();
        command_names.entry(c.name).or_default().insert(type_id);
        static_handlers.insert(type_id, c.handler);
        check_deps(&deps, c.handler, c.deps, &mut problems);
        dyn_commands.insert(type_id, Arc::new(StaticCommand(c.call)));
    }
    for (type_id, (reg, handler)) in hand_commands {
        if let Some(&existing) = static_handlers.get(&type_id) {
            problems.push(BuildProblem::DuplicateCommandHandler {
                command: reg.message,
                first: existing,
                second: reg.handler_name,
                first_by_macro: true,
            });
        } else {
            command_names.entry(reg.message).or_default().insert(type_id);
            command_types.entry(type_id).or_insert(reg.message_type);
            dyn_commands.insert(type_id, handler);
        }
    }
    for (&name, types) in &command_names {
        if types.len() > 1 {
            let mut types: Vec<&'static str> =
                types.iter().map(|t| command_types.get(t).copied().unwrap_or("a type without `#[command]`")).collect();
            types.sort_unstable();
            problems.push(BuildProblem::DuplicateCommandName { name, types });
        }
    }
    let mut catalog: Vec<Described> = named
        .iter()
        .map(|c| Described {
            kind: MessageKind::Command,
            name: c.name,
            type_name: c.type_name,
            request: c.request_schema,
            response: c.response_schema,
            reads: &[],
        })
        .collect();
    catalog.sort_by_key(|d| d.name);
    catalog.dedup_by_key(|d| d.name);
    let commands_by_name = named
        .into_iter()
        .map(|c| (c.name, NamedCommand { type_id: c.type_id, dispatch: c.dispatch, encode: c.encode }))
        .collect();

    let mut query_types = collected::<QueryTypeRegistration>();
    check_queries(&collected::<QueryRegistration>(), &query_types, &deps, &mut problems);
    query_types.sort_by_key(|q| q.name);
    let queries_by_name = query_types.iter().map(|q| (q.name, NamedQuery { ask: (q.ask)(), reads: q.reads })).collect();
    catalog.extend(query_types.iter().map(|q| Described {
        kind: MessageKind::Query,
        name: q.name,
        type_name: (q.type_name)(),
        request: (q.request_schema)(),
        response: (q.response_schema)(),
        reads: q.reads,
    }));

    // Event handlers: for registered events, dependencies provided; in a stable order.
    let event_types: HashSet<TypeId> = events.values().flatten().map(|r| (r.type_id)()).collect();
    let mut statics = collected::<EventHandlerRegistration>();
    statics.sort_by_key(|h| h.handler);
    let mut handlers: TypeMap<Vec<EventHandlerEntry>> = TypeMap::default();
    let mut async_handlers: TypeMap<Vec<EventHandlerEntry>> = TypeMap::default();
    for h in statics {
        let type_id = (h.event_type_id)();
        if !event_types.contains(&type_id) {
            problems.push(BuildProblem::HandledEventNotRegistered { handler: h.handler, event: h.event_name });
        }
        check_deps(&deps, h.handler, h.deps, &mut problems);
        let target = if h.asynchronous { &mut async_handlers } else { &mut handlers };
        target.entry(type_id).or_default().push(EventHandlerEntry {
            name: h.handler,
            handler: Arc::new(StaticEvent(h.call)),
            unit_of_work: h.unit_of_work,
        });
    }
    for (type_id, name, _, handler) in hand_event_handlers {
        handlers.entry(type_id).or_default().push(EventHandlerEntry { name, handler, unit_of_work: false });
    }

    let upcasters = check_upcasters(crate::registry::upcast_steps(), &events, &mut problems);

    // Sagas: unique names; persisted where the events are.
    let mut sagas: Vec<&SagaRegistration> = collected::<SagaRegistration>();
    sagas.extend(hand_sagas.iter());
    let saga_types = check_sagas(&sagas, &mut problems);
    let store_schedule = store.as_ref().and_then(|s| s.clone().schedule());
    if !saga_types.is_empty()
        && store.is_some()
        && (saga_store.is_none() || (schedule_store.is_none() && store_schedule.is_none()))
    {
        let mut sagas: Vec<&'static str> = saga_types.keys().copied().collect();
        sagas.sort_unstable();
        problems.push(BuildProblem::SagaStateInMemory { sagas });
    }
    if !policies.is_empty() && snapshots.is_none() {
        let mut aggregates: Vec<&'static str> = policies.keys().copied().collect();
        aggregates.sort_unstable();
        problems.push(BuildProblem::SnapshotPolicyWithoutStore { aggregates });
    }

    // The host's wiring: an outbox for async handlers and sagas, a document store for
    // projections.
    let default_store = store.is_none();
    let (store, saga_store): (Arc<dyn EventStore>, _) = match store {
        Some(store) => (store, saga_store),
        None => {
            // The default store keeps its sagas beside it, their deadlines in its schedule.
            let memory = MemoryStore::new();
            let sagas = saga_store.unwrap_or_else(|| Arc::new(memory.saga_store()));
            (Arc::new(memory), Some(sagas))
        }
    };
    let outbox = outbox.or_else(|| store.clone().outbox());
    let asynchronous = !async_handlers.is_empty() || !saga_types.is_empty();
    if asynchronous && outbox.is_none() {
        let mut handlers: Vec<&'static str> = async_handlers.values().flatten().map(|h| h.name).collect();
        handlers.sort_unstable();
        handlers.dedup();
        problems.push(BuildProblem::AsyncHandlersWithoutOutbox { handlers });
    }
    let read_models = read_models.or_else(|| store.clone().read_models()).or_else(|| {
        (default_store && !projections.is_empty())
            .then(|| Arc::new(crate::MemoryProjectionStore::new()) as Arc<dyn crate::ports::ProjectionStore>)
    });
    if !projections.is_empty() && read_models.is_none() {
        let mut names: Vec<&'static str> = projections.iter().map(|p| p.name).collect();
        names.sort_unstable();
        problems.push(BuildProblem::ProjectionsWithoutReadModels { projections: names });
    }

    // Jobs: unique names; kept where the events are.
    let mut job_regs: Vec<&crate::registry::JobRegistration> = collected::<crate::registry::JobRegistration>();
    job_regs.extend(hand_jobs.iter());
    let job_types = check_jobs(&job_regs, &mut problems);
    let job_store = store.clone().jobs();
    if !job_types.is_empty() && job_store.is_none() {
        let mut jobs: Vec<&'static str> = job_types.keys().copied().collect();
        jobs.sort_unstable();
        problems.push(BuildProblem::JobsWithoutStore { jobs });
    }

    if !problems.is_empty() {
        return Err(Error::Build(BuildError { problems }));
    }
    let mut deps = deps;
    if let Some(store) = &read_models {
        deps.insert(Arc::new(crate::cqrs::ReadModelStore(store.clone())));
    }

    let mut extensions = Extensions::default();
    extensions.insert(Schedules {
        store: schedule_store
            .or_else(|| store.clone().schedule())
            .unwrap_or_else(|| Arc::new(MemoryScheduleStore::new())),
        clock: clock.unwrap_or_else(|| Arc::new(SystemClock)),
        internal: HashMap::from([
            (DEADLINE_COMMAND, fire_deadline as InternalCommand),
            (crate::deadline::AGGREGATE_DEADLINE, crate::deadline::fire_scheduled as InternalCommand),
        ]),
    });
    if let Some(bus) = bus {
        extensions.insert(bus);
    }
    extensions.insert(crate::host::HostPlan {
        outbox,
        read_models,
        projections,
        relay,
        consumer,
        asynchronous,
        sagas: !saga_types.is_empty(),
        jobs: !job_types.is_empty(),
    });
    extensions.insert(crate::jobs::Jobs { store: job_store, types: job_types, options: job_options });
    extensions.insert(crate::host::Hosted::default());
    extensions.insert(crate::undo::UndoRuntime {
        window: undo_window,
        events: collected::<crate::registry::UndoRegistration>().into_iter().map(|u| (u.event, u)).collect(),
    });
    extensions.insert(health);
    let mut saga_deadlines: HashMap<&'static str, crate::saga::SagaDeadlineFn> =
        inventory::iter::<crate::saga::SagaDeadlineRegistration>.into_iter().map(|r| (r.saga, r.fire)).collect();
    for (saga, fire) in hand_saga_deadlines {
        saga_deadlines.entry(saga).or_insert(fire);
    }
    extensions.insert(SagaRuntime {
        store: saga_store.unwrap_or_else(|| Arc::new(MemorySagaStore::new())),
        options: saga_options,
        types: saga_types,
        deadlines: saga_deadlines,
    });
    middleware.sort_by_key(|m| m.priority());
    Ok(Mediator::from_runtime(Runtime {
        store,
        deps,
        middleware,
        event_handlers: handlers,
        dyn_commands,
        retry,
        transient,
        transient_for,
        loader: Loader { upcasters, unknown, snapshots, policies },
        cache: cache.map(AggregateCache::new),
        committed: Arc::default(),
        async_handlers,
        event_decoders: events.values().flatten().map(|r| (r.name, ((r.type_id)(), r.decode))).collect(),
        extensions,
        commands_by_name,
        queries_by_name,
        catalog,
    }))
}

/// The events by stored name; one type per name.
fn check_events(
    registered: &[&'static EventRegistration],
    problems: &mut Vec<BuildProblem>,
) -> BTreeMap<&'static str, Vec<&'static EventRegistration>> {
    let mut events: BTreeMap<&'static str, Vec<&'static EventRegistration>> = BTreeMap::new();
    for e in registered {
        events.entry(e.name).or_default().push(e);
    }
    for (&name, regs) in &events {
        let mut types: Vec<&'static str> = regs.iter().map(|r| (r.type_name)()).collect();
        types.sort_unstable();
        types.dedup();
        if types.len() > 1 {
            problems.push(BuildProblem::DuplicateEventName { name, types });
        }
    }
    events
}

/// One type per stream type, listing only registered events.
fn check_aggregates(
    registered: &[&'static AggregateRegistration],
    events: &BTreeMap<&'static str, Vec<&'static EventRegistration>>,
    problems: &mut Vec<BuildProblem>,
) {
    let mut aggregates: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for a in registered {
        aggregates.entry(a.name).or_default().push((a.type_name)());
        for e in a.events {
            if !events.contains_key(e) {
                problems.push(BuildProblem::AggregateEventNotRegistered { aggregate: a.name, event: e });
            }
        }
    }
    for (name, mut types) in aggregates {
        types.sort_unstable();
        types.dedup();
        if types.len() > 1 {
            problems.push(BuildProblem::DuplicateAggregateName { name, types });
        }
    }
}

/// Unique names, dependencies provided.
fn check_queries(
    registered: &[&'static QueryRegistration],
    types: &[&'static QueryTypeRegistration],
    deps: &Deps,
    problems: &mut Vec<BuildProblem>,
) {
    let mut query_names: BTreeMap<&'static str, HashSet<TypeId>> = BTreeMap::new();
    for q in types {
        query_names.entry(q.name).or_default().insert((q.type_id)());
    }
    for q in registered {
        query_names.entry(q.name).or_default().insert((q.type_id)());
        check_deps(deps, q.handler, q.deps, problems);
    }
    for (name, types) in query_names {
        if types.len() > 1 {
            problems.push(BuildProblem::DuplicateQueryName { name, types: types.len() });
        }
    }
}

/// One upcaster per (event, from version), towards a version the event has.
fn check_upcasters(
    steps: impl IntoIterator<Item = UpcastStep>,
    events: &BTreeMap<&'static str, Vec<&'static EventRegistration>>,
    problems: &mut Vec<BuildProblem>,
) -> Upcasters {
    let (upcasters, duplicates) = Upcasters::new(steps);
    for (first, second) in duplicates {
        problems.push(BuildProblem::DuplicateUpcaster {
            event: first.event_type,
            from: first.from,
            first: first.name,
            second: second.name,
        });
    }
    let versions: HashMap<&str, u32> =
        events.iter().flat_map(|(n, regs)| regs.iter().map(move |r| (*n, r.version))).collect();
    for u in upcasters.iter() {
        match versions.get(u.event_type) {
            Some(&current) if u.to > current => problems.push(BuildProblem::UpcasterPastCurrentVersion {
                upcaster: u.name,
                event: u.event_type,
                to: u.to,
                current,
            }),
            Some(_) => {}
            None => problems.push(BuildProblem::UpcastedEventNotRegistered { upcaster: u.name, event: u.event_type }),
        }
    }
    upcasters
}

/// Unique names; how each saga type sends its commands.
fn check_sagas(
    registered: &[&SagaRegistration],
    problems: &mut Vec<BuildProblem>,
) -> HashMap<&'static str, SagaSendFn> {
    let mut saga_types: HashMap<&'static str, SagaSendFn> = HashMap::new();
    let mut saga_names: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for s in registered {
        saga_names.entry(s.name).or_default().push((s.type_name)());
        saga_types.insert(s.name, s.send);
    }
    for (name, mut types) in saga_names {
        types.sort_unstable();
        types.dedup();
        if types.len() > 1 {
            problems.push(BuildProblem::DuplicateSagaName { name, types });
        }
    }
    saga_types
}

/// Unique names; how each job type runs.
fn check_jobs(
    registered: &[&crate::registry::JobRegistration],
    problems: &mut Vec<BuildProblem>,
) -> HashMap<&'static str, (TypeId, crate::jobs::JobRunFn)> {
    let mut types: HashMap<&'static str, (TypeId, crate::jobs::JobRunFn)> = HashMap::new();
    let mut names: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for j in registered {
        names.entry(j.name).or_default().push((j.type_name)());
        types.insert(j.name, ((j.type_id)(), j.run));
    }
    for (name, mut types) in names {
        types.sort_unstable();
        types.dedup();
        if types.len() > 1 {
            problems.push(BuildProblem::DuplicateJobName { name, types });
        }
    }
    types
}

fn check_deps(deps: &Deps, handler: &'static str, needed: &[DepKey], problems: &mut Vec<BuildProblem>) {
    for d in needed {
        if !deps.contains((d.type_id)()) {
            problems.push(BuildProblem::MissingDependency { handler, dependency: (d.type_name)() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_decode(_: &str) -> serde_json::Result<Box<dyn std::any::Any + Send + Sync>> {
        serde_json::from_str::<()>("x").map(|()| Box::new(()) as Box<dyn std::any::Any + Send + Sync>)
    }

    static OPENED: EventRegistration = EventRegistration {
        name: "Opened",
        version: 2,
        type_id: TypeId::of::<u8>,
        type_name: || "bank::Opened",
        decode: no_decode,
    };

    #[test]
    fn an_aggregate_listing_an_unregistered_event_is_a_problem() {
        static ACCOUNT: AggregateRegistration =
            AggregateRegistration { name: "Account", type_name: || "bank::Account", events: &["Opened", "Closed"] };
        static LEDGER: AggregateRegistration =
            AggregateRegistration { name: "Account", type_name: || "books::Ledger", events: &[] };
        let mut problems = Vec::new();
        let events = check_events(&[&OPENED], &mut problems);
        check_aggregates(&[&ACCOUNT, &LEDGER], &events, &mut problems);
        assert_eq!(
            problems,
            [
                BuildProblem::AggregateEventNotRegistered { aggregate: "Account", event: "Closed" },
                BuildProblem::DuplicateAggregateName { name: "Account", types: vec!["bank::Account", "books::Ledger"] },
            ]
        );
        assert_eq!(problems[0].to_string(), "aggregate `Account` lists event `Closed`, which is not registered");
    }

    #[test]
    fn two_job_types_with_one_name_are_a_problem() {
        fn never<'a>(_: &'a str, _: &'a mut crate::jobs::JobContext) -> futures::future::BoxFuture<'a, Result<String>> {
            Box::pin(async { Ok(String::new()) })
        }
        let export = |type_id: fn() -> TypeId, type_name: fn() -> &'static str| crate::registry::JobRegistration {
            name: "export",
            type_id,
            type_name,
            run: never,
        };
        let (a, b) = (export(TypeId::of::<u8>, || "a::Export"), export(TypeId::of::<u16>, || "b::Export"));
        let again = export(TypeId::of::<u8>, || "a::Export");
        let mut problems = Vec::new();
        let types = check_jobs(&[&a, &b, &again], &mut problems);
        assert_eq!(types.len(), 1);
        assert_eq!(
            problems,
            [BuildProblem::DuplicateJobName { name: "export", types: vec!["a::Export", "b::Export"] }]
        );
        assert_eq!(
            problems[0].to_string(),
            "job name `export` is used by `a::Export` and `b::Export`; give each a unique `#[job(name = \"..\")]`"
        );
    }

    #[test]
    fn two_query_types_with_one_name_are_a_problem() {
        static BALANCE: QueryRegistration =
            QueryRegistration { name: "Balance", type_id: TypeId::of::<u8>, handler: "balance", deps: &[] };
        static BALANCE_V2: QueryRegistration =
            QueryRegistration { name: "Balance", type_id: TypeId::of::<u16>, handler: "balance_v2", deps: &[] };
        let mut problems = Vec::new();
        check_queries(&[&BALANCE, &BALANCE_V2], &[], &Deps::default(), &mut problems);
        assert!(
            matches!(problems.as_slice(), [BuildProblem::DuplicateQueryName { name: "Balance", types: 2 }]),
            "{problems:?}"
        );
    }

    #[test]
    fn upcasters_are_checked_against_the_events() {
        let step = |event_type, from, to, name| UpcastStep { event_type, from, to, name, upcast: Ok };
        let mut problems = Vec::new();
        let events = check_events(&[&OPENED], &mut problems);
        let upcasters = check_upcasters(
            [
                step("Opened", 1, 2, "v1"),
                step("Opened", 1, 2, "v1_again"),
                step("Opened", 2, 3, "v2"),
                step("Gone", 1, 2, "g"),
            ],
            &events,
            &mut problems,
        );
        assert_eq!(upcasters.iter().count(), 3);
        problems.sort_by_key(ToString::to_string);
        assert_eq!(
            problems,
            [
                BuildProblem::DuplicateUpcaster { event: "Opened", from: 1, first: "v1", second: "v1_again" },
                BuildProblem::UpcastedEventNotRegistered { upcaster: "g", event: "Gone" },
                BuildProblem::UpcasterPastCurrentVersion { upcaster: "v2", event: "Opened", to: 3, current: 2 },
            ]
        );
    }
}
