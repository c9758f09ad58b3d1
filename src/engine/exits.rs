//! Exit management over a period `[from, to)` (docs/models.md, "Exit measures"): the customers at its start, the
//! exits dated in it by reason with the lifetime value they took, churn and retention rates, win-backs, and the
//! same month by month (calendar months in UTC, the first and last cut to the period).
//!
//! A customer is active from the day it became one ([`CustomerDetails::customer_since`]) to its first exit, and
//! again from each win-back to the next exit. It is *at the start* of a period when it became a customer (or
//! came back) before `from` and had not left before `from`; it *churned* in the period when it was at the start
//! and left during it (once, however often it left). Churn rate = churned ÷ at the start; retention = 1 − churn.
//! Every exit dated in the period counts in `exits` and by reason (those of customers who joined during the
//! period too), each losing the customer's lifetime value; MARKET exits (the customer left the area) are the ones
//! the firm cannot act on. A customer whose status is CHURNED with no exit recorded left on a day nobody knows:
//! it is in no period.
//!
//! One pass over the customers: O(c · log m + e) for c customers, e lifecycle events and m months.

use crate::domain::{CustomerDetails, ExitReason, KindDetails, LifecycleEvent, MarketSet, Stakeholder, StakeholderId};
use chrono::{Datelike, Months, NaiveDate};

/// Which customers an exit analysis counts; every given criterion must hold, a list matches any of its values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CustomerCriteria {
    /// In one of these segments (by name, exactly).
    pub segments: Vec<String>,
    /// Taking part in one of these markets.
    pub markets: MarketSet,
    /// Managed by this employee (a MANAGES relationship from it).
    pub manager: Option<StakeholderId>,
    /// Leave out private customers (for a caller who sees them masked).
    pub hide_private: bool,
    /// Count archived customers too.
    pub include_archived: bool,
}

impl CustomerCriteria {
    /// Whether `row` counts, given the customers the manager manages (when the criteria name one).
    pub fn admits(&self, row: &Stakeholder, managed: Option<&std::collections::HashSet<StakeholderId>>) -> bool {
        let KindDetails::Customer(customer) = &row.details else { return false };
        (!self.hide_private || !row.private)
            && (self.include_archived || !row.is_archived())
            && (self.segments.is_empty()
                || customer.segment.as_ref().is_some_and(|segment| self.segments.iter().any(|s| s == segment.as_str())))
            && (self.markets.is_empty() || row.markets().bits() & self.markets.bits() != 0)
            && managed.is_none_or(|managed| managed.contains(&row.id))
    }
}

/// Exits, by reason and in all.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExitTally {
    /// Exits dated in the period.
    pub exits: u64,
    /// The sum of the lifetime values of the customers who left (a customer without one adds 0).
    pub lifetime_value_lost: f64,
}

impl ExitTally {
    fn add(&mut self, lifetime_value: f64) {
        self.exits += 1;
        self.lifetime_value_lost += lifetime_value;
    }
}

/// One stretch of time: how many customers it started with, how many of them left, and what left and came back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stretch {
    /// Its first day.
    pub from: NaiveDate,
    /// The day after its last.
    pub to: NaiveDate,
    /// Customers active at its start.
    pub customers_at_start: u64,
    /// Of those, how many left during it.
    pub churned: u64,
    /// Every exit dated in it.
    pub exits: ExitTally,
    /// Customers who came back during it.
    pub win_backs: u64,
}

impl Stretch {
    /// Churned ÷ customers at the start; `None` with no customer at the start.
    pub fn churn_rate(&self) -> Option<f64> {
        (self.customers_at_start > 0).then(|| self.churned as f64 / self.customers_at_start as f64)
    }
}

/// The exit measures of one period.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitReport {
    /// The whole period.
    pub period: Stretch,
    /// Exits per [`ExitReason::ALL`].
    pub by_reason: Vec<ExitTally>,
    /// Its calendar months, in order.
    pub months: Vec<Stretch>,
    /// Customers gone at the start of the period (their last change before `from` was an exit).
    pub gone_at_start: u64,
    /// Of those, how many came back during the period.
    pub won_back: u64,
}

impl ExitReport {
    /// Won back ÷ gone at the start; `None` with no customer gone at the start.
    pub fn win_back_rate(&self) -> Option<f64> {
        (self.gone_at_start > 0).then(|| self.won_back as f64 / self.gone_at_start as f64)
    }

    /// Exits the firm can act on: every reason but MARKET.
    pub fn controllable(&self) -> ExitTally {
        self.reasons(true)
    }

    /// Exits unrelated to the firm: MARKET.
    pub fn uncontrollable(&self) -> ExitTally {
        self.reasons(false)
    }

