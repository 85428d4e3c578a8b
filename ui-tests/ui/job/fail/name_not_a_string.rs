use cqrs_ddd::prelude::*;

#[job(name = export)]
#[derive(Serialize, Deserialize)]
struct Export;

impl JobHandler for Export {
    type Output = ();
    async fn run(self, _ctx: &mut JobContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
