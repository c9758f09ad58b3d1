//! Stakeholders: the common fields, the fields of each kind, and how an update applies.

use super::program::{self, Membership};
use super::values::{Amount, InvalidValue, Label, Probability, ProgramId, StakeholderId};
use super::vocabulary::{CustomerStatus, ExitReason, Market, MarketSet, Mendelow, StakeholderKind};
use chrono::{DateTime, NaiveDate, Utc};

/// A stakeholder as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Stakeholder {
    /// Store-assigned identity.
    pub id: StakeholderId,
    /// The caller's own unique key (a CRM id, say).
    pub key: Label,
    /// Display name.
    pub name: Label,
    /// Power over the firm, in [0, 1].
    pub power: Probability,
    /// Interest in the firm, in [0, 1].
    pub interest: Probability,
    /// Visible in full only to editors and admins.
    pub private: bool,
    /// Markets taken part in beyond the primary one (a referring customer is also in REFERRAL).
    pub extra_markets: MarketSet,
    /// The fields of its kind.
    pub details: KindDetails,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was archived; archived stakeholders are kept, never deleted.
    pub archived_at: Option<DateTime<Utc>>,
}

/// The fields that only one kind of stakeholder has.
#[derive(Debug, Clone, PartialEq)]
pub enum KindDetails {
    /// A customer.
    Customer(CustomerDetails),
    /// A supplier.
    Supplier {
        /// What it supplies.
        category: Option<Label>,
    },
    /// A distributor.
    Distributor {
        /// Its channel: wholesale, retail, agent, online.
        channel: Option<Label>,
        /// Where it operates.
        region: Option<Label>,
    },
    /// An employee or candidate.
    Employee {
        /// Job title.
        role: Option<Label>,
        /// Department.
        department: Option<Label>,
        /// A candidate, not yet employed (recruitment market).
        candidate: bool,
    },
    /// A media outlet.
    Media {
        /// Name of the outlet.
        outlet: Option<Label>,
        /// Audience size.
        reach: Option<u64>,
    },
    /// A government body.
    Government {
        /// Agency.
        agency: Option<Label>,
        /// Jurisdiction.
        jurisdiction: Option<Label>,
    },
}

/// The fields of a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerDetails {
    /// Lifecycle status.
    pub status: CustomerStatus,
    /// Segment name.
    pub segment: Option<Label>,
    /// Lifetime value; the profit lost when the customer exits.
    pub lifetime_value: Option<Amount>,
    /// Why and when the customer left, once it has.
    pub exit: Option<CustomerExit>,
    /// What the customer perceives it gets and gives, when recorded (absent from records written before).
    pub perceived_value: Option<PerceivedValue>,
    /// The day it became a customer, when recorded; otherwise the day its record was created (see
    /// [`CustomerDetails::customer_since`]).
    pub since: Option<NaiveDate>,
    /// Its exits and win-backs, oldest first. Records written before this list was kept have none, and their one
    /// exit in `exit` ([`CustomerDetails::lifecycle`] reads both).
    pub lifecycle: Vec<LifecycleEvent>,
    /// What it would cost to keep this customer, when recorded (otherwise its segment's configured cost).
    pub retention_cost: Option<Amount>,
    /// Its memberships of relationship-marketing programmes, in the order they began (absent from records
    /// written before programmes were kept).
    pub memberships: Vec<Membership>,
}

/// One dated change of a customer's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// The customer left.
    Exit {
        /// Why.
        reason: ExitReason,
        /// The day it left.
        date: NaiveDate,
    },
    /// The customer, having left, came back.
    WinBack {
        /// The day it came back.
        date: NaiveDate,
    },
}

impl LifecycleEvent {
    /// How files and messages name an exit.
    pub const EXIT: &'static str = "EXIT";
    /// How files and messages name a win-back.
    pub const WIN_BACK: &'static str = "WIN_BACK";

    /// Its name in files and messages: [`Self::EXIT`] or [`Self::WIN_BACK`].
    pub fn name(&self) -> &'static str {
        match self {
            LifecycleEvent::Exit { .. } => Self::EXIT,
            LifecycleEvent::WinBack { .. } => Self::WIN_BACK,
        }
    }

    /// The day it happened.
    pub fn date(&self) -> NaiveDate {
        match self {
            LifecycleEvent::Exit { date, .. } | LifecycleEvent::WinBack { date } => *date,
        }
    }
}

/// Most exits and win-backs one customer's lifecycle keeps (its record is written whole on every change).
pub const MAX_LIFECYCLE: usize = 1_000;

