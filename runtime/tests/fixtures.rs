//! The test kits for aggregates and projections decide, apply and project exactly as
//! the runtime does.

use cqrs_ddd::prelude::*;
use cqrs_ddd::testing::{AggregateFixture, ProjectionFixture};

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Opened {
    owner: String,
}

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rated {
    rate: f64,
}

#[derive(Debug, PartialEq, thiserror::Error, Serialize)]
enum AccountError {
    #[error("amounts must be positive")]
    ZeroAmount,
    #[error("the account is closed")]
    Closed,
}

#[aggregate(id = String, events(Opened, Deposited, Rated), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance: u64,
    deposits: u32,
}

#[aggregate]
impl Account {
    #[handle(create)]
    fn open(&self, c: &Open) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Opened { owner: c.owner.clone() }.into()])
    }
    #[handle]
    fn deposit(&self, c: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        if c.amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        if self.owner.is_empty() {
            return Err(AccountError::Closed);
        }
        Ok(vec![Deposited { amount: c.amount }.into(), Deposited { amount: 0 }.into()])
    }
    #[handle]
    fn rate(&self, c: &Rate) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Rated { rate: c.rate }.into()])
    }
    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.owner.clone_from(&e.owner);
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
        self.deposits += 1;
    }
    #[apply]
    fn rated(&mut self, _: &Rated) {}
}

#[command(aggregate = Account)]
#[derive(Clone)]
struct Open {
    #[id]
    id: String,
    owner: String,
}

#[command(aggregate = Account)]
#[derive(Clone)]
struct Deposit {
    #[id]
    id: String,
    amount: u64,
}

#[command(aggregate = Account)]
struct Rate {
    #[id]
    id: String,
    rate: f64,
}

#[test]
fn the_creation_policy_is_checked_as_a_command_would() {
    let mut fresh = AggregateFixture::<Account>::new();
    fresh.when(Deposit { id: "a".into(), amount: 5 });
    assert!(matches!(fresh.error(), Error::NotFound { .. }), "{}", fresh.error());
    fresh.when(Open { id: "a".into(), owner: "Ada".into() }).then_events(&["Opened"]);
    fresh.when(Open { id: "a".into(), owner: "Bob".into() });
    assert!(matches!(fresh.error(), Error::AlreadyExists { version: 1, .. }));
    assert_eq!(fresh.state().owner, "Ada", "a refused command applies nothing");
}

#[test]
fn events_are_applied_and_a_second_command_sees_them() {
    let mut account = AggregateFixture::<Account>::new().given([Opened { owner: "Ada".into() }]);
    account.when(Deposit { id: "a".into(), amount: 5 }).then_events(&["Deposited", "Deposited"]);
    assert_eq!(account.events_of::<Deposited>(), [Deposited { amount: 5 }, Deposited { amount: 0 }]);
    assert!(account.events_of::<Opened>().is_empty());
    assert_eq!((account.state().balance, account.state().deposits, account.version()), (5, 2, 3));
    account.when(Deposit { id: "a".into(), amount: 0 });
    assert_eq!(account.then_error::<AccountError>(), &AccountError::ZeroAmount);
    assert_eq!(account.version(), 3);
    // Given events of every type, through `Into` the aggregate's event enum.
    let closed = AggregateFixture::<Account>::new()
        .given::<AccountEvent>([Opened { owner: String::new() }.into(), Deposited { amount: 2 }.into()]);
    assert_eq!(closed.state().balance, 2);
}

#[test]
fn an_event_the_store_would_refuse_is_refused() {
    let mut account = AggregateFixture::<Account>::new().given([Opened { owner: "Ada".into() }]);
    account.when(Rate { id: "a".into(), rate: f64::NAN });
    let Error::Unstorable { what, reason } = account.error() else { panic!("{}", account.error()) };
    assert!(what.contains("Rated") && reason.contains("rate"), "{what}: {reason}");
    account.when(Rate { id: "a".into(), rate: 0.5 }).then_events(&["Rated"]);
}

