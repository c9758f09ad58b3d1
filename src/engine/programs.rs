//! Relationship-marketing programmes over the records (docs/models.md, "Programme retention"): how many customers
//! a programme has on a day, and whether its members stay, against comparable non-members.
//!
//! A programme's retention over `[from, to)` compares two groups of customers *at the start* of the period (active
//! on `from`, as [`super::exits`] defines it: a customer since before `from` who had not left, or had come back,
//! by then): its *members* (a membership covering `from`) and the *non-members in the members' segments*. Each
//! group's churn rate is its churned (left during the period) ÷ its customers at the start. The segments differ in
//! how often their customers leave, so the non-members' rate is *standardised* to the members' segment mix:
//!
//! ```text
//! expected = Σ_s m_s · (x_s / n_s) / Σ_s m_s      over the segments s with n_s > 0
//! ```
//!
//! with `m_s` members at the start in segment `s`, `n_s` non-members at the start and `x_s` of them churned: the
//! churn the members would have had, segment by segment, had they churned like non-members. The members compared
//! are those of the segments with a non-member (`Σ m_s` over the same `s`), and the difference is their churn rate
//! minus the expected one: negative when members leave less often. A customer without a segment is in the segment
//! "none".
//!
//! One pass over the customers: O(c · (e + p)) for c customers, e lifecycle events and p memberships each, and
//! O(s log s) for s segments.

use super::exits::active_stretches;
use crate::domain::program::member_on;
use crate::domain::{KindDetails, ProgramId, Stakeholder};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap};

/// Customers at the start of a period and how many of them left during it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cohort {
    /// Customers active at the start.
    pub at_start: u64,
    /// Of those, how many left during the period.
    pub churned: u64,
}

impl Cohort {
    /// Churned ÷ at the start; `None` when empty.
    pub fn churn_rate(&self) -> Option<f64> {
        (self.at_start > 0).then(|| self.churned as f64 / self.at_start as f64)
    }

    fn add(&mut self, churned: bool) {
        self.at_start += 1;
        self.churned += u64::from(churned);
    }
}

/// One segment's members and non-members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCohorts {
    /// The segment's name; `None` for customers without one.
    pub segment: Option<String>,
    /// Members at the start and how many of them left.
    pub members: Cohort,
    /// Non-members at the start and how many of them left.
    pub non_members: Cohort,
}

/// A programme's retention over one period.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramRetention {
    /// The programme.
    pub program: ProgramId,
    /// First day of the period.
    pub from: NaiveDate,
    /// The day after its last.
    pub to: NaiveDate,
    /// Every member at the start, and how many of them left.
    pub members: Cohort,
    /// The members of segments that have non-members: the ones compared.
    pub compared_members: Cohort,
    /// Non-members at the start in the members' segments, and how many of them left.
    pub non_members: Cohort,
    /// Non-members' churn weighted by the members' segment mix (see the module); `None` with nobody to compare.
    pub expected_churn_rate: Option<f64>,
    /// Each segment with members, in segment order (`None` first).
    pub segments: Vec<SegmentCohorts>,
}

impl ProgramRetention {
    /// The compared members' churn rate minus the expected one: negative when members leave less often.
    pub fn difference(&self) -> Option<f64> {
        Some(self.compared_members.churn_rate()? - self.expected_churn_rate?)
    }
}

/// Whether a customer was active on `from`, and if so whether it left in `[from, to)`.
fn at_start(row: &Stakeholder, from: NaiveDate, to: NaiveDate) -> Option<bool> {
    let KindDetails::Customer(customer) = &row.details else { return None };
    let since = customer.customer_since(row.created_at)?;
    // Active at `from`: a stretch that began before it and had not ended by then (as `exit_report` counts it).
    let (_, left) = active_stretches(customer, since)
        .into_iter()
        .find(|(began, left)| *began < from && left.is_none_or(|left| from <= left))?;
    Some(left.is_some_and(|left| left < to))
}