/// A change refused, with the input field it is about (`id` when it is about the record as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// The input field at fault: `id`, `date`, `status`, `customerSince`.
    pub field: &'static str,
    /// What was wrong and how to fix it.
    pub message: String,
}

impl Refused {
    pub(crate) fn of(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

impl From<InvalidValue> for Refused {
    fn from(error: InvalidValue) -> Self {
        Self { field: "id", message: error.0 }
    }
}

impl CustomerDetails {
    /// Refuses to grow a lifecycle of `len` events past [`MAX_LIFECYCLE`].
    fn room_for_one_more(len: usize) -> Result<(), Refused> {
        if len >= MAX_LIFECYCLE {
            return Err(Refused::of(
                "id",
                format!(
                    "this customer has {len} exits and win-backs recorded, the most one customer keeps; archive it \
                     and create a new one to record more"
                ),
            ));
        }
        Ok(())
    }

    /// Its exits and win-backs, oldest first: the kept list, or for a record written before the list was kept,
    /// its one exit.
    pub fn lifecycle(&self) -> std::borrow::Cow<'_, [LifecycleEvent]> {
        match (&self.lifecycle[..], self.exit) {
            ([], Some(CustomerExit { reason, date })) => vec![LifecycleEvent::Exit { reason, date }].into(),
            (events, _) => events.into(),
        }
    }

    /// The day it became a customer: `since` when recorded, otherwise the day of `created_at`; `None` for a
    /// prospect (which never was a customer: a customer does not become a prospect again).
    pub fn customer_since(&self, created_at: DateTime<Utc>) -> Option<NaiveDate> {
        match (self.since, self.status) {
            (_, CustomerStatus::Prospect) => None,
            (Some(since), _) => Some(since),
            (None, _) => Some(created_at.date_naive()),
        }
    }

    /// Checks the customer fields of a record about to be created on day `today`: its lifecycle comes from exits
    /// and win-backs recorded afterwards, never with the record; a new customer is not CHURNED (create it, then
    /// record its exit with the reason and date); a prospect has no customer-since day; none is in the future.
    pub fn check_new(&self, today: NaiveDate) -> Result<(), Refused> {
        if !self.memberships.is_empty() {
            return Err(Refused::of(
                "id",
                "a new customer is in no programme yet; create it, then enrol it with enrolInProgram",
            ));
        }
        if !self.lifecycle.is_empty() || self.exit.is_some() {
            return Err(Refused::of(
                "id",
                "a new customer has no exits or win-backs yet; create it, then record them with recordCustomerExit \
                 and recordCustomerWinBack",
            ));
        }
        if self.status == CustomerStatus::Churned {
            return Err(Refused::of(
                "status",
                "a customer is created ACTIVE, AT_RISK, WON_BACK or PROSPECT; to record one that has left, create it \
                 with its customerSince and then record its exit (recordCustomerExit), which says why and when",
            ));
        }
        if let Some(since) = self.since {
            if self.status == CustomerStatus::Prospect {
                return Err(Refused::of(
                    "customerSince",
                    "a PROSPECT is not a customer yet and has no customerSince; give one when it becomes a customer",
                ));
            }
            if since > today {
                return Err(Refused::of(
                    "customerSince",
                    format!("{since} is in the future; give the day it became a customer (today is {today})"),
                ));
            }
        }
        Ok(())
    }

    /// Records the day it became a customer: not for a prospect, not after `today`, nor after its first exit.
    fn set_since(&mut self, since: NaiveDate, today: NaiveDate) -> Result<(), Refused> {
        if self.status == CustomerStatus::Prospect {
            return Err(Refused::of(
                "customerSince",
                "a PROSPECT is not a customer yet and has no customerSince; give one with the status it becomes a \
                 customer in",
            ));
        }
        if since > today {
            return Err(Refused::of(
                "customerSince",
                format!("{since} is in the future; give the day it became a customer (today is {today})"),
            ));
        }
        if let Some(first) = self.lifecycle().first().map(LifecycleEvent::date).filter(|first| since > *first) {
            return Err(Refused::of(
                "customerSince",
                format!("{since} is after the customer's first exit on {first}; give a day on or before it"),
            ));
        }
        self.since = Some(since);
        Ok(())
    }

    /// Records an exit: status CHURNED, the exit appended to the lifecycle. An exit recorded for a customer that
    /// has already left corrects that exit (its reason and date) rather than adding one. Not for a prospect, and
    /// not before the day it became a customer (`created_at`'s day unless recorded) or last came back.
    fn exit(&mut self, exit: CustomerExit, created_at: DateTime<Utc>) -> Result<(), Refused> {
        let Some(since) = self.customer_since(created_at) else {
            return Err(Refused::of(
                "id",
                "this customer is a PROSPECT and never was a customer, so it cannot exit; archive a lost prospect \
                 (archiveStakeholder)",
            ));
        };
        let mut events = self.lifecycle().into_owned();
        if self.status == CustomerStatus::Churned && matches!(events.last(), Some(LifecycleEvent::Exit { .. })) {
            events.pop();
        }
        let earliest = events.last().map(LifecycleEvent::date).unwrap_or(since).max(since);
        if exit.date < earliest {
            return Err(Refused::of(
                "date",
                format!(
                    "the exit date {} is before {earliest}, when this customer became one or last came back; give a \
                     date on or after {earliest} (or record when it became a customer: customerSince)",
                    exit.date
                ),
            ));
        }
        Self::room_for_one_more(events.len())?;
        events.push(LifecycleEvent::Exit { reason: exit.reason, date: exit.date });
        self.lifecycle = events;
        self.exit = Some(exit);
        self.status = CustomerStatus::Churned;
        Ok(())
    }

    /// Records that a customer who left came back on `date`: status `status` (WON_BACK for the dedicated
    /// mutation), the win-back appended to the lifecycle. Only a CHURNED customer with its exit recorded, on or
    /// after that exit.
    fn win_back(&mut self, date: NaiveDate, status: CustomerStatus) -> Result<(), Refused> {
        if self.status != CustomerStatus::Churned {
            return Err(Refused::of(
                "id",
                format!("this customer is {}, not CHURNED; only a customer who left can be won back", self.status),
            ));
        }
        if status == CustomerStatus::Prospect {
            return Err(Refused::of(
                "status",
                "a customer who left comes back as ACTIVE, AT_RISK or WON_BACK, not as a PROSPECT",
            ));
        }
        let Some(left) = self.lifecycle().iter().rev().find_map(|event| match event {
            LifecycleEvent::Exit { date, .. } => Some(*date),
            LifecycleEvent::WinBack { .. } => None,
        }) else {
            return Err(Refused::of(
                "id",
                "this customer has no exit recorded, so there is nothing to come back from; record its exit first \
                 (recordCustomerExit, with the reason and date)",
            ));
        };
        if date < left {
            return Err(Refused::of(
                "date",
                format!(
                    "the win-back date {date} is before the customer's exit on {left}; give a date on or after {left}"
                ),
            ));
        }
        let mut events = self.lifecycle().into_owned();
        Self::room_for_one_more(events.len())?;
        events.push(LifecycleEvent::WinBack { date });
        self.lifecycle = events;
        self.status = status;
        Ok(())
    }

    /// Applies a status change made by an update on day `today`: leaving is recorded by an exit (which says why
    /// and when), coming back from CHURNED is a win-back on `today`, a prospect's first other status makes it a
    /// customer since `today` unless `since` says otherwise, and a customer does not become a prospect again.
    fn change_status(&mut self, status: CustomerStatus, today: NaiveDate) -> Result<(), Refused> {
        match (self.status, status) {
            (old, new) if old == new => Ok(()),
            (_, CustomerStatus::Churned) => Err(Refused::of(
                "status",
                "a customer leaves through recordCustomerExit, which records why and when; use it instead of \
                 setting status CHURNED",
            )),
            (CustomerStatus::Churned, new) => self.win_back(today, new),
            (_, CustomerStatus::Prospect) => Err(Refused::of(
                "status",
                "a customer does not become a PROSPECT again; keep its status, or record its exit \
                 (recordCustomerExit)",
            )),
            (CustomerStatus::Prospect, new) => {
                self.since.get_or_insert(today);
                self.status = new;
                Ok(())
            }
            (_, new) => {
                self.status = new;
                Ok(())
            }
        }
    }
}

/// Customer perceived value (docs/models.md, after Kotler): what a customer gets (the core product's value and the
/// added services' value) for what it gives (the price and the costs of the relationship: time, effort, switching),
/// in one currency. `CPV = (core value + services value) / (price + relationship costs)`: above 1 the customer
/// gets more than it gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerceivedValue {
    /// The value of the core product or service.
    pub core_value: Amount,
    /// The value of the added services.
    pub services_value: Amount,
    /// The price paid.
    pub price: Amount,
    /// The relationship's costs to the customer.
    pub relationship_costs: Amount,
}

