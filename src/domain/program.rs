//! Relationship-marketing programmes (frequency programmes, customer clubs, customisation programmes) and the
//! dated memberships of customers in them, with the rules that keep a customer's memberships consistent.
//!
//! A membership is the stretch `[joined, left)`: a customer is a member on the days `joined <= day < left` (on
//! every day from `joined` while it has not left). A customer's memberships of one programme never overlap, so a
//! customer is at most once a member of a programme on any day.

use super::stakeholder::Refused;
use super::values::{Label, ProgramId};
use super::vocabulary::{MarketSet, ProgramKind};
use chrono::{DateTime, NaiveDate, Utc};

/// A relationship-marketing programme as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// Store-assigned identity.
    pub id: ProgramId,
    /// The caller's own unique key.
    pub key: Label,
    /// Display name.
    pub name: Label,
    /// Frequency programme, club or customisation programme.
    pub kind: ProgramKind,
    /// The markets it addresses.
    pub markets: MarketSet,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A programme to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProgram {
    /// The caller's own unique key (unique among programmes).
    pub key: Label,
    /// Display name.
    pub name: Label,
    /// What kind of programme.
    pub kind: ProgramKind,
    /// The markets it addresses.
    pub markets: MarketSet,
}

impl NewProgram {
    /// The stored programme, with its id, created at `at` (to the millisecond, as both stores keep times).
    pub fn into_program(self, id: ProgramId, at: DateTime<Utc>) -> Program {
        use chrono::SubsecRound;
        let created_at = at.trunc_subsecs(3);
        Program { id, key: self.key, name: self.name, kind: self.kind, markets: self.markets, created_at }
    }
}

/// Most programmes one store keeps: every programme is read whole by the writes that check one, and listed whole.
pub const MAX_PROGRAMS: usize = 1_000;

/// Most memberships one customer's record keeps (each an enrolment and perhaps a leave: twice as many events);
/// the record is written whole on every change.
pub const MAX_MEMBERSHIPS: usize = 200;

/// One stretch of a customer's membership of a programme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The programme.
    pub program: ProgramId,
    /// The day the customer joined.
    pub joined: NaiveDate,
    /// The day it left (no longer a member from that day), while it has not: `None`.
    pub left: Option<NaiveDate>,
}

impl Membership {
    /// Whether the customer is a member on `day`: `joined <= day < left`.
    pub fn covers(&self, day: NaiveDate) -> bool {
        self.joined <= day && self.left.is_none_or(|left| day < left)
    }
}

/// Whether `memberships` make their customer a member of `program` on `day`. O(memberships).
pub fn member_on(memberships: &[Membership], program: ProgramId, day: NaiveDate) -> bool {
    memberships.iter().any(|membership| membership.program == program && membership.covers(day))
}

/// Refuses a day after `today`.
fn not_in_future(date: NaiveDate, today: NaiveDate, what: &str) -> Result<(), Refused> {
    if date > today {
        return Err(Refused::of(
            "date",
            format!("{date} is in the future; record {what} once it has happened (today is {today})"),
        ));
    }
    Ok(())
}