    fn reasons(&self, controllable: bool) -> ExitTally {
        let mut sum = ExitTally::default();
        for (reason, tally) in ExitReason::ALL.iter().zip(&self.by_reason) {
            if is_controllable(*reason) == controllable {
                sum.exits += tally.exits;
                sum.lifetime_value_lost += tally.lifetime_value_lost;
            }
        }
        sum
    }
}

/// Whether the firm can act on exits of this reason: all but MARKET (the customer left the area).
pub fn is_controllable(reason: ExitReason) -> bool {
    reason != ExitReason::Market
}

/// How many calendar months `[from, to)` touches (`from < to`), the length of its monthly series, without listing
/// them. O(1).
pub fn calendar_months(from: NaiveDate, to: NaiveDate) -> usize {
    let index = |day: NaiveDate| i64::from(day.year()) * 12 + i64::from(day.month0());
    // The last day in the period is the day before `to`.
    let last = to.pred_opt().unwrap_or(to);
    usize::try_from(index(last) - index(from) + 1).unwrap_or(0)
}

/// The first day of each calendar month `[from, to)` touches, `from` itself for the first, and `to` last.
/// `from < to`.
pub fn month_bounds(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    let mut bounds = vec![from];
    let mut next = from.with_day(1).unwrap_or(from);
    loop {
        next = next.checked_add_months(Months::new(1)).unwrap_or(NaiveDate::MAX);
        if next >= to {
            break;
        }
        bounds.push(next);
    }
    bounds.push(to);
    bounds
}

/// The exit measures of `customers` (other kinds are skipped) over `[from, to)`. `from < to`.
pub fn exit_report<'a>(
    customers: impl IntoIterator<Item = &'a Stakeholder>,
    from: NaiveDate,
    to: NaiveDate,
) -> ExitReport {
    let bounds = month_bounds(from, to);
    let starts = &bounds[..bounds.len() - 1];
    let stretch = |(from, to): (NaiveDate, NaiveDate)| Stretch { from, to, ..Stretch::default() };
    let mut period = stretch((from, to));
    let mut months: Vec<Stretch> = bounds.windows(2).map(|pair| stretch((pair[0], pair[1]))).collect();
    let mut by_reason = vec![ExitTally::default(); ExitReason::ALL.len()];
    let (mut gone_at_start, mut won_back) = (0, 0);
    // Customers at the start of each month, as differences: +1 where a stretch of activity covers a month's start.
    let mut at_start = vec![0i64; months.len() + 1];
    // The month (index into `months`) of a day inside the period.
    let month_of = |day: NaiveDate| starts.partition_point(|start| *start <= day) - 1;
    for row in customers {
        let KindDetails::Customer(customer) = &row.details else { continue };
        let Some(since) = customer.customer_since(row.created_at) else { continue };
        let lifetime_value = customer.lifetime_value.map_or(0.0, |value| value.get());
        for (began, left) in active_stretches(customer, since) {
            // The starts `s` this stretch is active at: began < s <= left.
            let first = starts.partition_point(|start| *start <= began);
            let last = left.map_or(starts.len(), |left| starts.partition_point(|start| *start <= left));
            if first < last {
                at_start[first] += 1;
                at_start[last] -= 1;
            }
            // Active at the start of a month and leaving within it: churned that month (and in the period when
            // active at its start).
            if let Some(left) = left.filter(|left| (from..to).contains(left)) {
                let month = month_of(left);
                if began < months[month].from {
                    months[month].churned += 1;
                }
                if began < from {
                    period.churned += 1;
                }
            }
        }
        let events = customer.lifecycle();
        // Gone at the start: its last change before `from` was an exit; won back: it came back during the period.
        if matches!(events.iter().rev().find(|event| event.date() < from), Some(LifecycleEvent::Exit { .. })) {
            gone_at_start += 1;
            let back =
                |event: &LifecycleEvent| matches!(event, LifecycleEvent::WinBack { date } if (from..to).contains(date));
            won_back += u64::from(events.iter().any(back));
        }
        for event in events.iter() {
            let day = event.date();
            if !(from..to).contains(&day) {
                continue;
            }
            let month = &mut months[month_of(day)];
            match event {
                LifecycleEvent::Exit { reason, .. } => {
                    by_reason[*reason as usize].add(lifetime_value);
                    month.exits.add(lifetime_value);
                    period.exits.add(lifetime_value);
                }
                LifecycleEvent::WinBack { .. } => {
                    month.win_backs += 1;
                    period.win_backs += 1;
                }
            }
        }
    }
    let mut running = 0i64;
    for (month, change) in months.iter_mut().zip(&at_start) {
        running += change;
        month.customers_at_start = running as u64;
    }
    period.customers_at_start = months.first().map_or(0, |month| month.customers_at_start);
    ExitReport { period, by_reason, months, gone_at_start, won_back }
}