impl PerceivedValue {
    /// The four inputs; refused when price and relationship costs are both 0 (CPV divides by their sum).
    pub fn new(
        core_value: Amount,
        services_value: Amount,
        price: Amount,
        relationship_costs: Amount,
    ) -> Result<Self, InvalidValue> {
        if price.get() + relationship_costs.get() <= 0.0 {
            return Err(InvalidValue(
                "price and relationshipCosts are both 0, and CPV divides by their sum; give what the customer pays \
                 or spends on the relationship"
                    .into(),
            ));
        }
        Ok(Self { core_value, services_value, price, relationship_costs })
    }

    /// `(core value + services value) / (price + relationship costs)`.
    pub fn cpv(&self) -> f64 {
        (self.core_value.get() + self.services_value.get()) / (self.price.get() + self.relationship_costs.get())
    }
}

/// A customer's exit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerExit {
    /// Why it left.
    pub reason: ExitReason,
    /// When it left.
    pub date: NaiveDate,
}

impl KindDetails {
    /// The kind these fields belong to.
    pub fn kind(&self) -> StakeholderKind {
        match self {
            KindDetails::Customer(_) => StakeholderKind::Customer,
            KindDetails::Supplier { .. } => StakeholderKind::Supplier,
            KindDetails::Distributor { .. } => StakeholderKind::Distributor,
            KindDetails::Employee { .. } => StakeholderKind::Employee,
            KindDetails::Media { .. } => StakeholderKind::Media,
            KindDetails::Government { .. } => StakeholderKind::Government,
        }
    }

