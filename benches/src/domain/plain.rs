//! The domain for plain sqlx: serde types with the same JSON as postgres-es writes, and a
//! fold, with no framework in between.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum AccountEvent {
    Deposited { amount: u64 },
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Account {
    pub(crate) balance: u64,
}

impl Account {
    pub(crate) fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited { amount } => self.balance += amount,
        }
    }
}
