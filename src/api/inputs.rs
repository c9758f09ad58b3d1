//! Mutation inputs and their parsing into domain commands: every value is validated here, at the edge, and a
//! failure names the input path it came from.

use super::enums::{
    Basis, Bond, Channel, CustomerStatus, Direction, ExitReason, Level, Market, ProgramKind, RelationshipType, Topic,
};
use super::error::{at, ApiError, ApiResult};
use super::ids::{program_id, relationship_id, stakeholder_id};
use crate::domain::{
    self, parse_note, Amount, BondSet, Command, CustomerDetails, CustomerExit, DetailsPatch, KindDetails, Label,
    MarketSet, NewInteraction, NewStakeholder, PerceivedValue, Probability, RelationshipUpsert, Sentiment,
    StakeholderId, StakeholderPatch,
};
use async_graphql::{InputObject, ID};
use chrono::{DateTime, NaiveDate, Utc};

/// The fields every new stakeholder has.
#[derive(InputObject, Debug)]
pub struct NewStakeholderFields {
    /// Your own unique key (a CRM id, say).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Power over the firm, in [0, 1].
    #[graphql(default = 0.5)]
    pub power: f64,
    /// Interest in the firm, in [0, 1].
    #[graphql(default = 0.5)]
    pub interest: f64,
    /// Visible in full only to editors and admins.
    #[graphql(default = false)]
    pub private: bool,
    /// Markets taken part in beyond the primary one.
    #[graphql(default)]
    pub markets: Vec<Market>,
}

/// Changes to the fields every stakeholder has; absent fields stay as they are.
#[derive(InputObject, Debug)]
pub struct StakeholderChanges {
    /// The stakeholder to change.
    pub id: ID,
    /// New display name.
    pub name: Option<String>,
    /// New power, in [0, 1].
    pub power: Option<f64>,
    /// New interest, in [0, 1].
    pub interest: Option<f64>,
    /// New private flag.
    pub private: Option<bool>,
    /// New extra markets (replaces the set).
    pub markets: Option<Vec<Market>>,
}

fn label(path: &str, value: &str) -> ApiResult<Label> {
    at(path, Label::parse(value))
}

fn optional_label(path: &str, value: Option<&str>) -> ApiResult<Option<Label>> {
    value.map(|value| label(path, value)).transpose()
}

fn probability(path: &str, value: f64) -> ApiResult<Probability> {
    at(path, Probability::parse(value))
}

fn amount(path: &str, value: Option<f64>) -> ApiResult<Option<Amount>> {
    value.map(|value| at(path, Amount::parse(value))).transpose()
}

fn markets(values: &[Market]) -> MarketSet {
    MarketSet::of(values.iter().map(|market| domain::Market::from(*market)))
}

fn reach(path: &str, value: Option<i64>) -> ApiResult<Option<u64>> {
    value
        .map(|value| {
            u64::try_from(value).map_err(|_| {
                ApiError::bad_input(path, format!("{value} is negative; send an audience size of 0 or more"))
            })
        })
        .transpose()
}

impl NewStakeholderFields {
    fn parse(self, path: &str, details: KindDetails) -> ApiResult<Command> {
        Ok(Command::CreateStakeholder(NewStakeholder {
            key: label(&format!("{path}.key"), &self.key)?,
            name: label(&format!("{path}.name"), &self.name)?,
            power: probability(&format!("{path}.power"), self.power)?,
            interest: probability(&format!("{path}.interest"), self.interest)?,
            private: self.private,
            extra_markets: markets(&self.markets),
            details,
        }))
    }
}

impl StakeholderChanges {
    fn parse(self, path: &str, details: DetailsPatch) -> ApiResult<Command> {
        let id = stakeholder_id(&self.id, &format!("{path}.id"))?;
        let patch = StakeholderPatch {
            name: optional_label(&format!("{path}.name"), self.name.as_deref())?,
            power: self.power.map(|value| probability(&format!("{path}.power"), value)).transpose()?,
            interest: self.interest.map(|value| probability(&format!("{path}.interest"), value)).transpose()?,
            private: self.private,
            extra_markets: self.markets.as_deref().map(markets),
            details: Some(details),
        };
        Ok(Command::UpdateStakeholder { id, patch })
    }
}