    /// The customer's lifecycle status, for customers.
    pub fn customer_status(&self) -> Option<CustomerStatus> {
        match self {
            KindDetails::Customer(customer) => Some(customer.status),
            _ => None,
        }
    }
}

impl Stakeholder {
    /// Its kind.
    pub fn kind(&self) -> StakeholderKind {
        self.details.kind()
    }

    /// The one market it belongs to first, from its kind and status.
    pub fn primary_market(&self) -> Market {
        let candidate = matches!(self.details, KindDetails::Employee { candidate: true, .. });
        self.kind().primary_market(candidate)
    }

    /// Every market it takes part in: the primary one and the extra ones.
    pub fn markets(&self) -> MarketSet {
        self.extra_markets.with(self.primary_market())
    }

    /// Its Mendelow quadrant.
    pub fn mendelow(&self) -> Mendelow {
        Mendelow::of(self.power.get(), self.interest.get())
    }

    /// Whether it has been archived.
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

/// Everything needed to create a stakeholder; the store assigns id and times.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStakeholder {
    /// Unique key.
    pub key: Label,
    /// Display name.
    pub name: Label,
    /// Power in [0, 1].
    pub power: Probability,
    /// Interest in [0, 1].
    pub interest: Probability,
    /// Private flag.
    pub private: bool,
    /// Extra markets.
    pub extra_markets: MarketSet,
    /// Fields of its kind.
    pub details: KindDetails,
}

impl NewStakeholder {
    /// The patch of the fields a create input gives only when the sender means them: the name and the optional
    /// fields of its kind (absent ones keep their values). Power, interest, the private flag, the extra markets, a
    /// customer's status and an employee's candidate flag have defaults in a create input, so an upsert of an
    /// existing stakeholder from such an input leaves them as they are (a sender changes them with an update).
    pub fn optional_patch(&self) -> StakeholderPatch {
        let details = match &self.details {
            KindDetails::Customer(customer) => DetailsPatch::Customer {
                status: None,
                segment: customer.segment.clone(),
                lifetime_value: customer.lifetime_value,
                perceived_value: customer.perceived_value,
                since: customer.since,
                retention_cost: customer.retention_cost,
            },
            KindDetails::Supplier { category } => DetailsPatch::Supplier { category: category.clone() },
            KindDetails::Distributor { channel, region } => {
                DetailsPatch::Distributor { channel: channel.clone(), region: region.clone() }
            }
            KindDetails::Employee { role, department, .. } => {
                DetailsPatch::Employee { role: role.clone(), department: department.clone(), candidate: None }
            }
            KindDetails::Media { outlet, reach } => DetailsPatch::Media { outlet: outlet.clone(), reach: *reach },
            KindDetails::Government { agency, jurisdiction } => {
                DetailsPatch::Government { agency: agency.clone(), jurisdiction: jurisdiction.clone() }
            }
        };
        StakeholderPatch { name: Some(self.name.clone()), details: Some(details), ..StakeholderPatch::default() }
    }

    /// Its kind.
    pub fn kind(&self) -> StakeholderKind {
        self.details.kind()
    }

