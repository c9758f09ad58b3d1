//! Stakeholders: the common fields, the fields of each kind, and how an update applies.

use super::values::{Amount, InvalidValue, Label, Probability, StakeholderId};
use super::vocabulary::{CustomerStatus, ExitReason, Market, MarketSet, Mendelow, StakeholderKind};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A stakeholder as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perceived_value: Option<PerceivedValue>,
}

/// Customer perceived value (docs/models.md, after Kotler): what a customer gets (the core product's value and the
/// added services' value) for what it gives (the price and the costs of the relationship: time, effort, switching),
/// in one currency. `CPV = (core value + services value) / (price + relationship costs)`: above 1 the customer
/// gets more than it gives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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

/// Changes to the fields of one kind; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        perceived_value: Option<PerceivedValue>,
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
    pub fn apply_patch(&mut self, patch: StakeholderPatch, at: DateTime<Utc>) -> Result<(), InvalidValue> {
        if let Some(details) = patch.details {
            self.apply_details(details)?;
        }
        replace(&mut self.name, patch.name);
        replace(&mut self.power, patch.power);
        replace(&mut self.interest, patch.interest);
        replace(&mut self.private, patch.private);
        replace(&mut self.extra_markets, patch.extra_markets);
        self.updated_at = at;
        Ok(())
    }

    fn apply_details(&mut self, patch: DetailsPatch) -> Result<(), InvalidValue> {
        let kind = self.kind();
        match (&mut self.details, patch) {
            (
                KindDetails::Customer(customer),
                DetailsPatch::Customer { status, segment, lifetime_value, perceived_value },
            ) => {
                replace(&mut customer.status, status);
                replace_some(&mut customer.segment, segment);
                replace_some(&mut customer.lifetime_value, lifetime_value);
                replace_some(&mut customer.perceived_value, perceived_value);
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
                return Err(InvalidValue(format!(
                    "this stakeholder is a {kind}; use the update mutation for {kind} stakeholders"
                )))
            }
        }
        Ok(())
    }

    /// Records a customer's exit: status CHURNED with reason and date.
    pub fn record_exit(&mut self, exit: CustomerExit, at: DateTime<Utc>) -> Result<(), InvalidValue> {
        match &mut self.details {
            KindDetails::Customer(customer) => {
                customer.status = CustomerStatus::Churned;
                customer.exit = Some(exit);
                self.updated_at = at;
                Ok(())
            }
            other => Err(InvalidValue(format!(
                "only customers can exit, and this stakeholder is a {}; pass the id of a CUSTOMER",
                other.kind()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Records written before CPV was kept read as without one, and one without is written as before.
        let old = r#"{"status":"ACTIVE","segment":"SMB","lifetime_value":1.0,"exit":null}"#;
        let details: CustomerDetails = serde_json::from_str(old).unwrap();
        assert_eq!(details.perceived_value, None);
        assert_eq!(serde_json::to_string(&details).unwrap(), old);
    }
}
