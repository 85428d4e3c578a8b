//! Copies the first ```rust block after the README's "Thirty lines" heading into
//! `$OUT_DIR/readme.rs`, and the one after "Read models and specifications" into
//! `$OUT_DIR/read_models.rs`, so this crate compiles exactly the code the README shows.

mod blocks;

use std::path::PathBuf;

fn main() -> Result<(), String> {
    let var = |name: &str| std::env::var(name).map_err(|e| format!("{name}: {e}"));
    let readme = PathBuf::from(var("CARGO_MANIFEST_DIR")?).join("../../README.md");
    println!("cargo::rerun-if-changed={}", readme.display());
    println!("cargo::rerun-if-changed=blocks.rs");
    let markdown = std::fs::read_to_string(&readme).map_err(|e| format!("cannot read {}: {e}", readme.display()))?;
    for (heading, file) in [(blocks::HEADING, "readme.rs"), (blocks::READ_MODELS, "read_models.rs")] {
        let code = blocks::block_after(&markdown, heading, "rust")?;
        let out = PathBuf::from(var("OUT_DIR")?).join(file);
        std::fs::write(&out, code).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(())
}