    /// The stored record for this input, with the store's id and time.
    pub fn into_stakeholder(self, id: StakeholderId, at: DateTime<Utc>) -> Stakeholder {
        Stakeholder {
            id,
            key: self.key,
            name: self.name,
            power: self.power,
            interest: self.interest,
            private: self.private,
            extra_markets: self.extra_markets,
            details: self.details,
            created_at: at,
            updated_at: at,
            archived_at: None,
        }
    }
}

/// A partial update: absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StakeholderPatch {
    /// New name.
    pub name: Option<Label>,
    /// New power.
    pub power: Option<Probability>,
    /// New interest.
    pub interest: Option<Probability>,
    /// New private flag.
    pub private: Option<bool>,
    /// New extra markets (replaces the set).
    pub extra_markets: Option<MarketSet>,
    /// New fields of the stakeholder's kind; must be of the same kind.
    pub details: Option<DetailsPatch>,
}

impl StakeholderPatch {
    /// The patch that sets a customer's status and nothing else.
    pub fn customer_status(status: CustomerStatus) -> Self {
        StakeholderPatch {
            details: Some(DetailsPatch::Customer {
                status: Some(status),
                segment: None,
                lifetime_value: None,
                perceived_value: None,
                since: None,
                retention_cost: None,
            }),
            ..Default::default()
        }
    }
}

/// Changes to the fields of one kind; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq)]
pub enum DetailsPatch {
    /// Customer fields.
    Customer {
        /// New status.
        status: Option<CustomerStatus>,
        /// New segment.
        segment: Option<Label>,
        /// New lifetime value.
        lifetime_value: Option<Amount>,
        /// New perceived-value inputs (all four at once).
        perceived_value: Option<PerceivedValue>,
        /// The day it became a customer.
        since: Option<NaiveDate>,
        /// New retention cost.
        retention_cost: Option<Amount>,
    },
    /// Supplier fields.
    Supplier {
        /// New category.
        category: Option<Label>,
    },
    /// Distributor fields.
    Distributor {
        /// New channel.
        channel: Option<Label>,
        /// New region.
        region: Option<Label>,
    },
    /// Employee fields.
    Employee {
        /// New role.
        role: Option<Label>,
        /// New department.
        department: Option<Label>,
        /// New candidate flag.
        candidate: Option<bool>,
    },
    /// Media fields.
    Media {
        /// New outlet.
        outlet: Option<Label>,
        /// New reach.
        reach: Option<u64>,
    },
    /// Government fields.
    Government {
        /// New agency.
        agency: Option<Label>,
        /// New jurisdiction.
        jurisdiction: Option<Label>,
    },
}

fn replace<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

fn replace_some<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

impl Stakeholder {
    /// Applies a patch; fails without changing anything when the patch is for another kind.
    pub fn apply_patch(&mut self, patch: StakeholderPatch, at: DateTime<Utc>) -> Result<(), Refused> {
        if let Some(details) = patch.details {
            self.apply_details(details, at.date_naive())?;
        }
        replace(&mut self.name, patch.name);
        replace(&mut self.power, patch.power);
        replace(&mut self.interest, patch.interest);
        replace(&mut self.private, patch.private);
        replace(&mut self.extra_markets, patch.extra_markets);
        self.updated_at = at;
        Ok(())
    }

    fn apply_details(&mut self, patch: DetailsPatch, today: NaiveDate) -> Result<(), Refused> {
        let kind = self.kind();
        match (&mut self.details, patch) {
            (
                KindDetails::Customer(customer),
                DetailsPatch::Customer { status, segment, lifetime_value, perceived_value, since, retention_cost },
            ) => {
                // Changed on a copy, so that a refused status or date changes nothing.
                let mut changed = customer.clone();
                // The status first: a prospect becoming a customer may be given its customer-since day with it.
                if let Some(status) = status {
                    changed.change_status(status, today)?;
                }
                if let Some(since) = since {
                    changed.set_since(since, today)?;
                }
                replace_some(&mut changed.segment, segment);
                replace_some(&mut changed.lifetime_value, lifetime_value);
                replace_some(&mut changed.perceived_value, perceived_value);
                replace_some(&mut changed.retention_cost, retention_cost);
                *customer = changed;
            }
            (KindDetails::Supplier { category }, DetailsPatch::Supplier { category: new }) => {
                replace_some(category, new);
            }
            (KindDetails::Distributor { channel, region }, DetailsPatch::Distributor { channel: c, region: r }) => {
                replace_some(channel, c);
                replace_some(region, r);
            }
            (
                KindDetails::Employee { role, department, candidate },
                DetailsPatch::Employee { role: r, department: d, candidate: c },
            ) => {
                replace_some(role, r);
                replace_some(department, d);
                replace(candidate, c);
            }
            (KindDetails::Media { outlet, reach }, DetailsPatch::Media { outlet: o, reach: r }) => {
                replace_some(outlet, o);
                replace_some(reach, r);
            }
            (
                KindDetails::Government { agency, jurisdiction },
                DetailsPatch::Government { agency: a, jurisdiction: j },
            ) => {
                replace_some(agency, a);
                replace_some(jurisdiction, j);
            }
            _ => {
                return Err(Refused::of(
                    "id",
                    format!("this stakeholder is a {kind}; use the update mutation for {kind} stakeholders"),
                ))
            }
        }
        Ok(())
    }