/// The retention of `program` over `[from, to)` among `customers` (other kinds are skipped). `from < to`.
pub fn program_retention<'a>(
    customers: impl IntoIterator<Item = &'a Stakeholder>,
    program: ProgramId,
    from: NaiveDate,
    to: NaiveDate,
) -> ProgramRetention {
    let mut members: BTreeMap<Option<&str>, Cohort> = BTreeMap::new();
    let mut non_members: BTreeMap<Option<&str>, Cohort> = BTreeMap::new();
    for row in customers {
        let KindDetails::Customer(customer) = &row.details else { continue };
        let Some(churned) = at_start(row, from, to) else { continue };
        let segment = customer.segment.as_ref().map(|segment| segment.as_str());
        let group = if member_on(&customer.memberships, program, from) { &mut members } else { &mut non_members };
        group.entry(segment).or_default().add(churned);
    }
    let mut report = ProgramRetention {
        program,
        from,
        to,
        members: Cohort::default(),
        compared_members: Cohort::default(),
        non_members: Cohort::default(),
        expected_churn_rate: None,
        segments: Vec::with_capacity(members.len()),
    };
    let mut expected = 0.0;
    for (segment, in_programme) in members {
        let others = non_members.get(&segment).copied().unwrap_or_default();
        report.members.at_start += in_programme.at_start;
        report.members.churned += in_programme.churned;
        if let Some(rate) = others.churn_rate() {
            report.compared_members.at_start += in_programme.at_start;
            report.compared_members.churned += in_programme.churned;
            report.non_members.at_start += others.at_start;
            report.non_members.churned += others.churned;
            expected += in_programme.at_start as f64 * rate;
        }
        report.segments.push(SegmentCohorts {
            segment: segment.map(str::to_owned),
            members: in_programme,
            non_members: others,
        });
    }
    report.expected_churn_rate =
        (report.compared_members.at_start > 0).then(|| expected / report.compared_members.at_start as f64);
    report
}

