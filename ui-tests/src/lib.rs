//! trybuild cases of cqrs-ddd; see `tests/ui.rs`.