    /// Records a customer's exit: status CHURNED with reason and date.
    pub fn record_exit(&mut self, exit: CustomerExit, at: DateTime<Utc>) -> Result<(), Refused> {
        let created_at = self.created_at;
        self.customer_mut("exit")?.exit(exit, created_at)?;
        self.updated_at = at;
        Ok(())
    }

    /// Records that a customer who left came back on `date`: status WON_BACK.
    pub fn record_win_back(&mut self, date: NaiveDate, at: DateTime<Utc>) -> Result<(), Refused> {
        self.customer_mut("be won back")?.win_back(date, CustomerStatus::WonBack)?;
        self.updated_at = at;
        Ok(())
    }

    /// Enrols this customer in `program` on `date` (rules in [`program::enrol`]); refused for other kinds,
    /// naming `customerId`.
    pub fn enrol_in_program(&mut self, program: ProgramId, date: NaiveDate, at: DateTime<Utc>) -> Result<(), Refused> {
        let created_at = self.created_at;
        let customer = self.customer_mut("join programmes").map_err(as_customer_id)?;
        let since = customer.customer_since(created_at);
        program::enrol(&mut customer.memberships, program, date, at.date_naive(), since)?;
        self.updated_at = at;
        Ok(())
    }

    /// Records that this customer left `program` on `date` (rules in [`program::leave`]).
    pub fn leave_program(&mut self, program: ProgramId, date: NaiveDate, at: DateTime<Utc>) -> Result<(), Refused> {
        let customer = self.customer_mut("leave programmes").map_err(as_customer_id)?;
        program::leave(&mut customer.memberships, program, date, at.date_naive())?;
        self.updated_at = at;
        Ok(())
    }

    /// Its customer fields; refused for another kind, saying that only customers can `what`.
    fn customer_mut(&mut self, what: &str) -> Result<&mut CustomerDetails, Refused> {
        match &mut self.details {
            KindDetails::Customer(customer) => Ok(customer),
            other => Err(Refused::of(
                "id",
                format!(
                    "only customers can {what}, and this stakeholder is a {}; pass the id of a CUSTOMER",
                    other.kind()
                ),
            )),
        }
    }
}