/// The stretches a customer was active, as (the day it began, the day it left if it did): from `since` to the
/// first exit, then from each win-back to the next exit. A CHURNED customer with no exit recorded has none.
pub(crate) fn active_stretches(customer: &CustomerDetails, since: NaiveDate) -> Vec<(NaiveDate, Option<NaiveDate>)> {
    let events = customer.lifecycle();
    if events.is_empty() && customer.status == crate::domain::CustomerStatus::Churned {
        return Vec::new();
    }
    let mut stretches = Vec::new();
    let mut began = Some(since);
    for event in events.iter() {
        match (*event, began) {
            (LifecycleEvent::Exit { date, .. }, Some(start)) => {
                stretches.push((start, Some(date.max(start))));
                began = None;
            }
            (LifecycleEvent::WinBack { date }, None) => began = Some(date),
            // An exit while gone or a win-back while active (not written by the store's commands): nothing
            // changes.
            _ => {}
        }
    }
    if let Some(start) = began {
        stretches.push((start, None));
    }
    stretches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Amount, CustomerExit, CustomerStatus, Label, MarketSet, NewStakeholder, Probability, StakeholderId,
    };
    use chrono::{TimeZone, Utc};

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    /// A customer since `since` worth `value`, with these exits and win-backs.
    fn customer(id: i64, since: &str, value: f64, events: &[LifecycleEvent]) -> Stakeholder {
        let exit = events.iter().rev().find_map(|event| match event {
            LifecycleEvent::Exit { reason, date } => Some(CustomerExit { reason: *reason, date: *date }),
            _ => None,
        });
        let status = match events.last() {
            Some(LifecycleEvent::Exit { .. }) => CustomerStatus::Churned,
            Some(LifecycleEvent::WinBack { .. }) => CustomerStatus::WonBack,
            None => CustomerStatus::Active,
        };
        NewStakeholder {
            key: Label::parse(&format!("C-{id}")).unwrap(),
            name: Label::parse("c").unwrap(),
            power: Probability::parse(0.5).unwrap(),
            interest: Probability::parse(0.5).unwrap(),
            private: false,
            extra_markets: MarketSet::EMPTY,
            details: KindDetails::Customer(CustomerDetails {
                status,
                segment: None,
                lifetime_value: Some(Amount::parse(value).unwrap()),
                exit,
                perceived_value: None,
                since: Some(day(since)),
                lifecycle: events.to_vec(),
                memberships: Vec::new(),
                retention_cost: None,
            }),
        }
        .into_stakeholder(StakeholderId(id), Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap())
    }

    fn exit(reason: ExitReason, date: &str) -> LifecycleEvent {
        LifecycleEvent::Exit { reason, date: day(date) }
    }

    fn back(date: &str) -> LifecycleEvent {
        LifecycleEvent::WinBack { date: day(date) }
    }

    #[test]
    fn months_are_calendar_months_cut_to_the_period() {
        assert_eq!(
            month_bounds(day("2025-01-15"), day("2025-03-02")),
            vec![day("2025-01-15"), day("2025-02-01"), day("2025-03-01"), day("2025-03-02")]
        );
        assert_eq!(month_bounds(day("2025-01-01"), day("2025-02-01")), vec![day("2025-01-01"), day("2025-02-01")]);
        assert_eq!(month_bounds(day("2024-12-31"), day("2025-01-01")), vec![day("2024-12-31"), day("2025-01-01")]);
        for (from, to) in [
            ("2025-01-15", "2025-03-02"),
            ("2025-01-01", "2025-02-01"),
            ("2024-12-31", "2025-01-01"),
            ("2024-06-01", "2026-06-01"),
            ("2025-01-01", "2025-01-02"),
            ("2020-02-29", "2024-03-01"),
        ] {
            assert_eq!(calendar_months(day(from), day(to)), month_bounds(day(from), day(to)).len() - 1, "{from} {to}");
        }
        // Half a million years of months, counted without listing them.
        assert!(calendar_months(NaiveDate::MIN, NaiveDate::MAX) > 6_000_000);
    }

    /// A table worked by hand: period January to March 2025.
    #[test]
    fn a_hand_made_table() {
        use ExitReason::*;
        let rows = [
            // At the start, stays.
            customer(1, "2024-01-01", 100.0, &[]),
            // At the start, leaves in February over price.
            customer(2, "2024-06-01", 200.0, &[exit(Price, "2025-02-10")]),
            // Joins in January, leaves in March (not at the start of the period: an exit, not churn of it).
            customer(3, "2025-01-20", 50.0, &[exit(Market, "2025-03-05")]),
            // Left before the period, won back in February, leaves again in March.
            customer(
                4,
                "2023-01-01",
                400.0,
                &[exit(Service, "2024-11-01"), back("2025-02-14"), exit(Service, "2025-03-30")],
            ),
            // Leaves on the first day of the period: was at its start, churned in January.
            customer(5, "2024-01-01", 10.0, &[exit(Price, "2025-01-01")]),
            // Leaves the day the period ends: outside it.
            customer(6, "2024-01-01", 20.0, &[exit(Product, "2025-04-01")]),
            // Joins the first day: not at the start.
            customer(7, "2025-01-01", 30.0, &[]),
            // At the start, leaves and comes back in January, leaves in March: churned once, two exits.
            customer(
                8,
                "2024-01-01",
                80.0,
                &[exit(Technology, "2025-01-05"), back("2025-01-25"), exit(Price, "2025-03-01")],
            ),
        ];
        let report = exit_report(&rows, day("2025-01-01"), day("2025-04-01"));
        let period = report.period;
        // At the start: 1, 2, 5, 6, 8.
        assert_eq!(period.customers_at_start, 5);
        // Churned of those: 2, 5, 8.
        assert_eq!(period.churned, 3);
        assert_eq!(period.churn_rate(), Some(3.0 / 5.0));
        // Exits: 2 (Feb), 3 (Mar), 4 (Mar), 5 (Jan), 8 (Jan, Mar).
        assert_eq!(
            period.exits,
            ExitTally { exits: 6, lifetime_value_lost: 200.0 + 50.0 + 400.0 + 10.0 + 80.0 + 80.0 }
        );
        assert_eq!(period.win_backs, 2);
        // Gone at the start: 4 (left in November); it came back in February. 8 left during the period.
        assert_eq!((report.gone_at_start, report.won_back, report.win_back_rate()), (1, 1, Some(1.0)));
        let tally = |exits, lost| ExitTally { exits, lifetime_value_lost: lost };
        assert_eq!(
            report.by_reason,
            // PRICE, PRODUCT, SERVICE, MARKET, TECHNOLOGY, POLITICAL.
            vec![tally(3, 290.0), tally(0, 0.0), tally(1, 400.0), tally(1, 50.0), tally(1, 80.0), tally(0, 0.0)]
        );
        assert_eq!(report.controllable(), tally(5, 770.0));
        assert_eq!(report.uncontrollable(), tally(1, 50.0));
        let months: Vec<_> = report
            .months
            .iter()
            .map(|month| (month.from, month.customers_at_start, month.churned, month.exits.exits, month.win_backs))
            .collect();
        assert_eq!(
            months,
            vec![
                // January: 1, 2, 5, 6, 8 at the start; 5 and 8 leave; 8 comes back.
                (day("2025-01-01"), 5, 2, 2, 1),
                // February: 1, 2, 3, 6, 7, 8 at the start; 2 leaves; 4 comes back.
                (day("2025-02-01"), 6, 1, 1, 1),
                // March: 1, 3, 4, 6, 7, 8 at the start; 3, 4, 8 leave.
                (day("2025-03-01"), 6, 3, 3, 0),
            ]
        );
        assert_eq!(report.months[1].exits.lifetime_value_lost, 200.0);
    }

    #[test]
    fn a_churned_customer_without_an_exit_day_and_a_prospect_count_nowhere() {
        let mut unknown = customer(1, "2024-01-01", 5.0, &[]);
        let mut prospect = customer(2, "2024-01-01", 5.0, &[]);
        if let KindDetails::Customer(details) = &mut unknown.details {
            details.status = CustomerStatus::Churned;
        }
        if let KindDetails::Customer(details) = &mut prospect.details {
            details.status = CustomerStatus::Prospect;
            details.since = None;
        }
        let report = exit_report(&[unknown, prospect], day("2025-01-01"), day("2025-02-01"));
        assert_eq!(report.period.customers_at_start, 0);
        assert_eq!(report.period.churn_rate(), None);
    }

    #[test]
    fn a_record_from_before_the_lifecycle_list_reads_its_one_exit() {
        let mut old = customer(1, "2024-01-01", 7.0, &[exit(ExitReason::Political, "2025-01-10")]);
        if let KindDetails::Customer(details) = &mut old.details {
            details.lifecycle.clear();
        }
        let report = exit_report(&[old], day("2025-01-01"), day("2025-02-01"));
        assert_eq!((report.period.customers_at_start, report.period.churned), (1, 1));
        assert_eq!(report.by_reason[ExitReason::Political as usize].exits, 1);
    }
}
