//! The one domain every contender runs: a bank account whose `Deposit` emits one
//! `Deposited { amount }` (and, for the batch scenario, `DepositMany` emits `count` of
//! them). Each framework spells it its own way; the three spellings sit side by side here
//! so they can be checked for equivalence at a glance.

pub(crate) mod cqrs_es;
pub(crate) mod ours;
pub(crate) mod plain;

/// The aggregate type name every contender stores (`aggregate_type` / stream type).
pub(crate) const AGGREGATE_TYPE: &str = "Account";
/// The stored event type name of a deposit.
pub(crate) const DEPOSITED: &str = "Deposited";