/// A refusal about the record as a whole, pointed at the `customerId` of a programme command.
fn as_customer_id(refused: Refused) -> Refused {
    Refused { field: "customerId", ..refused }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn customer() -> Stakeholder {
        NewStakeholder {
            key: Label::parse("C-1").unwrap(),
            name: Label::parse("Acme").unwrap(),
            power: Probability::parse(0.7).unwrap(),
            interest: Probability::parse(0.2).unwrap(),
            private: false,
            extra_markets: MarketSet::of([Market::Referral]),
            details: KindDetails::Customer(CustomerDetails {
                status: CustomerStatus::Active,
                segment: None,
                lifetime_value: None,
                exit: None,
                perceived_value: None,
                since: Some(NaiveDate::from_ymd_opt(2019, 1, 1).unwrap()),
                lifecycle: Vec::new(),
                retention_cost: None,
                memberships: Vec::new(),
            }),
        }
        .into_stakeholder(StakeholderId(1), Utc::now())
    }

    #[test]
    fn markets_include_primary_and_extra() {
        let c = customer();
        assert_eq!(c.primary_market(), Market::Customer);
        assert!(c.markets().contains(Market::Referral));
        assert_eq!(c.mendelow(), Mendelow::KeepSatisfied);
    }

    #[test]
    fn patch_of_another_kind_changes_nothing() {
        let mut c = customer();
        let before = c.clone();
        let patch = StakeholderPatch {
            name: Some(Label::parse("Renamed").unwrap()),
            details: Some(DetailsPatch::Supplier { category: None }),
            ..Default::default()
        };
        assert!(c.apply_patch(patch, Utc::now()).is_err());
        assert_eq!(c, before);
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn details(stakeholder: &Stakeholder) -> &CustomerDetails {
        match &stakeholder.details {
            KindDetails::Customer(customer) => customer,
            other => panic!("not a customer: {other:?}"),
        }
    }

    fn status(status: CustomerStatus) -> StakeholderPatch {
        StakeholderPatch::customer_status(status)
    }

    #[test]
    fn the_lifecycle_keeps_exits_and_win_backs_in_order() {
        let mut c = customer();
        let at = Utc::now();
        let exit = |reason, day| CustomerExit { reason, date: date(day) };
        c.record_exit(exit(ExitReason::Price, "2026-01-10"), at).unwrap();
        // Recorded again while gone: a correction of the exit, not a second one.
        c.record_exit(exit(ExitReason::Service, "2026-01-12"), at).unwrap();
        assert_eq!(
            details(&c).lifecycle(),
            vec![LifecycleEvent::Exit { reason: ExitReason::Service, date: date("2026-01-12") }]
        );
        let error = c.record_win_back(date("2026-01-11"), at).unwrap_err();
        assert!(error.message.contains("before the customer's exit on 2026-01-12"), "{}", error.message);
        c.record_win_back(date("2026-03-01"), at).unwrap();
        assert_eq!(details(&c).status, CustomerStatus::WonBack);
        let error = c.record_win_back(date("2026-03-02"), at).unwrap_err();
        assert!(error.message.contains("not CHURNED"), "{}", error.message);
        let error = c.record_exit(exit(ExitReason::Price, "2026-02-01"), at).unwrap_err();
        assert!(error.message.contains("on or after 2026-03-01"), "{}", error.message);
        c.record_exit(exit(ExitReason::Market, "2026-04-01"), at).unwrap();
        // Coming back through an update is a win-back on the update's day.
        let today = Utc.with_ymd_and_hms(2026, 5, 2, 9, 0, 0).unwrap();
        c.apply_patch(status(CustomerStatus::Active), today).unwrap();
        assert_eq!(
            details(&c).lifecycle(),
            vec![
                LifecycleEvent::Exit { reason: ExitReason::Service, date: date("2026-01-12") },
                LifecycleEvent::WinBack { date: date("2026-03-01") },
                LifecycleEvent::Exit { reason: ExitReason::Market, date: date("2026-04-01") },
                LifecycleEvent::WinBack { date: date("2026-05-02") },
            ]
        );
        assert_eq!(details(&c).status, CustomerStatus::Active);
        assert_eq!(details(&c).exit, Some(exit(ExitReason::Market, "2026-04-01")), "the latest exit");
    }

    #[test]
    fn churned_is_set_by_an_exit_and_a_refused_update_changes_nothing() {
        let mut c = customer();
        let before = c.clone();
        let error = c.apply_patch(status(CustomerStatus::Churned), Utc::now()).unwrap_err();
        assert!(error.message.contains("recordCustomerExit"), "{}", error.message);
        assert_eq!(c, before);
        let mut since = status(CustomerStatus::Active);
        if let Some(DetailsPatch::Customer { since, .. }) = &mut since.details {
            *since = Some(date("2030-01-01"));
        }
        let error = c.apply_patch(since, Utc.with_ymd_and_hms(2026, 5, 2, 9, 0, 0).unwrap()).unwrap_err();
        assert!(error.message.contains("in the future"), "{}", error.message);
        assert_eq!(c, before);
    }

    #[test]
    fn a_prospect_becomes_a_customer_the_day_it_changes_status() {
        let mut c = customer();
        if let KindDetails::Customer(details) = &mut c.details {
            details.status = CustomerStatus::Prospect;
            details.since = None;
        }
        assert_eq!(details(&c).customer_since(c.created_at), None);
        c.apply_patch(status(CustomerStatus::Active), Utc.with_ymd_and_hms(2026, 5, 2, 9, 0, 0).unwrap()).unwrap();
        assert_eq!(details(&c).since, Some(date("2026-05-02")));
        // Records written before the lifecycle was kept have their one exit only (`store::record` reads them).
        let exit = CustomerExit { reason: ExitReason::Price, date: date("2025-01-02") };
        let old = CustomerDetails {
            status: CustomerStatus::Churned,
            segment: None,
            lifetime_value: None,
            exit: Some(exit),
            perceived_value: None,
            since: None,
            lifecycle: Vec::new(),
            retention_cost: None,
            memberships: Vec::new(),
        };
        assert_eq!(old.lifecycle(), vec![LifecycleEvent::Exit { reason: exit.reason, date: exit.date }]);
    }

    #[test]
    fn a_lifecycle_keeps_at_most_its_bound() {
        let mut c = customer();
        let at = Utc::now();
        let day = date("2020-01-01");
        for n in 0..MAX_LIFECYCLE / 2 {
            c.record_exit(CustomerExit { reason: ExitReason::Price, date: day }, at).unwrap();
            c.record_win_back(day, at).unwrap_or_else(|error| panic!("{n}: {}", error.message));
        }
        let error = c.record_exit(CustomerExit { reason: ExitReason::Price, date: day }, at).unwrap_err();
        assert!(error.message.contains("the most one customer keeps"), "{}", error.message);
        assert_eq!(details(&c).lifecycle().len(), MAX_LIFECYCLE);
    }

    #[test]
    fn prospects_never_exit_nor_return_and_exits_follow_the_day_a_customer_became_one() {
        let today = Utc.with_ymd_and_hms(2026, 5, 2, 9, 0, 0).unwrap();
        let mut prospect = customer();
        if let KindDetails::Customer(details) = &mut prospect.details {
            details.status = CustomerStatus::Prospect;
            details.since = None;
        }
        let exit = CustomerExit { reason: ExitReason::Price, date: date("2026-04-01") };
        assert_eq!(prospect.record_exit(exit, today).unwrap_err().field, "id", "a prospect does not exit");
        let mut with_since = status(CustomerStatus::AtRisk);
        if let Some(DetailsPatch::Customer { since, status, .. }) = &mut with_since.details {
            *status = None;
            *since = Some(date("2020-01-01"));
        }
        assert_eq!(prospect.apply_patch(with_since, today).unwrap_err().field, "customerSince");
        // Without a recorded day, a customer is one from the day its record was created.
        let mut recent = customer();
        recent.created_at = today;
        if let KindDetails::Customer(details) = &mut recent.details {
            details.since = None;
        }
        let early = recent.record_exit(exit, today).unwrap_err();
        assert_eq!(early.field, "date", "{}", early.message);
        // A customer does not become a prospect again; a CHURNED one with no exit recorded has nothing to return from.
        assert_eq!(recent.apply_patch(status(CustomerStatus::Prospect), today).unwrap_err().field, "status");
        let mut churned = customer();
        if let KindDetails::Customer(details) = &mut churned.details {
            details.status = CustomerStatus::Churned;
        }
        let error = churned.record_win_back(date("2026-04-01"), today).unwrap_err();
        assert!(error.message.contains("record its exit first"), "{}", error.message);
        // A new record brings no lifecycle, is not CHURNED, and a prospect has no customer-since day.
        let new = |status, since: Option<&str>| CustomerDetails {
            status,
            segment: None,
            lifetime_value: None,
            exit: None,
            perceived_value: None,
            since: since.map(date),
            lifecycle: Vec::new(),
            retention_cost: None,
            memberships: Vec::new(),
        };
        let day = date("2026-05-02");
        assert!(new(CustomerStatus::Active, Some("2020-01-01")).check_new(day).is_ok());
        assert_eq!(new(CustomerStatus::Churned, None).check_new(day).unwrap_err().field, "status");
        assert_eq!(
            new(CustomerStatus::Prospect, Some("2020-01-01")).check_new(day).unwrap_err().field,
            "customerSince"
        );
        assert_eq!(new(CustomerStatus::Active, Some("2027-01-01")).check_new(day).unwrap_err().field, "customerSince");
        let mut carried = new(CustomerStatus::Active, None);
        carried.lifecycle.push(LifecycleEvent::WinBack { date: day });
        assert_eq!(carried.check_new(day).unwrap_err().field, "id");
    }

    #[test]
    fn exit_marks_churned() {
        let mut c = customer();
        let date = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        c.record_exit(CustomerExit { reason: ExitReason::Price, date }, Utc::now()).unwrap();
        assert_eq!(c.details.customer_status(), Some(CustomerStatus::Churned));
    }

    #[test]
    fn perceived_value_is_what_is_got_over_what_is_given_and_needs_something_given() {
        let amount = |value: f64| Amount::parse(value).unwrap();
        let value = PerceivedValue::new(amount(120.0), amount(30.0), amount(100.0), amount(25.0)).unwrap();
        assert_eq!(value.cpv(), 150.0 / 125.0);
        let free = PerceivedValue::new(amount(10.0), amount(0.0), amount(0.0), amount(5.0)).unwrap();
        assert_eq!(free.cpv(), 2.0, "nothing paid, some effort");
        let error = PerceivedValue::new(amount(10.0), amount(1.0), amount(0.0), amount(0.0)).unwrap_err();
        assert!(error.0.contains("both 0"), "{}", error.0);
    }
}
