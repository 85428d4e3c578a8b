//! `crate = path` lets generated code reach the framework through a re-export.
mod framework {
    pub use ::cqrs_ddd as fw;
}

use framework::fw;

#[fw::event(crate = crate::framework::fw, name = "renamed.opened")]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Opened;

#[fw::query(crate = crate::framework::fw)]
struct Count;

#[fw::query_handler(crate = crate::framework::fw)]
async fn count(_q: Count) -> fw::Result<u32> {
    Ok(3)
}

#[tokio::main]
async fn main() {
    assert_eq!(<Opened as fw::Event>::NAME, "renamed.opened");
    let app = fw::App::builder().build().unwrap();
    assert_eq!(app.query(Count).await.unwrap(), 3);
}
