//! The domain in cqrs-es 0.5 (used in memory with `MemStore` and on Postgres through
//! postgres-es): the `Aggregate` trait by hand, events as one serde enum.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// `Clone` because cqrs-es's `MemStore<A>` is `Clone` only for a cloneable `A`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Account {
    pub(crate) balance: u64,
}

/// Stored by postgres-es as `{"Deposited":{"amount":1}}`, event type `Deposited`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum AccountEvent {
    Deposited { amount: u64 },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        match self {
            AccountEvent::Deposited { .. } => super::DEPOSITED.to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum AccountCommand {
    Deposit {
        amount: u64,
    },
    /// One command, `count` events: the batch scenario.
    DepositMany {
        amount: u64,
        count: u32,
    },
}

/// The account never refuses a deposit; cqrs-es wants an error type all the same.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountError {}

impl Aggregate for Account {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(&mut self, command: AccountCommand, (): &(), sink: &EventSink<Self>) -> Result<(), AccountError> {
        match command {
            AccountCommand::Deposit { amount } => sink.write(AccountEvent::Deposited { amount }, self).await,
            AccountCommand::DepositMany { amount, count } => {
                for _ in 0..count {
                    sink.write(AccountEvent::Deposited { amount }, self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::Deposited { amount } => self.balance += amount,
        }
    }
}
