use cqrs_ddd::prelude::*;

#[query]
struct Count;

async fn run(app: Mediator) -> Result<()> {
    app.query(Count).await
}

fn main() {
    let _ = run;
}