/// What a customer perceives it gets and gives, in one currency: CPV = (coreValue + servicesValue) / (price +
/// relationshipCosts). Each 0 or more; price and relationship costs not both 0.
#[derive(InputObject, Debug, Clone, Copy)]
pub struct PerceivedValueInput {
    /// The value of the core product or service to the customer.
    core_value: f64,
    /// The value of the added services.
    services_value: f64,
    /// The price the customer pays.
    price: f64,
    /// What the relationship costs the customer (time, effort, switching).
    relationship_costs: f64,
}

impl PerceivedValueInput {
    fn parse(self, path: &str) -> ApiResult<PerceivedValue> {
        let part = |field: &str, value: f64| at(format!("{path}.{field}"), Amount::parse(value));
        let inputs = PerceivedValue::new(
            part("coreValue", self.core_value)?,
            part("servicesValue", self.services_value)?,
            part("price", self.price)?,
            part("relationshipCosts", self.relationship_costs)?,
        );
        at(path, inputs)
    }
}

/// Parses an optional perceived value at `path`.
fn perceived_value(path: &str, input: Option<PerceivedValueInput>) -> ApiResult<Option<PerceivedValue>> {
    input.map(|input| input.parse(path)).transpose()
}

/// A new customer.
#[derive(InputObject, Debug)]
pub struct CreateCustomerInput {
    #[graphql(flatten)]
    common: NewStakeholderFields,
    /// Lifecycle status.
    #[graphql(default_with = "CustomerStatus::Prospect")]
    status: CustomerStatus,
    /// Segment.
    segment: Option<String>,
    /// Lifetime value, 0 or more.
    lifetime_value: Option<f64>,
    /// Perceived-value inputs.
    perceived_value: Option<PerceivedValueInput>,
    /// The day it became a customer (defaults to the day it is created, or for a prospect, the day it first
    /// changes to another status); not in the future.
    customer_since: Option<NaiveDate>,
    /// What keeping this customer would cost, 0 or more (defaults to its segment's `[churn]` retention cost).
    retention_cost: Option<f64>,
}

/// A customer-since day at `path`, refused when after `today`.
fn customer_since(path: &str, since: Option<NaiveDate>, today: NaiveDate) -> ApiResult<Option<NaiveDate>> {
    match since {
        Some(since) if since > today => Err(ApiError::bad_input(
            path,
            format!("{since} is in the future; give the day it became a customer (today is {today})"),
        )),
        since => Ok(since),
    }
}

impl CreateCustomerInput {
    /// The command this input asks for on day `today`; `path` is where the input sits.
    pub fn parse(self, path: &str, today: NaiveDate) -> ApiResult<Command> {
        let details = KindDetails::Customer(CustomerDetails {
            status: self.status.into(),
            segment: optional_label(&format!("{path}.segment"), self.segment.as_deref())?,
            lifetime_value: amount(&format!("{path}.lifetimeValue"), self.lifetime_value)?,
            exit: None,
            perceived_value: perceived_value(&format!("{path}.perceivedValue"), self.perceived_value)?,
            since: customer_since(&format!("{path}.customerSince"), self.customer_since, today)?,
            lifecycle: Vec::new(),
            memberships: Vec::new(),
            retention_cost: amount(&format!("{path}.retentionCost"), self.retention_cost)?,
        });
        self.common.parse(path, details)
    }
}

/// Changes to a customer.
#[derive(InputObject, Debug)]
pub struct UpdateCustomerInput {
    #[graphql(flatten)]
    common: StakeholderChanges,
    /// New lifecycle status.
    status: Option<CustomerStatus>,
    /// New segment.
    segment: Option<String>,
    /// New lifetime value.
    lifetime_value: Option<f64>,
    /// New perceived-value inputs (all four together).
    perceived_value: Option<PerceivedValueInput>,
    /// The day it became a customer; not in the future, nor after its first exit.
    customer_since: Option<NaiveDate>,
    /// New retention cost, 0 or more.
    retention_cost: Option<f64>,
}

