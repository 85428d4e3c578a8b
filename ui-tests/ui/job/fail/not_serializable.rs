use cqrs_ddd::prelude::*;

#[job]
struct Export {
    rows: u64,
}

impl JobHandler for Export {
    type Output = u64;
    async fn run(self, _ctx: &mut JobContext) -> Result<u64> {
        Ok(self.rows)
    }
}

fn main() {}
