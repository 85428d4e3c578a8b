//! Run with: cargo run -p example-readme --bin read_models
//!
//! The README's "Read models and specifications" example, copied from README.md by
//! build.rs as written.

include!(concat!(env!("OUT_DIR"), "/read_models.rs"));