impl UpdateCustomerInput {
    /// The command this input asks for on day `today`. A status change from CHURNED is a win-back dated today
    /// (`recordCustomerWinBack` takes another day); CHURNED itself is set by `recordCustomerExit`.
    pub fn parse(self, path: &str, today: NaiveDate) -> ApiResult<Command> {
        let details = DetailsPatch::Customer {
            status: self.status.map(Into::into),
            segment: optional_label(&format!("{path}.segment"), self.segment.as_deref())?,
            lifetime_value: amount(&format!("{path}.lifetimeValue"), self.lifetime_value)?,
            perceived_value: perceived_value(&format!("{path}.perceivedValue"), self.perceived_value)?,
            since: customer_since(&format!("{path}.customerSince"), self.customer_since, today)?,
            retention_cost: amount(&format!("{path}.retentionCost"), self.retention_cost)?,
        };
        self.common.parse(path, details)
    }
}

/// Declares the create and update inputs of a kind whose own fields are optional labels (and maybe more).
macro_rules! label_kind_inputs {
    (
        $create:ident, $update:ident, $doc:literal,
        { $($field:ident : $gql:literal : $fdoc:literal),+ },
        $details:expr, $patch:expr
    ) => {
        #[doc = concat!("A new ", $doc, ".")]
        #[derive(InputObject, Debug)]
        pub struct $create {
            #[graphql(flatten)]
            common: NewStakeholderFields,
            $(#[doc = $fdoc] $field: Option<String>,)+
        }

        impl $create {
            /// The command this input asks for; `path` is where the input sits.
            pub fn parse(self, path: &str) -> ApiResult<Command> {
                $(let $field = optional_label(&format!("{path}.{}", $gql), self.$field.as_deref())?;)+
                let details = $details($($field),+);
                self.common.parse(path, details)
            }
        }

        #[doc = concat!("Changes to a ", $doc, "; absent fields stay as they are.")]
        #[derive(InputObject, Debug)]
        pub struct $update {
            #[graphql(flatten)]
            common: StakeholderChanges,
            $(#[doc = $fdoc] $field: Option<String>,)+
        }

        impl $update {
            /// The command this input asks for.
            pub fn parse(self, path: &str) -> ApiResult<Command> {
                $(let $field = optional_label(&format!("{path}.{}", $gql), self.$field.as_deref())?;)+
                let details = $patch($($field),+);
                self.common.parse(path, details)
            }
        }
    };
}

label_kind_inputs!(
    CreateSupplierInput, UpdateSupplierInput, "supplier",
    { category: "category": "What it supplies." },
    |category| KindDetails::Supplier { category },
    |category| DetailsPatch::Supplier { category }
);

label_kind_inputs!(
    CreateDistributorInput, UpdateDistributorInput, "distributor",
    { channel: "channel": "Its channel: wholesale, retail, agent, online.", region: "region": "Where it operates." },
    |channel, region| KindDetails::Distributor { channel, region },
    |channel, region| DetailsPatch::Distributor { channel, region }
);

label_kind_inputs!(
    CreateGovernmentBodyInput, UpdateGovernmentBodyInput, "government body",
    { agency: "agency": "Agency.", jurisdiction: "jurisdiction": "Jurisdiction." },
    |agency, jurisdiction| KindDetails::Government { agency, jurisdiction },
    |agency, jurisdiction| DetailsPatch::Government { agency, jurisdiction }
);

/// A new employee or candidate.
#[derive(InputObject, Debug)]
pub struct CreateEmployeeInput {
    #[graphql(flatten)]
    common: NewStakeholderFields,
    /// Job title.
    role: Option<String>,
    /// Department.
    department: Option<String>,
    /// A candidate, not yet employed (recruitment market).
    #[graphql(default = false)]
    candidate: bool,
}

impl CreateEmployeeInput {
    /// The command this input asks for.
    pub fn parse(self, path: &str) -> ApiResult<Command> {
        let details = KindDetails::Employee {
            role: optional_label(&format!("{path}.role"), self.role.as_deref())?,
            department: optional_label(&format!("{path}.department"), self.department.as_deref())?,
            candidate: self.candidate,
        };
        self.common.parse(path, details)
    }
}

/// Changes to an employee.
#[derive(InputObject, Debug)]
pub struct UpdateEmployeeInput {
    #[graphql(flatten)]
    common: StakeholderChanges,
    /// New job title.
    role: Option<String>,
    /// New department.
    department: Option<String>,
    /// New candidate flag (false once hired).
    candidate: Option<bool>,
}

impl UpdateEmployeeInput {
    /// The command this input asks for.
    pub fn parse(self, path: &str) -> ApiResult<Command> {
        let details = DetailsPatch::Employee {
            role: optional_label(&format!("{path}.role"), self.role.as_deref())?,
            department: optional_label(&format!("{path}.department"), self.department.as_deref())?,
            candidate: self.candidate,
        };
        self.common.parse(path, details)
    }
}

/// A new media outlet.
#[derive(InputObject, Debug)]
pub struct CreateMediaOutletInput {
    #[graphql(flatten)]
    common: NewStakeholderFields,
    /// Name of the outlet.
    outlet: Option<String>,
    /// Audience size, 0 or more.
    reach: Option<i64>,
}

impl CreateMediaOutletInput {
    /// The command this input asks for.
    pub fn parse(self, path: &str) -> ApiResult<Command> {
        let details = KindDetails::Media {
            outlet: optional_label(&format!("{path}.outlet"), self.outlet.as_deref())?,
            reach: reach(&format!("{path}.reach"), self.reach)?,
        };
        self.common.parse(path, details)
    }
}

/// Changes to a media outlet.
#[derive(InputObject, Debug)]
pub struct UpdateMediaOutletInput {
    #[graphql(flatten)]
    common: StakeholderChanges,
    /// New outlet name.
    outlet: Option<String>,
    /// New audience size.
    reach: Option<i64>,
}

impl UpdateMediaOutletInput {
    /// The command this input asks for.
    pub fn parse(self, path: &str) -> ApiResult<Command> {
        let details = DetailsPatch::Media {
            outlet: optional_label(&format!("{path}.outlet"), self.outlet.as_deref())?,
            reach: reach(&format!("{path}.reach"), self.reach)?,
        };
        self.common.parse(path, details)
    }
}

/// The fields of a relationship an upsert sets; absent fields keep their value (on creation: level BASIC, no bonds,
/// unknown trust and commitment, since now).
#[derive(InputObject, Debug)]
pub struct RelationshipFields {
    /// Kotler's level.
    pub level: Option<Level>,
    /// Bonds (replaces the set).
    pub bonds: Option<Vec<Bond>>,
    /// Trust, in [0, 1].
    pub trust: Option<f64>,
    /// Commitment, in [0, 1].
    pub commitment: Option<f64>,
    /// When it began.
    pub since: Option<DateTime<Utc>>,
    /// What it grew from.
    pub basis: Option<Basis>,
}

impl RelationshipFields {
    /// The upsert of `(from, to, rel_type)` with these fields; `path` is where they sit.
    fn parse(
        self,
        path: &str,
        from: domain::StakeholderId,
        to: domain::StakeholderId,
        rel_type: RelationshipType,
    ) -> ApiResult<Command> {
        Ok(Command::UpsertRelationship(RelationshipUpsert {
            from,
            to,
            rel_type: rel_type.into(),
            level: self.level.map(Into::into),
            bonds: self.bonds.map(|bonds| BondSet::of(bonds.into_iter().map(domain::Bond::from))),
            trust: self.trust.map(|value| probability(&format!("{path}.trust"), value)).transpose()?,
            commitment: self.commitment.map(|value| probability(&format!("{path}.commitment"), value)).transpose()?,
            since: self.since,
            basis: self.basis.map(Into::into),
        }))
    }
}

/// Creates the relationship `(from, to, type)` or changes it if it exists; absent fields keep their value
/// (on creation: level BASIC, no bonds, unknown trust and commitment, since now).
#[derive(InputObject, Debug)]
pub struct UpsertRelationshipInput {
    /// Where it starts.
    pub from: ID,
    /// Where it ends.
    pub to: ID,
    /// What it is.
    #[graphql(name = "type")]
    pub rel_type: RelationshipType,
    #[graphql(flatten)]
    pub fields: RelationshipFields,
}

impl UpsertRelationshipInput {
    /// The command this input asks for.
    pub fn parse(self, path: &str) -> ApiResult<Command> {
        let from = stakeholder_id(&self.from, &format!("{path}.from"))?;
        let to = stakeholder_id(&self.to, &format!("{path}.to"))?;
        self.fields.parse(path, from, to, self.rel_type)
    }
}

/// A relationship between the stakeholders with these keys, to create or change.
#[derive(InputObject, Debug)]
pub struct RelationshipByKeyInput {
    /// The key of the stakeholder it starts at.
    pub from_key: String,
    /// The key of the stakeholder it ends at.
    pub to_key: String,
    /// What it is.
    #[graphql(name = "type")]
    pub rel_type: RelationshipType,
    #[graphql(flatten)]
    pub fields: RelationshipFields,
}

/// Relationships to create or change by the keys of their ends, in one transaction.
#[derive(InputObject, Debug)]
pub struct UpsertRelationshipsInput {
    /// At most `limits.max_batch`; each `(fromKey, toKey, type)` once.
    pub relationships: Vec<RelationshipByKeyInput>,
}

impl UpsertRelationshipsInput {
    /// The upserts this input asks for, each with the path of its item; the keys are resolved by the store inside
    /// the transaction. Refuses an empty input, one over `max_batch`, and a relationship given twice.
    pub fn parse(self, path: &str, max_batch: usize) -> ApiResult<Vec<(Command, String)>> {
        let field = format!("{path}.relationships");
        if self.relationships.is_empty() {
            return Err(ApiError::bad_input(field, "is empty; send at least one relationship"));
        }
        if self.relationships.len() > max_batch {
            return Err(ApiError::LimitExceeded {
                limit: "max_batch",
                field,
                message: format!(
                    "{} relationships is more than {max_batch} in one call; split them into calls of at most \
                     {max_batch}",
                    self.relationships.len()
                ),
            });
        }
        let mut seen = std::collections::HashMap::new();
        let mut upserts = Vec::with_capacity(self.relationships.len());
        for (index, input) in self.relationships.into_iter().enumerate() {
            let at = format!("{field}.{index}");
            let from = label(&format!("{at}.fromKey"), &input.from_key)?;
            let to = label(&format!("{at}.toKey"), &input.to_key)?;
            let rel_type: domain::RelationshipType = input.rel_type.into();
            if let Some(first) = seen.insert((from.clone(), to.clone(), rel_type), at.clone()) {
                return Err(ApiError::bad_input(
                    at,
                    format!("this relationship ({from}, {to}, {rel_type}) is also given at {first}; send each once"),
                ));
            }
            // The ends are the keys' owners; the upsert's own are not read.
            let nobody = domain::StakeholderId(0);
            let Command::UpsertRelationship(upsert) = input.fields.parse(&at, nobody, nobody, input.rel_type)? else {
                return Err(ApiError::Internal);
            };
            upserts.push((Command::UpsertRelationshipByKey { from, to, upsert }, at));
        }
        Ok(upserts)
    }
}

/// One interaction to record.
#[derive(InputObject, Debug)]
pub struct InteractionInput {
    /// The relationship it happened on.
    pub relationship: ID,
    /// When it happened (not in the future).
    pub at: DateTime<Utc>,
    /// How.
    pub channel: Channel,
    /// Who reached out.
    pub direction: Direction,
    /// How it felt, in [−1, 1].
    #[graphql(default = 0.0)]
    pub sentiment: f64,
    /// Amount, for purchases (0 or more).
    pub amount: Option<f64>,
    /// Product line, for purchases.
    pub product_line: Option<String>,
    /// Free text, at most 4,000 characters.
    pub note: Option<String>,
    /// What it was about.
    pub topic: Option<Topic>,
    /// Your own identifier for it (a mail's Message-ID, a CRM activity id; at most 200 characters), unique in the
    /// store: sending an interaction whose key is already recorded records nothing and returns the recorded one,
    /// so a retried request records it once; sending different values under a recorded key is refused.
    pub key: Option<String>,
}

impl InteractionInput {
    fn parse(self, path: &str) -> ApiResult<NewInteraction> {
        Ok(NewInteraction {
            relationship: relationship_id(&self.relationship, &format!("{path}.relationship"))?,
            at: self.at,
            channel: self.channel.into(),
            direction: self.direction.into(),
            sentiment: at(format!("{path}.sentiment"), Sentiment::parse(self.sentiment))?,
            amount: amount(&format!("{path}.amount"), self.amount)?,
            product_line: optional_label(&format!("{path}.productLine"), self.product_line.as_deref())?,
            note: self.note.as_deref().map(|note| at(format!("{path}.note"), parse_note(note))).transpose()?.flatten(),
            topic: self.topic.map(Into::into),
            key: optional_label(&format!("{path}.key"), self.key.as_deref())?,
        })
    }
}

/// A batch of interactions, recorded all-or-nothing.
#[derive(InputObject, Debug)]
pub struct RecordInteractionsInput {
    /// The interactions, possibly on several relationships.
    pub interactions: Vec<InteractionInput>,
}

/// Stakeholders of every kind to create, or to update by their `key`, in one transaction. Each item is a record as
/// for a create. For a stakeholder that exists, the name and the optional fields given change (those left out keep
/// their values); power, interest, `private`, the markets, a customer's status and an employee's candidate flag
/// are set on creation only (they have defaults here, so an item cannot tell them apart from absent ones: change
/// them with the `update*` mutations). Sending the same records again changes nothing and logs nothing.
#[derive(InputObject, Debug, Default)]
pub struct UpsertStakeholdersInput {
    /// Customers.
    #[graphql(default)]
    pub customers: Vec<CreateCustomerInput>,
    /// Suppliers.
    #[graphql(default)]
    pub suppliers: Vec<CreateSupplierInput>,
    /// Distributors.
    #[graphql(default)]
    pub distributors: Vec<CreateDistributorInput>,
    /// Employees and candidates.
    #[graphql(default)]
    pub employees: Vec<CreateEmployeeInput>,
    /// Media outlets.
    #[graphql(default)]
    pub media_outlets: Vec<CreateMediaOutletInput>,
    /// Government bodies.
    #[graphql(default)]
    pub government_bodies: Vec<CreateGovernmentBodyInput>,
}

impl UpsertStakeholdersInput {
    /// The upserts this input asks for on day `today`, in input order (customers, suppliers, distributors,
    /// employees, media outlets, government bodies), each with the path of its item; refuses an empty input, one
    /// over `max_batch` items, and a key given twice.
    pub fn parse(self, path: &str, today: NaiveDate, max_batch: usize) -> ApiResult<Vec<(Command, String)>> {
        let total = self.customers.len()
            + self.suppliers.len()
            + self.distributors.len()
            + self.employees.len()
            + self.media_outlets.len()
            + self.government_bodies.len();
        if total == 0 {
            return Err(ApiError::bad_input(path, "is empty; send at least one stakeholder"));
        }
        if total > max_batch {
            return Err(ApiError::LimitExceeded {
                limit: "max_batch",
                field: path.to_owned(),
                message: format!(
                    "{total} stakeholders is more than {max_batch} in one call; split them into calls of at most \
                     {max_batch}"
                ),
            });
        }
        let mut parsed = Vec::with_capacity(total);
        let item = |list: &str, index: usize| format!("{path}.{list}.{index}");
        for (index, input) in self.customers.into_iter().enumerate() {
            let at = item("customers", index);
            parsed.push((input.parse(&at, today)?, at));
        }
        macro_rules! kind {
            ($list:ident, $name:literal) => {
                for (index, input) in self.$list.into_iter().enumerate() {
                    let at = item($name, index);
                    parsed.push((input.parse(&at)?, at));
                }
            };
        }
        kind!(suppliers, "suppliers");
        kind!(distributors, "distributors");
        kind!(employees, "employees");
        kind!(media_outlets, "mediaOutlets");
        kind!(government_bodies, "governmentBodies");
        let mut seen = std::collections::HashMap::new();
        let mut upserts = Vec::with_capacity(parsed.len());
        for (command, at) in parsed {
            let Command::CreateStakeholder(new) = command else { return Err(ApiError::Internal) };
            if let Some(first) = seen.insert(new.key.as_str().to_owned(), at.clone()) {
                return Err(ApiError::bad_input(
                    format!("{at}.key"),
                    format!("key '{}' is also given at {first}; send each stakeholder once", new.key),
                ));
            }
            let patch = new.optional_patch();
            upserts.push((Command::UpsertStakeholder { new, patch }, at));
        }
        Ok(upserts)
    }
}

impl RecordInteractionsInput {
    /// The command this input asks for; refuses an empty batch or one over `max_batch`.
    pub fn parse(self, path: &str, max_batch: usize) -> ApiResult<Command> {
        let field = format!("{path}.interactions");
        if self.interactions.is_empty() {
            return Err(ApiError::bad_input(field, "is empty; send at least one interaction"));
        }
        if self.interactions.len() > max_batch {
            return Err(ApiError::LimitExceeded {
                limit: "max_batch",
                field,
                message: format!(
                    "{} interactions is more than {max_batch} in one batch; split it into batches of at most {max_batch}",
                    self.interactions.len()
                ),
            });
        }
        let interactions = self
            .interactions
            .into_iter()
            .enumerate()
            .map(|(index, interaction)| interaction.parse(&format!("{field}.{index}")))
            .collect::<ApiResult<_>>()?;
        Ok(Command::RecordInteractions(interactions))
    }
}

/// A customer's exit.
#[derive(InputObject, Debug)]
pub struct RecordCustomerExitInput {
    /// The customer who left.
    pub id: ID,
    /// Why.
    pub reason: ExitReason,
    /// When (defaults to today, UTC).
    pub date: Option<NaiveDate>,
}

/// The day of a lifecycle change at `{path}.date`: `date`, or `today` when not given; refused in the future.
fn happened(path: &str, date: Option<NaiveDate>, today: NaiveDate, what: &str) -> ApiResult<NaiveDate> {
    let date = date.unwrap_or(today);
    if date > today {
        return Err(ApiError::bad_input(
            format!("{path}.date"),
            format!("{date} is in the future; record {what} once it has happened (today is {today})"),
        ));
    }
    Ok(date)
}

impl RecordCustomerExitInput {
    /// The command this input asks for.
    pub fn parse(self, path: &str, today: NaiveDate) -> ApiResult<Command> {
        let id: StakeholderId = stakeholder_id(&self.id, &format!("{path}.id"))?;
        let date = happened(path, self.date, today, "an exit")?;
        Ok(Command::RecordCustomerExit { id, exit: CustomerExit { reason: self.reason.into(), date } })
    }
}

/// A customer who left and came back.
#[derive(InputObject, Debug)]
pub struct RecordCustomerWinBackInput {
    /// The customer, whose status is CHURNED.
    pub id: ID,
    /// The day it came back (defaults to today, UTC): not before its exit, not in the future.
    pub date: Option<NaiveDate>,
}

impl RecordCustomerWinBackInput {
    /// The command this input asks for.
    pub fn parse(self, path: &str, today: NaiveDate) -> ApiResult<Command> {
        let id: StakeholderId = stakeholder_id(&self.id, &format!("{path}.id"))?;
        let date = happened(path, self.date, today, "a win-back")?;
        Ok(Command::RecordCustomerWinBack { id, date })
    }
}

/// A relationship-marketing programme to create.
#[derive(InputObject, Debug)]
pub struct CreateProgramInput {
    /// Your own unique key for it (unique among programmes).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Frequency programme, customer club or customisation programme.
    pub kind: ProgramKind,
    /// The markets it addresses (at least one).
    pub markets: Vec<Market>,
}

impl CreateProgramInput {
    /// The command this input asks for.
    pub fn parse(self, path: &str) -> ApiResult<Command> {
        let markets = markets(&self.markets);
        if markets.is_empty() {
            return Err(ApiError::bad_input(
                format!("{path}.markets"),
                "a programme addresses at least one market; name one, CUSTOMER for a programme for customers",
            ));
        }
        Ok(Command::CreateProgram(domain::NewProgram {
            key: label(&format!("{path}.key"), &self.key)?,
            name: label(&format!("{path}.name"), &self.name)?,
            kind: self.kind.into(),
            markets,
        }))
    }
}

/// A customer joining or leaving a programme.
#[derive(InputObject, Debug)]
pub struct ProgramMembershipInput {
    /// The programme.
    pub program_id: ID,
    /// The customer.
    pub customer_id: ID,
    /// The day it joined or left (defaults to today, UTC): not in the future.
    pub date: Option<NaiveDate>,
}

impl ProgramMembershipInput {
    /// The enrolment (`join`) or leave this input asks for.
    pub fn parse(self, path: &str, today: NaiveDate, join: bool) -> ApiResult<Command> {
        let program = program_id(&self.program_id, &format!("{path}.programId"))?;
        let customer = stakeholder_id(&self.customer_id, &format!("{path}.customerId"))?;
        Ok(if join {
            let date = happened(path, self.date, today, "an enrolment")?;
            Command::EnrolInProgram { program, customer, date }
        } else {
            let date = happened(path, self.date, today, "a leave")?;
            Command::LeaveProgram { program, customer, date }
        })
    }
}
