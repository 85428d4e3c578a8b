//! Generated code uses absolute paths only: shadowing prelude names breaks nothing.
#![allow(dead_code)]
use cqrs_ddd::{Dep, Envelope, EventContext, QueryContext};

struct Result;
struct Ok;
struct Option;
struct Some;
struct None;
struct Box;
struct Vec;
struct String;
struct Send;
struct Sync;
struct Clone;
struct Into;
struct From;
struct Err;

#[derive(Debug, ::core::clone::Clone, serde::Serialize, serde::Deserialize)]
#[cqrs_ddd::event(undo = Ping, redo = Ping, undo_within = "1h")]
struct Opened;

impl cqrs_ddd::undo::Undo for Opened {
    type Command = Ping;
    fn undo(_: &Envelope<Self>) -> ::core::option::Option<Ping> {
        ::core::option::Option::Some(Ping)
    }
}

impl cqrs_ddd::undo::Redo for Opened {
    type Command = Ping;
    fn redo(_: &Envelope<Self>) -> ::core::option::Option<Ping> {
        ::core::option::Option::None
    }
}

#[derive(Debug, thiserror::Error)]
#[error("e")]
struct Failed;

#[cqrs_ddd::aggregate(id = u64, events(Opened), error = Failed)]
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Account;

#[cqrs_ddd::aggregate]
impl Account {
    #[handle(create_if_missing)]
    fn open(&self, _: Open) -> ::core::result::Result<::std::vec::Vec<AccountEvent>, Failed> {
        ::core::result::Result::Ok(::std::vec![Opened.into()])
    }
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

#[cqrs_ddd::command(aggregate = Account)]
#[derive(::core::clone::Clone, serde::Serialize, serde::Deserialize)]
struct Open {
    #[id]
    id: u64,
}

#[cqrs_ddd::command(response = u8)]
struct Ping;

#[cqrs_ddd::command_handler]
async fn ping(_p: Ping, _ctx: &cqrs_ddd::CommandContext) -> cqrs_ddd::Result<u8> {
    ::core::result::Result::Ok(1)
}

#[cqrs_ddd::query]
struct Count;

#[cqrs_ddd::query_handler]
async fn count(_q: Count, _ctx: &QueryContext) -> cqrs_ddd::Result<u8> {
    ::core::result::Result::Ok(0)
}

struct Mailer;

#[cqrs_ddd::event_handler]
async fn mail(_e: &Envelope<Opened>, _ctx: &EventContext, _m: Dep<Mailer>) -> cqrs_ddd::Result<()> {
    ::core::result::Result::Ok(())
}

#[derive(Debug, ::core::clone::Clone, serde::Serialize, serde::Deserialize)]
#[cqrs_ddd::event]
struct Requested {
    id: u64,
}

#[cqrs_ddd::saga(crate = ::cqrs_ddd, associate = id)]
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Opening;

#[cqrs_ddd::saga(crate = ::cqrs_ddd)]
impl Opening {
    #[step(start, send_all = [Open], compensate = [Open], suspend, timeout = "1h")]
    fn requested(&mut self, e: &Requested) -> ((Open,), (Open,)) {
        ((Open { id: e.id },), (Open { id: e.id },))
    }
    #[step(by_correlation, complete)]
    fn opened(&mut self, _: &Envelope<Opened>) {}
}

#[cqrs_ddd::job]
#[derive(serde::Serialize, serde::Deserialize)]
struct Export;

impl cqrs_ddd::jobs::JobHandler for Export {
    type Output = u8;
    async fn run(self, _ctx: &mut cqrs_ddd::jobs::JobContext) -> cqrs_ddd::Result<u8> {
        ::core::result::Result::Ok(1)
    }
}

fn main() {}