/// Enrols a customer (a customer since `since`, `None` for a prospect) in `program` on `date`: refused in the
/// future, before the customer became one, while it is a member already, overlapping an earlier membership of
/// the same programme, or past [`MAX_MEMBERSHIPS`].
pub(crate) fn enrol(
    memberships: &mut Vec<Membership>,
    program: ProgramId,
    date: NaiveDate,
    today: NaiveDate,
    since: Option<NaiveDate>,
) -> Result<(), Refused> {
    not_in_future(date, today, "an enrolment")?;
    let Some(since) = since else {
        return Err(Refused::of(
            "customerId",
            "a PROSPECT is not a customer yet; change its status to ACTIVE first, then enrol it",
        ));
    };
    if date < since {
        return Err(Refused::of(
            "date",
            format!("{date} is before the customer became one on {since}; enrol it on or after {since}"),
        ));
    }
    if memberships.len() >= MAX_MEMBERSHIPS {
        return Err(Refused::of(
            "customerId",
            format!(
                "this customer has {} programme memberships recorded, the most one customer keeps; archive it and \
                 create a new one to record more",
                memberships.len()
            ),
        ));
    }
    for earlier in memberships.iter().filter(|membership| membership.program == program) {
        match earlier.left {
            None => {
                return Err(Refused::of(
                    "programId",
                    format!(
                        "the customer is a member of programme {program} since {}; record that it left \
                         (leaveProgram) before enrolling it again",
                        earlier.joined
                    ),
                ))
            }
            Some(left) if date < left => {
                let place = if date < earlier.joined { "is before" } else { "falls in" };
                return Err(Refused::of(
                    "date",
                    format!(
                        "{date} {place} the customer's membership of programme {program} from {} to {left} \
                         (memberships are recorded in order); enrol it again on or after {left}",
                        earlier.joined
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    memberships.push(Membership { program, joined: date, left: None });
    Ok(())
}

/// Records that a customer left `program` on `date`: refused in the future, without a current membership, or on or
/// before the day the membership began (it would hold no day).
pub(crate) fn leave(
    memberships: &mut [Membership],
    program: ProgramId,
    date: NaiveDate,
    today: NaiveDate,
) -> Result<(), Refused> {
    not_in_future(date, today, "a leave")?;
    let Some(current) =
        memberships.iter_mut().find(|membership| membership.program == program && membership.left.is_none())
    else {
        return Err(Refused::of(
            "programId",
            format!("the customer is not a member of programme {program}; enrol it (enrolInProgram) first"),
        ));
    };
    if date <= current.joined {
        let next = current.joined.succ_opt().unwrap_or(current.joined);
        return Err(Refused::of(
            "date",
            format!(
                "{date} is not after the day the customer joined, {}; a membership lasts a day at least: leave on \
                 {next} or later",
                current.joined
            ),
        ));
    }
    current.left = Some(date);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    const P: ProgramId = ProgramId(1);
    const Q: ProgramId = ProgramId(2);

    #[test]
    fn memberships_of_one_programme_never_overlap() {
        let today = day("2026-06-01");
        let since = Some(day("2024-01-01"));
        let mut list = Vec::new();
        enrol(&mut list, P, day("2025-01-10"), today, since).unwrap();
        // Another programme at the same time is fine; the same one again is not.
        enrol(&mut list, Q, day("2025-01-10"), today, since).unwrap();
        assert_eq!(enrol(&mut list, P, day("2025-03-01"), today, since).unwrap_err().field, "programId");
        // Leave before joining, or on the day it joined (a membership of no day): refused.
        assert_eq!(leave(&mut list, P, day("2025-01-09"), today).unwrap_err().field, "date");
        assert_eq!(leave(&mut list, P, day("2025-01-10"), today).unwrap_err().field, "date");
        leave(&mut list, P, day("2025-02-01"), today).unwrap();
        assert_eq!(leave(&mut list, P, day("2025-03-01"), today).unwrap_err().field, "programId", "not a member");
        // Again, but not inside the stretch it had.
        let overlap = enrol(&mut list, P, day("2025-01-20"), today, since).unwrap_err();
        assert_eq!(overlap.field, "date");
        assert!(overlap.message.contains("on or after 2025-02-01"), "{}", overlap.message);
        let before = enrol(&mut list, P, day("2024-12-01"), today, since).unwrap_err();
        assert!(before.message.contains("is before the customer's membership"), "{}", before.message);
        enrol(&mut list, P, day("2025-02-01"), today, since).unwrap();
        assert!(member_on(&list, P, day("2025-01-10")));
        assert!(member_on(&list, P, day("2025-01-31")));
        assert!(member_on(&list, P, day("2025-02-01")), "left and joined again that day");
        assert!(!member_on(&list, P, day("2025-01-09")));
        assert!(!member_on(&list, ProgramId(3), day("2025-03-01")));
    }

    #[test]
    fn no_future_no_prospect_nothing_before_the_customer_and_a_bound() {
        let today = day("2026-06-01");
        let since = Some(day("2024-01-01"));
        let mut list = Vec::new();
        let future = enrol(&mut list, P, day("2026-06-02"), today, since).unwrap_err();
        assert_eq!(future.field, "date");
        assert!(future.message.contains("in the future"), "{}", future.message);
        assert_eq!(enrol(&mut list, P, day("2025-01-01"), today, None).unwrap_err().field, "customerId");
        assert_eq!(enrol(&mut list, P, day("2023-12-31"), today, since).unwrap_err().field, "date");
        enrol(&mut list, P, day("2024-01-01"), today, since).unwrap();
        assert_eq!(leave(&mut list, P, day("2026-06-02"), today).unwrap_err().field, "date");
        let mut full: Vec<Membership> = (0..MAX_MEMBERSHIPS as i64)
            .map(|n| Membership { program: ProgramId(n + 10), joined: day("2024-01-01"), left: None })
            .collect();
        let error = enrol(&mut full, P, day("2025-01-01"), today, since).unwrap_err();
        assert_eq!(error.field, "customerId");
        assert!(error.message.contains("the most one customer keeps"), "{}", error.message);
        assert_eq!(full.len(), MAX_MEMBERSHIPS);
    }
}