/// How many of `customers` are members of each programme on `day`. O(c · p).
pub fn member_counts<'a>(
    customers: impl IntoIterator<Item = &'a Stakeholder>,
    day: NaiveDate,
) -> HashMap<ProgramId, u64> {
    let mut counts = HashMap::new();
    for row in customers {
        let KindDetails::Customer(customer) = &row.details else { continue };
        let mut seen: Vec<ProgramId> = Vec::new();
        for membership in customer.memberships.iter().filter(|membership| membership.covers(day)) {
            // Memberships of one programme never overlap; a record that broke that rule still counts once.
            if !seen.contains(&membership.program) {
                seen.push(membership.program);
                *counts.entry(membership.program).or_insert(0) += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        CustomerDetails, CustomerStatus, ExitReason, Label, LifecycleEvent, MarketSet, Membership, NewStakeholder,
        Probability, StakeholderId,
    };
    use chrono::{TimeZone, Utc};

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    const CLUB: ProgramId = ProgramId(1);

    /// A customer since 2024 in `segment`, leaving on `left` if given, with memberships of the club `(joined, left)`.
    fn customer(id: i64, segment: Option<&str>, left: Option<&str>, club: &[(&str, Option<&str>)]) -> Stakeholder {
        let lifecycle: Vec<LifecycleEvent> =
            left.map(|date| LifecycleEvent::Exit { reason: ExitReason::Price, date: day(date) }).into_iter().collect();
        NewStakeholder {
            key: Label::parse(&format!("C-{id}")).unwrap(),
            name: Label::parse("c").unwrap(),
            power: Probability::parse(0.5).unwrap(),
            interest: Probability::parse(0.5).unwrap(),
            private: false,
            extra_markets: MarketSet::EMPTY,
            details: KindDetails::Customer(CustomerDetails {
                status: if left.is_some() { CustomerStatus::Churned } else { CustomerStatus::Active },
                segment: segment.map(|segment| Label::parse(segment).unwrap()),
                lifetime_value: None,
                exit: None,
                perceived_value: None,
                since: Some(day("2024-01-01")),
                lifecycle,
                retention_cost: None,
                memberships: club
                    .iter()
                    .map(|(joined, left)| Membership { program: CLUB, joined: day(joined), left: left.map(day) })
                    .collect(),
            }),
        }
        .into_stakeholder(StakeholderId(id), Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
    }

    /// A table worked by hand: the club over the first half of 2025, segments SMB and ENT.
    #[test]
    fn a_hand_made_table() {
        let member = [("2024-06-01", None)];
        let rows = [
            // SMB members: 3 at the start, 1 leaves.
            customer(1, Some("SMB"), None, &member),
            customer(2, Some("SMB"), Some("2025-03-01"), &member),
            customer(3, Some("SMB"), None, &[("2024-06-01", Some("2025-02-01"))]),
            // SMB non-members: 4 at the start, 2 leave.
            customer(4, Some("SMB"), Some("2025-02-01"), &[]),
            customer(5, Some("SMB"), Some("2025-05-01"), &[]),
            customer(6, Some("SMB"), None, &[]),
            customer(7, Some("SMB"), None, &[("2024-02-01", Some("2024-12-01"))]),
            // ENT members: 1 at the start, stays; ENT non-members: 2 at the start, 1 leaves.
            customer(8, Some("ENT"), None, &member),
            customer(9, Some("ENT"), Some("2025-04-01"), &[]),
            customer(10, Some("ENT"), None, &[]),
            // Members without segment: 1, no non-member to compare with.
            customer(11, None, Some("2025-01-15"), &member),
            // Non-members of a segment without members: not compared.
            customer(12, Some("GOV"), Some("2025-01-15"), &[]),
            // Left before the period, joined on its first day (not before: a member at the start), left after it.
            customer(13, Some("SMB"), Some("2024-12-31"), &member),
            customer(14, Some("ENT"), None, &[("2025-01-01", None)]),
            customer(15, Some("ENT"), Some("2025-07-01"), &member),
        ];
        let report = program_retention(&rows, CLUB, day("2025-01-01"), day("2025-07-01"));
        // Members at the start: 1, 2, 3, 8, 11, 14, 15; of them 2 and 11 leave in the period.
        assert_eq!(report.members, Cohort { at_start: 7, churned: 2 });
        // Compared (SMB and ENT): 1, 2, 3, 8, 14, 15.
        assert_eq!(report.compared_members, Cohort { at_start: 6, churned: 1 });
        // Non-members of SMB and ENT: 4, 5, 6, 7, 9, 10; 4, 5, 9 leave.
        assert_eq!(report.non_members, Cohort { at_start: 6, churned: 3 });
        // ENT: members 8, 14, 15, none leaving, non-members 1 in 2; SMB: members 1 in 3, non-members 2 in 4.
        let expected = (3.0 * 0.5 + 3.0 * 0.5) / 6.0;
        assert_eq!(report.expected_churn_rate, Some(expected));
        assert_eq!(report.difference(), Some(1.0 / 6.0 - expected));
        let segments: Vec<_> =
            report.segments.iter().map(|row| (row.segment.as_deref(), row.members, row.non_members)).collect();
        let cohort = |at_start, churned| Cohort { at_start, churned };
        assert_eq!(
            segments,
            vec![
                (None, cohort(1, 1), cohort(0, 0)),
                (Some("ENT"), cohort(3, 0), cohort(2, 1)),
                (Some("SMB"), cohort(3, 1), cohort(4, 2)),
            ]
        );
        // Members on a day: 1, 2, 8, 11, 14, 15 and 13 (a membership is kept when the customer leaves) in March.
        assert_eq!(member_counts(&rows, day("2025-03-01")).get(&CLUB), Some(&7));
        assert_eq!(member_counts(&rows, day("2024-03-01")).get(&CLUB), Some(&1), "7 alone");
        assert_eq!(member_counts(&rows, day("2024-01-01")).get(&CLUB), None);
    }

    #[test]
    fn nobody_to_compare_is_no_rate() {
        let rows = [customer(1, Some("SMB"), None, &[("2024-06-01", None)])];
        let report = program_retention(&rows, CLUB, day("2025-01-01"), day("2025-02-01"));
        assert_eq!(report.members, Cohort { at_start: 1, churned: 0 });
        assert_eq!((report.expected_churn_rate, report.difference()), (None, None));
        let empty = program_retention(&rows, ProgramId(2), day("2025-01-01"), day("2025-02-01"));
        assert_eq!(empty.members.churn_rate(), None);
        assert!(empty.segments.is_empty());
    }
}
