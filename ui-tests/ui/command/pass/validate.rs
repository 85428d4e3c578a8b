use cqrs_ddd::prelude::*;

#[command(validate)]
#[derive(garde::Validate)]
struct Rename {
    #[garde(length(min = 1))]
    name: String,
}

#[command_handler]
async fn rename(_cmd: Rename) -> Result<()> {
    Ok(())
}

#[query(validate, name = "find-by-name")]
#[derive(garde::Validate)]
struct Find {
    #[garde(ascii)]
    name: String,
}

#[query_handler]
async fn find(_q: Find, _ctx: &QueryContext) -> Result<u32> {
    Ok(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = App::builder().build().unwrap();
    assert!(matches!(app.send(Rename { name: String::new() }).await, Err(Error::Validation { .. })));
    app.send(Rename { name: "a".into() }).await.unwrap();
    assert!(app.query(Find { name: "é".into() }).await.is_err());
    assert_eq!(app.query(Find { name: "e".into() }).await.unwrap(), 0);
}
