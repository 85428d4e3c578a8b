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

/// The payload of a `Deposited` row in a table of cqrs-ddd's shape, where the event type
/// is a column of its own and the payload is the event's fields: `{"amount":1}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deposited {
    pub(crate) amount: u64,
}

impl AccountEvent {
    /// Decodes a row of cqrs-ddd's shape: the event type column picks the payload's type.
    pub(crate) fn from_row(event_type: &str, payload: &str) -> Result<AccountEvent, String> {
        match event_type {
            super::DEPOSITED => serde_json::from_str::<Deposited>(payload)
                .map(|d| AccountEvent::Deposited { amount: d.amount })
                .map_err(|e| format!("a {event_type} payload does not decode: {e}")),
            other => Err(format!("unknown event type `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_of_our_shape_decodes_by_its_event_type() {
        let mut account = Account::default();
        account.apply(&AccountEvent::from_row(super::super::DEPOSITED, r#"{"amount":3}"#).unwrap());
        assert_eq!(account.balance, 3);
        assert!(AccountEvent::from_row("Withdrawn", "{}").unwrap_err().contains("Withdrawn"));
        assert!(AccountEvent::from_row(super::super::DEPOSITED, "{}").is_err());
    }
}
