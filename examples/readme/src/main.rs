//! Run with: cargo run -p example-readme
//!
//! The README's "Thirty lines" example, copied from README.md by build.rs as written.

include!(concat!(env!("OUT_DIR"), "/readme.rs"));
