use cqrs_ddd::prelude::*;

#[event]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BookOut { loan: String }

#[command]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SendReminder { loan: String }

#[command_handler]
async fn send_reminder(_c: SendReminder) -> Result<()> { Ok(()) }

#[saga(associate = loan)]
#[derive(Debug, Default, Serialize, Deserialize)]
struct LoanWatch { loan: String }

#[saga]
impl LoanWatch {
    #[step(start, arm = remind)]
    fn out(&mut self, e: &BookOut) { self.loan.clone_from(&e.loan); }
    #[deadline(after = "14 days", send = SendReminder)]
    fn remind(&mut self) -> SendReminder { SendReminder { loan: self.loan.clone() } }
}

fn main() {}
