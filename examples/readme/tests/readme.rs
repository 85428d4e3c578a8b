//! The README's example runs, and the README's `[dependencies]` block is what this crate
//! depends on, so a user who pastes both gets a crate that builds.

#[path = "../blocks.rs"]
mod blocks;

/// The README's code, as written (the same file `src/main.rs` includes). In a module its
/// items are private, so what only the binary's `main` reaches counts as unused.
#[allow(dead_code)]
mod readme {
    include!(concat!(env!("OUT_DIR"), "/readme.rs"));

    pub(super) fn run() -> cqrs_ddd::Result<()> {
        main()
    }
}

/// The README's read-model example, as written.
#[allow(dead_code)]
mod read_models {
    include!(concat!(env!("OUT_DIR"), "/read_models.rs"));

    pub(super) fn run() -> cqrs_ddd::Result<()> {
        main()
    }
}

#[test]
fn the_readme_read_model_example_runs_to_completion() {
    read_models::run().expect("the README's read-model example returns Ok");
}

use std::collections::BTreeMap;

use toml::{Table, Value};

#[test]
fn the_readme_example_runs_to_completion() {
    readme::run().expect("the README's example returns Ok");
}

fn read(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A dependency as it matters to a user: version requirement, features (sorted),
/// default features; plus any other keys, which must not differ.
#[derive(Debug, PartialEq)]
struct Dependency {
    version: Option<String>,
    features: Vec<String>,
    default_features: bool,
    other: BTreeMap<String, String>,
}

fn dependencies(manifest: &Table, origin: &str) -> BTreeMap<String, Dependency> {
    let Some(Value::Table(deps)) = manifest.get("dependencies") else { panic!("{origin} has no [dependencies] table") };
    deps.iter()
        .map(|(name, spec)| {
            let dependency = match spec {
                Value::String(version) => Dependency {
                    version: Some(version.clone()),
                    features: Vec::new(),
                    default_features: true,
                    other: BTreeMap::new(),
                },
                Value::Table(t) => {
                    let mut other: BTreeMap<String, String> =
                        t.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
                    let version = other.remove("version").map(|v| v.trim_matches('"').to_owned());
                    other.remove("features");
                    let default_features = t.get("default-features").and_then(Value::as_bool).unwrap_or(true);
                    other.remove("default-features");
                    let mut features: Vec<String> = t
                        .get("features")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                        .unwrap_or_default();
                    features.sort();
                    Dependency { version, features, default_features, other }
                }
                other => panic!("{origin}: dependency `{name}` is neither a version nor a table: {other}"),
            };
            (name.clone(), dependency)
        })
        .collect()
}

#[test]
fn the_readme_lists_exactly_the_dependencies_of_this_crate() {
    let block = blocks::block_after(&read("../../README.md"), blocks::HEADING, "toml").unwrap();
    let readme: Table = block.parse().unwrap_or_else(|e| panic!("the README's toml block does not parse: {e}"));
    let manifest: Table = read("Cargo.toml").parse().unwrap();
    let readme = dependencies(&readme, "the README's toml block");
    let mut ours = dependencies(&manifest, "examples/readme/Cargo.toml");

    // The framework comes from the workspace here; everything else must match. Its
    // version requirement must match too, and cargo checks it against the runtime's
    // version, so the README cannot name a version the code is not.
    let framework = ours.get_mut("cqrs-ddd").expect("this crate depends on cqrs-ddd");
    assert_eq!(framework.other.remove("path").as_deref(), Some("\"../../runtime\""));

    assert_eq!(
        readme.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "the README's [dependencies] and examples/readme/Cargo.toml list different crates"
    );
    for (name, wanted) in &readme {
        assert_eq!(Some(wanted), ours.get(name), "`{name}` differs between the README and examples/readme/Cargo.toml");
    }
}
