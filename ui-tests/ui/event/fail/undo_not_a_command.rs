use cqrs_ddd::prelude::*;
use cqrs_ddd::undo::Undo;

#[event(undo = Revoke)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Granted { role: String }

/// Not marked `#[command]`.
struct Revoke { role: String }

impl Undo for Granted {
    type Command = Revoke;
    fn undo(e: &Envelope<Self>) -> Option<Revoke> { Some(Revoke { role: e.role.clone() }) }
}

fn main() {}
