//! A library loan: a reminder at day 14, the book declared lost at day 30, both
//! cancelled when the book comes back. Deadlines of the aggregate, kept with its events.

use std::time::Duration;

use cqrs_ddd::prelude::*;

/// A day.
#[allow(clippy::duration_suboptimal_units)] // `from_hours` is `const` only after the MSRV
pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// A book was lent to a member.
#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BookLent {
    /// The book's title.
    pub(crate) title: String,
    /// Who borrowed it.
    pub(crate) member: String,
}

/// The book came back.
#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BookReturned;

/// The member was reminded to bring the book back.
#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MemberReminded {
    /// Who was reminded.
    pub(crate) member: String,
}

/// The book did not come back in time.
#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BookLost;

/// What the reminder deadline carries when it fires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReminderDue {
    /// Whom to remind.
    pub(crate) member: String,
}

/// The loss deadline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LossDue;

/// What a loan refuses.
#[derive(Debug, PartialEq, Serialize, thiserror::Error)]
pub(crate) enum LoanError {
    /// Returned, or lost, already.
    #[error("the book is not out")]
    NotOut,
}

/// One loan of one book.
#[aggregate(id = String, events(BookLent, BookReturned, MemberReminded, BookLost), error = LoanError)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Loan {
    member: String,
    out: bool,
    lost: bool,
}

impl Loan {
    /// Whether the book was declared lost.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost
    }
}

#[aggregate]
impl Loan {
    /// Lends the book: remind at day 14, declare it lost at day 30.
    #[handle(create)]
    fn lend(&self, cmd: &LendBook, deadlines: &mut Deadlines<Self>) -> Result<Vec<LoanEvent>, LoanError> {
        deadlines.schedule(14 * DAY, ReminderDue { member: cmd.member.clone() });
        deadlines.schedule(30 * DAY, LossDue);
        Ok(vec![BookLent { title: cmd.title.clone(), member: cmd.member.clone() }.into()])
    }

    /// The book is back: neither deadline fires.
    #[handle]
    fn give_back(&self, _cmd: &ReturnBook, deadlines: &mut Deadlines<Self>) -> Result<Vec<LoanEvent>, LoanError> {
        if !self.out {
            return Err(LoanError::NotOut);
        }
        deadlines.cancel::<ReminderDue>();
        deadlines.cancel::<LossDue>();
        Ok(vec![BookReturned.into()])
    }

    /// Day 14.
    #[deadline]
    fn remind(&self, due: &ReminderDue) -> Result<Vec<LoanEvent>, LoanError> {
        Ok(vec![MemberReminded { member: due.member.clone() }.into()])
    }

    /// Day 30.
    #[deadline]
    fn declare_lost(&self, _due: &LossDue) -> Result<Vec<LoanEvent>, LoanError> {
        if !self.out {
            return Err(LoanError::NotOut);
        }
        Ok(vec![BookLost.into()])
    }

    #[apply]
    fn lent(&mut self, e: &BookLent) {
        self.member.clone_from(&e.member);
        self.out = true;
    }
    #[apply]
    fn returned(&mut self, _: &BookReturned) {
        self.out = false;
    }
    #[apply]
    fn reminded(&mut self, _: &MemberReminded) {}
    #[apply]
    fn lost(&mut self, _: &BookLost) {
        self.out = false;
        self.lost = true;
    }
}

/// Lends a book.
#[command(aggregate = Loan)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LendBook {
    /// The loan.
    #[id]
    pub(crate) loan: String,
    /// The book's title.
    pub(crate) title: String,
    /// Who borrows it.
    pub(crate) member: String,
}

/// Brings a book back.
#[command(aggregate = Loan)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReturnBook {
    /// The loan.
    #[id]
    pub(crate) loan: String,
}

#[cfg(test)]
mod tests {
    use cqrs_ddd::testing::AggregateFixture;

    use super::*;

    fn lent() -> AggregateFixture<Loan> {
        let mut loan = AggregateFixture::<Loan>::new();
        loan.when(LendBook { loan: "l-1".into(), title: "Dune".into(), member: "ada".into() });
        loan
    }

    #[test]
    fn a_loan_schedules_a_reminder_and_a_loss() {
        let loan = lent();
        let start = loan.now();
        assert_eq!(loan.then_deadline_scheduled("remind"), start + 14 * DAY);
        assert_eq!(loan.then_deadline_scheduled("declare_lost"), start + 30 * DAY);
    }

    #[test]
    fn a_kept_book_is_reminded_at_day_14_and_lost_at_day_30() {
        let mut loan = lent();
        loan.advance(14 * DAY).then_events(&["MemberReminded"]);
        loan.advance(16 * DAY).then_events(&["BookLost"]);
        assert!(loan.state().is_lost());
    }

    #[test]
    fn a_returned_book_is_neither_reminded_nor_lost() {
        let mut loan = lent();
        loan.advance(3 * DAY).then_nothing();
        loan.when(ReturnBook { loan: "l-1".into() })
            .then_deadline_cancelled("remind")
            .then_deadline_cancelled("declare_lost");
        loan.advance(30 * DAY).then_nothing();
        assert!(!loan.state().is_lost());
    }
}
