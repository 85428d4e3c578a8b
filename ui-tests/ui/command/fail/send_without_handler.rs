use cqrs_ddd::prelude::*;

#[command]
struct Ship {
    parcel: String,
}

async fn run(app: Mediator) -> Result<()> {
    app.send(Ship { parcel: "p-1".into() }).await
}

fn main() {
    let _ = run;
}
