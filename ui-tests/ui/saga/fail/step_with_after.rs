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
    #[step(start, after = "14d", send = SendReminder)]
    fn out(&mut self, e: &BookOut) -> SendReminder { SendReminder { loan: e.loan.clone() } }
}

fn main() {}
