//! `#[event(undo = .., redo = .., undo_within = "..")]` with its `Undo` and `Redo` impls.
use cqrs_ddd::prelude::*;
use cqrs_ddd::undo::{Redo, Undo};

#[event(undo = Revoke, redo = Grant, undo_within = "30m")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Granted { role: String }

#[command]
struct Revoke { role: String }
#[command_handler]
async fn revoke(_cmd: Revoke, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

#[command]
struct Grant { role: String }
#[command_handler]
async fn grant(_cmd: Grant, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

impl Undo for Granted {
    type Command = Revoke;
    fn undo(e: &Envelope<Self>) -> Option<Revoke> { Some(Revoke { role: e.role.clone() }) }
}

impl Redo for Granted {
    type Command = Grant;
    fn redo(e: &Envelope<Self>) -> Option<Grant> { Some(Grant { role: e.role.clone() }) }
}

fn main() {
    App::builder().build().unwrap();
}
