use cqrs_ddd::prelude::*;

struct Report;

#[job]
#[derive(Serialize, Deserialize)]
struct Export;

impl JobHandler for Export {
    type Output = Report;
    async fn run(self, _ctx: &mut JobContext) -> Result<Report> {
        Ok(Report)
    }
}

fn main() {}
