use cqrs_ddd::prelude::*;

#[event(undo = Revoke)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Granted { role: String }

#[command]
struct Revoke { role: String }

#[command_handler]
async fn revoke(_cmd: Revoke, _ctx: &mut CommandContext) -> Result<()> { Ok(()) }

fn main() {}
