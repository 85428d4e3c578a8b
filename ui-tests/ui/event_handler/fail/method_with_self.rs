use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Opened;

struct Mailer;

impl Mailer {
    #[event_handler]
    async fn on_opened(&self, _e: &Opened) -> Result<()> {
        Ok(())
    }
}

fn main() {}
