use cqrs_ddd::prelude::*;
use cqrs_ddd::undo::Undo;

#[event(undo = Revoke)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Granted { role: String }

#[command]
struct Revoke;
#[command_handler]
async fn revoke(_cmd: Revoke, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

#[command]
struct Suspend;
#[command_handler]
async fn suspend(_cmd: Suspend, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

impl Undo for Granted {
    type Command = Suspend;
    fn undo(_e: &Envelope<Self>) -> Option<Suspend> { Some(Suspend) }
}

fn main() {}
