use std::time::Duration;

use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lent;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReminderDue;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(id = String, events(Lent), error = Never)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Loan;

#[command(aggregate = Loan)]
struct Lend {
    #[id]
    id: String,
}

#[aggregate]
impl Loan {
    #[handle(create)]
    fn lend(&self, _: &Lend, deadlines: &mut Deadlines<Self>) -> Result<Vec<LoanEvent>, Never> {
        deadlines.schedule(Duration::from_secs(60), ReminderDue);
        Ok(vec![Lent.into()])
    }
    #[deadline]
    fn remind(&mut self, _due: &ReminderDue) -> Result<Vec<LoanEvent>, Never> {
        Ok(vec![])
    }
    #[apply]
    fn lent(&mut self, _: &Lent) {}
}

fn main() {
    let _ = Duration::ZERO;
}
