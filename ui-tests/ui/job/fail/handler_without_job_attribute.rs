use cqrs_ddd::prelude::*;

#[derive(Serialize, Deserialize)]
struct Export;

impl JobHandler for Export {
    type Output = ();
    async fn run(self, _ctx: &mut JobContext) -> Result<()> {
        Ok(())
    }
}

#[command]
struct Start;

#[command_handler]
async fn start(_cmd: Start, ctx: &mut CommandContext) -> Result<()> {
    ctx.enqueue(Export)?;
    Ok(())
}

fn main() {}
