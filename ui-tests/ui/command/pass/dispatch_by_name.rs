//! Every `#[command]` registers its stored name, whatever it derives and wherever its
//! handler is: one with a handler in another module, one with no `Deserialize` (sending
//! it by name is then an error at run time, not at compile time), one declared inside a
//! function, one reached through `crate = path`; shadowed prelude names break nothing.
#![allow(dead_code)]
use cqrs_ddd::prelude::*;

struct Result;
struct Ok;
struct Option;
struct Box;
struct Fn;

#[command(response = u32)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Add {
    pub n: u32,
}

mod handlers {
    #[cqrs_ddd::command_handler]
    async fn add(cmd: super::Add, _ctx: &mut cqrs_ddd::CommandContext) -> cqrs_ddd::Result<u32> {
        ::core::result::Result::Ok(cmd.n + 1)
    }
}

#[command]
pub struct NotDecodable;

mod framework {
    pub use ::cqrs_ddd as fw;
}

#[framework::fw::command(crate = crate::framework::fw, name = "renamed.add")]
#[derive(serde::Deserialize)]
pub struct Renamed;

#[tokio::main]
async fn main() {
    #[command(name = "local")]
    #[derive(serde::Deserialize)]
    struct Local;

    let app = App::builder().build().unwrap();
    let names: ::std::vec::Vec<&str> = app.command_names().collect();
    assert_eq!(names, ["Add", "NotDecodable", "local", "renamed.add"]);
    let reply = app.dispatch_by_name("Add", r#"{"n": 1}"#, ::core::option::Option::None).await.unwrap();
    assert_eq!(reply.downcast_ref::<u32>(), ::core::option::Option::Some(&2));
    let err = app.dispatch_by_name("NotDecodable", "0", ::core::option::Option::None).await.unwrap_err();
    assert!(err.to_string().contains("does not implement `serde::Deserialize`"), "{err}");
}
