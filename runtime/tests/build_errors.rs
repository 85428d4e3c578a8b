//! `App::build()` reports every wiring problem it can only see at run time, in one error.
//! This binary is deliberately mis-wired; nothing else lives in it.

use cqrs_ddd::BuildProblem;
use cqrs_ddd::prelude::*;

mod billing {
    use cqrs_ddd::prelude::*;
    #[event(name = "Paid")]
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Paid {
        pub(crate) cents: u64,
    }
}

mod shipping {
    use cqrs_ddd::prelude::*;
    #[event(name = "Paid")]
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Paid {
        pub(crate) parcel: String,
    }
}

/// Implemented by hand, so never registered with `#[event]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unregistered;
impl Event for Unregistered {
    const NAME: &'static str = "Unregistered";
    const VERSION: u32 = 1;
}

struct Mailer;
struct Clock;

#[event_handler]
async fn on_unregistered(_e: &Unregistered) -> Result<()> {
    Ok(())
}

#[event_handler]
async fn mail_receipt(_e: &Envelope<billing::Paid>, _mailer: Dep<Mailer>) -> Result<()> {
    Ok(())
}

#[command(name = "Charge")]
struct ChargeV1;
#[command(name = "Charge")]
struct ChargeV2;

/// Two command types with one stored name and no handler: sent by name (scheduled, from
/// a broker), the name could not say which one is meant.
#[command(name = "Refund")]
#[derive(Serialize, Deserialize)]
struct RefundV1;
#[command(name = "Refund")]
#[derive(Serialize, Deserialize)]
struct RefundV2;

#[command_handler]
async fn charge_v1(_c: ChargeV1, _clock: Dep<Clock>) -> Result<()> {
    Ok(())
}

#[command_handler]
async fn charge_v2(_c: ChargeV2, _ctx: &mut CommandContext) -> Result<()> {
    Ok(())
}

#[upcaster(event = billing::Paid, from = 1, to = 2)]
fn paid_v1(v: serde_json::Value) -> serde_json::Value {
    v
}

#[upcaster(event = billing::Paid, from = 1, to = 2)]
fn paid_v1_again(v: serde_json::Value) -> serde_json::Value {
    v
}

#[upcaster(event = "Retired", from = 1, to = 2)]
fn retired_v1(v: serde_json::Value) -> serde_json::Value {
    v
}

#[test]
fn build_lists_every_problem_at_once() {
    let err = App::builder().build().err().expect("a mis-wired app must not build");
    let Error::Build(b) = &err else { panic!("expected a build error, got {err}") };
    let text = err.to_string();
    let expect = [
        "event name `Paid` is used by `build_errors::billing::Paid` and `build_errors::shipping::Paid`",
        "command name `Charge` is used by `build_errors::ChargeV1` and `build_errors::ChargeV2`",
        "command name `Refund` is used by `build_errors::RefundV1` and `build_errors::RefundV2`",
        "`build_errors::charge_v1` needs `Dep<build_errors::Clock>`, which was never provided",
        "`build_errors::mail_receipt` needs `Dep<build_errors::Mailer>`, which was never provided",
        "event handler `build_errors::on_unregistered` handles `Unregistered`, which is not registered",
        "event `Paid` has two upcasters from schema version 1",
        "upcaster `build_errors::retired_v1` is for event `Retired`, which is not registered",
        "turns `Paid` into schema version 2, but the event is at version 1",
    ];
    for e in expect {
        assert!(text.contains(e), "missing {e:?} in:\n{text}");
    }
    assert_eq!(b.problems.len(), expect.len(), "{text}");
}

#[test]
fn every_problem_is_a_variant_naming_the_types() {
    let err = App::builder().build().err().expect("a mis-wired app must not build");
    let Error::Build(b) = err else { panic!("expected a build error, got {err}") };
    let has = |wanted: &dyn Fn(&BuildProblem) -> bool| b.problems.iter().any(wanted);
    assert!(has(&|p| matches!(p, BuildProblem::DuplicateEventName { name: "Paid", types }
        if types == &["build_errors::billing::Paid", "build_errors::shipping::Paid"])));
    assert!(has(&|p| matches!(p, BuildProblem::DuplicateCommandName { name: "Charge", types }
        if types == &["build_errors::ChargeV1", "build_errors::ChargeV2"])));
    assert!(has(&|p| matches!(p, BuildProblem::DuplicateCommandName { name: "Refund", .. })));
    assert!(has(&|p| matches!(p, BuildProblem::MissingDependency { handler: "build_errors::charge_v1", dependency }
        if *dependency == std::any::type_name::<Clock>())));
    assert!(has(
        &|p| matches!(p, BuildProblem::MissingDependency { handler: "build_errors::mail_receipt", dependency }
        if *dependency == std::any::type_name::<Mailer>())
    ));
    assert!(has(&|p| matches!(
        p,
        BuildProblem::HandledEventNotRegistered { handler: "build_errors::on_unregistered", event: "Unregistered" }
    )));
    assert!(has(&|p| matches!(p, BuildProblem::DuplicateUpcaster { event: "Paid", from: 1, .. })));
    assert!(has(&|p| matches!(
        p,
        BuildProblem::UpcastedEventNotRegistered { upcaster: "build_errors::retired_v1", event: "Retired" }
    )));
    assert!(has(&|p| matches!(p, BuildProblem::UpcasterPastCurrentVersion { event: "Paid", to: 2, current: 1, .. })));
}

#[test]
fn providing_the_services_removes_those_problems() {
    let err = App::builder().provide(Mailer).provide(Clock).build().err().unwrap();
    let Error::Build(b) = err else { panic!() };
    assert_eq!(b.problems.len(), 7, "{b}");
}
