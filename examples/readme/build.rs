//! Copies the first ```rust block after the README's "Thirty lines" heading into
//! `$OUT_DIR/readme.rs`, so this crate compiles exactly the code the README shows.

mod blocks;

use std::path::PathBuf;

fn main() -> Result<(), String> {
    let var = |name: &str| std::env::var(name).map_err(|e| format!("{name}: {e}"));
    let readme = PathBuf::from(var("CARGO_MANIFEST_DIR")?).join("../../README.md");
    println!("cargo::rerun-if-changed={}", readme.display());
    println!("cargo::rerun-if-changed=blocks.rs");
    let markdown = std::fs::read_to_string(&readme).map_err(|e| format!("cannot read {}: {e}", readme.display()))?;
    let code = blocks::block_after(&markdown, blocks::HEADING, "rust")?;
    let out = PathBuf::from(var("OUT_DIR")?).join("readme.rs");
    std::fs::write(&out, code).map_err(|e| format!("cannot write {}: {e}", out.display()))
}