#[test]
#[should_panic(expected = "the command failed instead of causing events")]
fn asking_for_events_of_a_failed_command_panics_with_the_error() {
    let mut account = AggregateFixture::<Account>::new();
    account.when(Deposit { id: "a".into(), amount: 1 });
    account.then_events(&["Deposited"]);
}

/// The fixture and the mediator agree: the same commands give the same events and state.
#[tokio::test]
async fn the_fixture_agrees_with_the_mediator() {
    let app = App::builder().build().unwrap();
    let mut fixture = AggregateFixture::<Account>::new();
    let open = Open { id: "same".into(), owner: "Ada".into() };
    let deposits = [3u64, 0, 4];
    app.send(open.clone()).await.unwrap();
    fixture.when(open);
    for amount in deposits {
        let cmd = Deposit { id: "same".into(), amount };
        let sent = app.send(cmd.clone()).await;
        fixture.when(cmd);
        match sent {
            Ok(()) => assert!(fixture.events().len() == 2),
            Err(e) => assert_eq!(e.domain_error::<AccountError>(), Some(fixture.then_error::<AccountError>())),
        }
    }
    let loaded = app.load::<Account>(&"same".to_owned()).await.unwrap();
    assert_eq!(loaded.version, fixture.version());
    assert_eq!((loaded.state.balance, loaded.state.deposits), (fixture.state().balance, fixture.state().deposits));
}

struct Balances;

#[projection(name = "fixture_kit_balances")]
impl Balances {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> Result<()> {
        if e.amount == 13 {
            return Err(Error::handler("13 is refused"));
        }
        let amount = e.amount;
        tx.docs("kit_balances").update(&e.header.stream_id, |b: &mut u64| *b += amount).await?;
        Ok(())
    }
}

#[query]
struct BalanceOf {
    id: String,
}

#[query_handler]
async fn balance_of(q: BalanceOf, ctx: &QueryContext) -> Result<u64> {
    let doc = ctx.read_models()?.get("kit_balances", &q.id).await?;
    Ok(doc.map_or(0, |d| d.json.parse().unwrap_or(0)))
}

#[tokio::test]
async fn a_projection_is_fed_events_and_answers_documents_and_queries() {
    let mut balances = ProjectionFixture::new(Balances);
    balances.given("Account", "a", Deposited { amount: 5 }).await.unwrap();
    balances.given("Account", "a", Deposited { amount: 7 }).await.unwrap();
    balances.given("Account", "b", Opened { owner: "not projected".into() }).await.unwrap();
    balances.given_in("acme", "Account", "a", Deposited { amount: 1 }).await.unwrap();
    assert_eq!(balances.document::<u64>("kit_balances", "a").await.unwrap(), Some(12));
    assert_eq!(balances.document::<u64>("kit_balances", "b").await.unwrap(), None);
    assert_eq!(balances.document_of::<u64>(Some("acme"), "kit_balances", "a").await.unwrap(), Some(1));
    assert_eq!(balances.documents("kit_balances").await.unwrap().len(), 1, "no tenant's documents");
    assert!(balances.document::<String>("kit_balances", "a").await.is_err(), "a document of another type");

    // A failing event writes nothing and says why.
    let err = balances.given("Account", "a", Deposited { amount: 13 }).await.unwrap_err();
    assert!(err.to_string().contains("13 is refused"), "{err}");
    assert_eq!(balances.document::<u64>("kit_balances", "a").await.unwrap(), Some(12));
    assert!(balances.given_in("", "Account", "a", Deposited { amount: 1 }).await.is_err(), "empty tenant");

    assert_eq!(balances.query(BalanceOf { id: "a".into() }).await.unwrap(), 12);
    let in_acme =
        cqrs_ddd::RequestContext::new().with_tenant("acme").scope(balances.query(BalanceOf { id: "a".into() }));
    assert_eq!(in_acme.await.unwrap(), 1);
    assert_eq!(balances.store().count("kit_balances", &cqrs_ddd::spec::QueryOptions::new()).await.unwrap(), 1);
}
