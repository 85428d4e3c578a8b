//! The domain in cqrs-ddd: the macros, exactly as an application writes them.
#![allow(clippy::unnecessary_wraps)] // `#[handle]` methods return a `Result` by contract

use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deposited {
    pub(crate) amount: u64,
}

/// The account never refuses a deposit; the error type is the aggregate's contract.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountError {}

#[aggregate(id = String, events(Deposited), error = AccountError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn deposit(&self, cmd: &Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![Deposited { amount: cmd.amount }.into()])
    }

    #[handle(create_if_missing)]
    fn deposit_many(&self, cmd: &DepositMany) -> Result<Vec<AccountEvent>, AccountError> {
        Ok((0..cmd.count).map(|_| Deposited { amount: cmd.amount }.into()).collect())
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    pub(crate) fn balance(&self) -> u64 {
        self.balance
    }
}

#[command(aggregate = Account)]
#[derive(Deserialize)]
pub(crate) struct Deposit {
    #[id]
    pub(crate) account: String,
    pub(crate) amount: u64,
}

/// One command, `count` events: the batch scenario.
#[command(aggregate = Account)]
pub(crate) struct DepositMany {
    #[id]
    pub(crate) account: String,
    pub(crate) amount: u64,
    pub(crate) count: u32,
}

/// A command that does nothing: what the mediator costs on its own.
#[command]
pub(crate) struct Noop;

#[command_handler]
pub(crate) async fn noop(_c: Noop) -> cqrs_ddd::Result<()> {
    Ok(())
}

/// Scenario 8: balances per account in the document store.
pub(crate) struct BenchBalances;

#[projection(name = "bench_balances", prefetch = "bench_balances")]
impl BenchBalances {
    #[on]
    async fn deposited(&self, e: &Envelope<Deposited>, tx: &mut ProjectionTx) -> cqrs_ddd::Result<()> {
        let amount = e.amount;
        tx.docs("bench_balances").update(&e.header.stream_id, |b: &mut u64| *b += amount).await?;
        Ok(())
    }

    #[reset]
    async fn reset(&self, tx: &mut ProjectionTx) -> cqrs_ddd::Result<()> {
        tx.docs("bench_balances").clear().await
    }
}

/// One of the commands registered by hand only to be many: the handler-count scale row
/// registers 1,024 of them (`Extra<0, 0>` to `Extra<31, 31>`, each a type and a name of
/// its own).
pub(crate) struct Extra<const A: usize, const B: usize>;

/// The handler of every [`Extra`]: does nothing.
struct ExtraHandler;

impl<const A: usize, const B: usize> cqrs_ddd::DynCommandHandler<Extra<A, B>> for ExtraHandler
where
    Extra<A, B>: cqrs_ddd::Command<Response = ()>,
{
    fn handle<'a>(
        &'a self,
        _cmd: Extra<A, B>,
        _ctx: &'a mut cqrs_ddd::CommandContext,
    ) -> futures::future::BoxFuture<'a, cqrs_ddd::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// For every `A` and `B` listed: `Extra<A, B>` is a command named `ExtraA_B`, and
/// [`with_extra_handlers`] registers its handler.
macro_rules! extra_commands {
    ($($a:literal)*; $b:tt) => {
        $( extra_commands!(@row $a; $b); )*

        /// Registers the handlers of the 1,024 [`Extra`] commands.
        pub(crate) fn with_extra_handlers(mut builder: cqrs_ddd::AppBuilder) -> cqrs_ddd::AppBuilder {
            $( extra_commands!(@register builder $a; $b); )*
            builder
        }
    };
    (@row $a:literal; ($($b:literal)*)) => {
        $(
            impl cqrs_ddd::Command for Extra<$a, $b> {
                const NAME: &'static str = concat!("Extra", stringify!($a), "_", stringify!($b));
                type Response = ();
            }
        )*
    };
    (@register $builder:ident $a:literal; ($($b:literal)*)) => {
        $( $builder = $builder.command_handler::<Extra<$a, $b>, _>(ExtraHandler); )*
    };
}

extra_commands!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31;
    (0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31)
);

/// How many commands [`with_extra_handlers`] registers.
pub(crate) const EXTRA_HANDLERS: usize = 32 * 32;
