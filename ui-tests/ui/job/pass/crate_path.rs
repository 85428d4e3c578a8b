//! `crate = path` lets generated code reach the framework through a re-export, and a
//! job enqueued by a command runs to completion.
mod framework {
    pub use ::cqrs_ddd as fw;
}

use framework::fw;
use fw::jobs::{JobContext, JobHandler};

#[fw::job(crate = crate::framework::fw, name = "renamed.export")]
#[derive(serde::Serialize, serde::Deserialize)]
struct Export {
    rows: u64,
}

impl JobHandler for Export {
    type Output = u64;
    async fn run(self, ctx: &mut JobContext) -> fw::Result<u64> {
        ctx.progress(self.rows, self.rows).await?;
        Ok(self.rows * 2)
    }
}

#[fw::command(crate = crate::framework::fw, response = uuid::Uuid)]
struct Start;

#[fw::command_handler(crate = crate::framework::fw)]
async fn start(_cmd: Start, ctx: &mut fw::CommandContext) -> fw::Result<uuid::Uuid> {
    ctx.enqueue(Export { rows: 21 })
}

#[tokio::main]
async fn main() {
    assert_eq!(<Export as fw::jobs::Job>::NAME, "renamed.export");
    let app = fw::App::builder().build().unwrap();
    let id = app.send(Start).await.unwrap();
    fw::jobs::JobWorker::new(app.clone()).run_once().await.unwrap();
    let job = app.job(id).await.unwrap().unwrap();
    assert_eq!(job.result.as_deref(), Some("42"), "{job:?}");
}
