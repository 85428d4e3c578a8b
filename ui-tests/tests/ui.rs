//! Compile-time guarantees: each `ui/<macro>/fail/*.rs` is one mistake whose error a
//! user can act on; each `ui/<macro>/pass/*.rs` compiles and runs.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*/fail/*.rs");
    t.pass("ui/*/pass/*.rs");
}
