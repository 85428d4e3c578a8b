use cqrs_ddd::prelude::*;
use cqrs_ddd::undo::Undo;

#[event(undo = Revoke, undo_within = "an hour")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Granted;

#[command]
struct Revoke;
#[command_handler]
async fn revoke(_cmd: Revoke, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

impl Undo for Granted {
    type Command = Revoke;
    fn undo(_e: &Envelope<Self>) -> Option<Revoke> { Some(Revoke) }
}

fn main() {}
