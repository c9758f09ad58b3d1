//! Stakeholder types: the `Stakeholder` interface, one object type per kind (thin views over domain records), and
//! `MaskedStakeholder`, what a caller who may not see a private stakeholder gets instead.
//!
//! A masked stakeholder is its own type rather than a kind's object with empty fields: `__typename` of a kind's
//! object would name the kind. Every field of the interface but `id` and `masked` is nullable, and null on a
//! masked stakeholder; the kinds' objects keep them non-null (they are never masked).

use super::auth::Caller;
use super::enums::{CustomerStatus, EdgeDirection, ExitReason, Market, Mendelow, StakeholderKind};
use super::error::ApiResult;
use super::ids::GlobalId;
use super::loaders::Loaders;
use super::paging::{page_size, Counted, PageRequest, Window};
use super::relationships::{
    relationship_connection, relationships_of, relationships_of_where, RelationshipConnection, RelationshipFilter,
    RelationshipSort,
};
use super::strength::{RankedRelationship, RelationshipStrength};
use super::ApiContext;
use crate::domain::{self, KindDetails, RelationshipType, Stakeholder, StakeholderId};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Interface, Object, ID};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// A stakeholder as one caller may see it: private stakeholders are masked for viewers and anonymous callers.
#[derive(Clone, Debug)]
pub struct StakeholderView {
    record: Arc<Stakeholder>,
    masked: bool,
}

impl StakeholderView {
    /// The view of `record` for `caller`.
    pub fn new(record: Arc<Stakeholder>, caller: Caller) -> Self {
        let masked = record.private && !caller.sees_private();
        Self { record, masked }
    }

    /// The record, whatever the caller may see of it.
    pub fn record(&self) -> &Stakeholder {
        &self.record
    }

    /// Whether the caller sees this stakeholder masked.
    pub fn masked(&self) -> bool {
        self.masked
    }

    /// The GraphQL object: [`MaskedStakeholder`] when masked, else the object of the stakeholder's kind.
    pub fn into_node(self) -> StakeholderNode {
        if self.masked {
            return StakeholderNode::MaskedStakeholder(MaskedStakeholder(self.record.id));
        }
        let record = self.record;
        match record.kind() {
            domain::StakeholderKind::Customer => StakeholderNode::Customer(Customer(record)),
            domain::StakeholderKind::Supplier => StakeholderNode::Supplier(Supplier(record)),
            domain::StakeholderKind::Distributor => StakeholderNode::Distributor(Distributor(record)),
            domain::StakeholderKind::Employee => StakeholderNode::Employee(Employee(record)),
            domain::StakeholderKind::Media => StakeholderNode::MediaOutlet(MediaOutlet(record)),
            domain::StakeholderKind::Government => StakeholderNode::GovernmentBody(GovernmentBody(record)),
        }
    }
}

/// Loads stakeholders by id through the DataLoader, in the order given; ids not found are left out.
pub async fn load_stakeholders(ctx: &Context<'_>, ids: &[StakeholderId]) -> ApiResult<Vec<StakeholderNode>> {
    let caller = Caller::of(ctx);
    let found: HashMap<StakeholderId, Arc<Stakeholder>> =
        ctx.data_unchecked::<Loaders>().load_many(ids.iter().copied()).await?;
    Ok(ids
        .iter()
        .filter_map(|id| found.get(id))
        .map(|record| StakeholderView::new(record.clone(), caller).into_node())
        .collect())
}

/// Loads one stakeholder by id through the DataLoader.
pub async fn load_stakeholder(ctx: &Context<'_>, id: StakeholderId) -> ApiResult<Option<StakeholderNode>> {
    Ok(load_stakeholders(ctx, &[id]).await?.into_iter().next())
}

/// A stakeholder: a customer, supplier, distributor, employee, media outlet or government body, or a private one
/// this caller may not see (`MaskedStakeholder`: only its id, and `masked: true`; every other field is null).
// Clippy reads the repeated `ty = "…"` of the interface's fields as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(Interface, Clone, Debug)]
#[graphql(
    name = "Stakeholder",
    field(name = "id", ty = "ID", desc = "Opaque global id."),
    field(
        name = "masked",
        ty = "bool",
        desc = "True when this caller may not see this private stakeholder: then every other field but `id` is null."
    ),
    field(name = "key", ty = "Option<String>", desc = "The caller's own unique key; null when masked."),
    field(name = "name", ty = "Option<String>", desc = "Display name; null when masked."),
    field(name = "kind", ty = "Option<StakeholderKind>", desc = "What it is; null when masked."),
    field(name = "primary_market", ty = "Option<Market>", desc = "The market it belongs to first; null when masked."),
    field(name = "markets", ty = "Option<Vec<Market>>", desc = "Every market it takes part in; null when masked."),
    field(name = "power", ty = "Option<f64>", desc = "Power over the firm, in [0, 1]; null when masked."),
    field(name = "interest", ty = "Option<f64>", desc = "Interest in the firm, in [0, 1]; null when masked."),
    field(
        name = "mendelow",
        ty = "Option<Mendelow>",
        desc = "Mendelow quadrant from power and interest; null when masked."
    ),
    field(
        name = "private",
        ty = "Option<bool>",
        desc = "Visible in full only to editors and admins; null when masked."
    ),
    field(name = "created_at", ty = "Option<DateTime<Utc>>", desc = "When it was created; null when masked."),
    field(name = "updated_at", ty = "Option<DateTime<Utc>>", desc = "When it last changed; null when masked."),
    field(
        name = "archived_at",
        ty = "Option<DateTime<Utc>>",
        desc = "When it was archived, if it was; null when masked."
    ),
    field(
        name = "relationships",
        ty = "Option<RelationshipConnection>",
        desc = "Its relationships in both directions that this caller may see; null when masked.",
        arg(name = "filter", ty = "Option<RelationshipFilter>"),
        arg(name = "order_by", ty = "Option<RelationshipSort>"),
        arg(name = "first", ty = "Option<i32>"),
        arg(name = "after", ty = "Option<String>"),
        arg(name = "last", ty = "Option<i32>"),
        arg(name = "before", ty = "Option<String>")
    ),
    field(
        name = "strongest_relationships",
        ty = "Option<Vec<RankedRelationship>>",
        desc = "Its strongest relationships that this caller may see as of `asOf` (default: now), strongest first; null when masked.",
        arg(name = "first", ty = "Option<i32>"),
        arg(name = "as_of", ty = "Option<DateTime<Utc>>")
    )
)]
pub enum StakeholderNode {
    /// A customer.
    Customer(Customer),
    /// A supplier.
    Supplier(Supplier),
    /// A distributor.
    Distributor(Distributor),
    /// An employee.
    Employee(Employee),
    /// A media outlet.
    MediaOutlet(MediaOutlet),
    /// A government body.
    GovernmentBody(GovernmentBody),
    /// A private stakeholder this caller may not see.
    MaskedStakeholder(MaskedStakeholder),
}

/// A private stakeholder this caller may not see: only its id. Its type says nothing of its kind.
#[derive(Clone, Debug)]
pub struct MaskedStakeholder(StakeholderId);

/// A private stakeholder this caller may not see (a viewer, or an anonymous caller): only its opaque id and
/// `masked: true`; every other field is null. Its relationships are withheld from this caller everywhere.
#[Object]
impl MaskedStakeholder {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        GlobalId::Stakeholder(self.0).encode()
    }

    /// Always true.
    async fn masked(&self) -> bool {
        true
    }

    /// Null: masked.
    async fn key(&self) -> Option<String> {
        None
    }

    /// Null: masked.
    async fn name(&self) -> Option<String> {
        None
    }

    /// Null: masked.
    async fn kind(&self) -> Option<StakeholderKind> {
        None
    }

    /// Null: masked.
    async fn primary_market(&self) -> Option<Market> {
        None
    }

    /// Null: masked.
    async fn markets(&self) -> Option<Vec<Market>> {
        None
    }

    /// Null: masked.
    async fn power(&self) -> Option<f64> {
        None
    }

    /// Null: masked.
    async fn interest(&self) -> Option<f64> {
        None
    }

    /// Null: masked.
    async fn mendelow(&self) -> Option<Mendelow> {
        None
    }

    /// Null: masked.
    async fn private(&self) -> Option<bool> {
        None
    }

    /// Null: masked.
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// Null: masked.
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// Null: masked.
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// Null: masked (its relationships are withheld).
    #[allow(unused_variables, clippy::too_many_arguments)]
    async fn relationships(
        &self,
        filter: Option<RelationshipFilter>,
        order_by: Option<RelationshipSort>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Option<RelationshipConnection>> {
        Ok(None)
    }

    /// Null: masked (its relationships are withheld).
    #[allow(unused_variables)]
    async fn strongest_relationships(
        &self,
        first: Option<i32>,
        as_of: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<Option<Vec<RankedRelationship>>> {
        Ok(None)
    }
}

/// Declares one stakeholder object type with the interface's fields and its own.
macro_rules! stakeholder_object {
    ($(#[$doc:meta])* $name:ident { $($own:tt)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(Arc<Stakeholder>);

        $(#[$doc])*
        #[Object]
        impl $name {
            /// Opaque global id.
            pub async fn id(&self) -> ID {
                GlobalId::Stakeholder(self.0.id).encode()
            }

            /// False: a masked stakeholder is a `MaskedStakeholder`.
            async fn masked(&self) -> bool {
                false
            }

            /// The caller's own unique key.
            async fn key(&self) -> String {
                self.0.key.to_string()
            }

            /// Display name.
            async fn name(&self) -> String {
                self.0.name.to_string()
            }

            /// What it is.
            async fn kind(&self) -> StakeholderKind {
                self.0.kind().into()
            }

            /// The market it belongs to first.
            async fn primary_market(&self) -> Market {
                self.0.primary_market().into()
            }

            /// Every market it takes part in.
            async fn markets(&self) -> Vec<Market> {
                self.0.markets().iter().map(Market::from).collect()
            }

            /// Power over the firm, in [0, 1].
            async fn power(&self) -> f64 {
                self.0.power.get()
            }

            /// Interest in the firm, in [0, 1].
            async fn interest(&self) -> f64 {
                self.0.interest.get()
            }

            /// Mendelow quadrant from power and interest.
            async fn mendelow(&self) -> Mendelow {
                self.0.mendelow().into()
            }

            /// Visible in full only to editors and admins.
            async fn private(&self) -> bool {
                self.0.private
            }

            /// When it was created.
            async fn created_at(&self) -> DateTime<Utc> {
                self.0.created_at
            }

            /// When it last changed.
            async fn updated_at(&self) -> DateTime<Utc> {
                self.0.updated_at
            }

            /// When it was archived, if it was.
            async fn archived_at(&self) -> Option<DateTime<Utc>> {
                self.0.archived_at
            }

            /// Its relationships in both directions that this caller may see.
            #[allow(clippy::too_many_arguments)]
            async fn relationships(
                &self,
                ctx: &Context<'_>,
                filter: Option<RelationshipFilter>,
                order_by: Option<RelationshipSort>,
                first: Option<i32>,
                after: Option<String>,
                last: Option<i32>,
                before: Option<String>,
            ) -> async_graphql::Result<RelationshipConnection> {
                // `async_graphql::Result`, not `ApiResult`: the interface's nullable field takes it as a subtype.
                let page = PageRequest::read(ctx, first, after, last, before)?;
                Ok(relationship_connection(ctx, self.0.id, filter, order_by, page).await?)
            }

            /// Its strongest relationships that this caller may see as of `asOf` (default: now), strongest first;
            /// ties go to the lower relationship id.
            async fn strongest_relationships(
                &self,
                ctx: &Context<'_>,
                first: Option<i32>,
                as_of: Option<DateTime<Utc>>,
            ) -> async_graphql::Result<Vec<RankedRelationship>> {
                Ok(strongest_relationships(ctx, self.0.id, first, as_of).await?)
            }

            $($own)*
        }
    };
}

/// The strongest relationships of stakeholder `id` that the caller may see.
async fn strongest_relationships(
    ctx: &Context<'_>,
    id: StakeholderId,
    first: Option<i32>,
    as_of: Option<DateTime<Utc>>,
) -> ApiResult<Vec<RankedRelationship>> {
    let first = page_size(first, "first", ctx.data_unchecked::<ApiContext>().limits.max_page_size)?;
    let as_of = Some(as_of.unwrap_or_else(Utc::now));
    let relationships = relationships_of(ctx, id).await?;
    let strengths = relationships.iter().map(|relationship| async move {
        let strength = RelationshipStrength::load(ctx, relationship.clone(), as_of).await?;
        Ok::<_, crate::api::ApiError>(RankedRelationship { counterpart: relationship.other_end(id), strength })
    });
    let mut ranked = futures_util::future::try_join_all(strengths).await?;
    ranked.sort_by(|a, b| {
        b.strength
            .value()
            .total_cmp(&a.strength.value())
            .then(a.strength.relationship_id().cmp(&b.strength.relationship_id()))
    });
    ranked.truncate(first);
    Ok(ranked)
}

stakeholder_object!(
    /// A customer (customer market).
    Customer {
        /// Lifecycle status.
        async fn status(&self) -> Option<CustomerStatus> {
            self.customer().map(|customer| customer.status.into())
        }

        /// Segment.
        async fn segment(&self) -> Option<String> {
            self.customer().and_then(|customer| customer.segment.as_ref()).map(ToString::to_string)
        }

        /// Lifetime value; the profit lost if the customer exits.
        async fn lifetime_value(&self) -> Option<f64> {
            self.customer().and_then(|customer| customer.lifetime_value).map(|value| value.get())
        }

        /// What keeping this customer would cost, as recorded for it (its churn risk falls back on its segment's
        /// configured cost); null when not recorded.
        async fn retention_cost(&self) -> Option<f64> {
            self.customer().and_then(|customer| customer.retention_cost).map(|cost| cost.get())
        }

        /// What the customer perceives it gets and gives, and the CPV of it; null when not recorded.
        async fn perceived_value(&self) -> Option<PerceivedValueView> {
            self.customer().and_then(|customer| customer.perceived_value).map(PerceivedValueView)
        }

        /// Why the customer left, once it has.
        async fn exit_reason(&self) -> Option<ExitReason> {
            self.customer().and_then(|customer| customer.exit).map(|exit| exit.reason.into())
        }

        /// When the customer left, once it has.
        async fn exit_date(&self) -> Option<NaiveDate> {
            self.customer().and_then(|customer| customer.exit).map(|exit| exit.date)
        }

        /// The day it became a customer: as recorded, or the day its record was created; null for a prospect that
        /// never was one.
        async fn customer_since(&self) -> Option<NaiveDate> {
            self.customer().and_then(|customer| customer.customer_since(self.0.created_at))
        }

        /// How likely it is to leave, and why (docs/models.md, "Churn risk"): a weighted mean of six signals read
        /// from its principal relationship (its manager's, otherwise its strongest) as the caller may see it. Null
        /// for a prospect or a customer who has left. A forecast in the complexity model, counted with `fallsBelow`.
        async fn churn_risk(&self, ctx: &Context<'_>) -> ApiResult<Option<super::churn::ChurnRiskView>> {
            super::churn::churn_risk(ctx, &self.0).await
        }

        /// Its memberships of relationship-marketing programmes, in the order they began (at most 200), each with
        /// its programme and the days it joined and left.
        async fn programs(
            &self,
            ctx: &Context<'_>,
            first: Option<i32>,
            after: Option<String>,
            last: Option<i32>,
            before: Option<String>,
        ) -> ApiResult<Connection<String, super::programs::ProgramMembership, Counted>> {
            super::programs::memberships(&self.0, PageRequest::read(ctx, first, after, last, before)?)
        }

        /// Its exits and win-backs, oldest first.
        async fn lifecycle(&self) -> Vec<LifecycleChange> {
            self.customer().map(|customer| customer.lifecycle().iter().map(LifecycleChange::of).collect()).unwrap_or_default()
        }

        /// The employee on this customer's oldest MANAGES relationship that the caller may see (archived or not:
        /// see its `archivedAt`).
        async fn relationship_manager(&self, ctx: &Context<'_>) -> ApiResult<Option<Employee>> {
            let id = self.0.id;
            let manages = |relationship: &domain::Relationship| {
                relationship.rel_type == RelationshipType::Manages && relationship.to == id
            };
            let manager = relationships_of_where(ctx, id, manages).await?.first().map(|relationship| relationship.from);
            let Some(manager) = manager else { return Ok(None) };
            Ok(load_stakeholder(ctx, manager).await?.and_then(|node| match node {
                StakeholderNode::Employee(employee) => Some(employee),
                _ => None,
            }))
        }
    }
);

/// Customer perceived value: what a customer gets for what it gives, in one currency.
pub struct PerceivedValueView(domain::PerceivedValue);

#[Object(name = "PerceivedValue")]
impl PerceivedValueView {
    /// The value of the core product or service.
    async fn core_value(&self) -> f64 {
        self.0.core_value.get()
    }

    /// The value of the added services.
    async fn services_value(&self) -> f64 {
        self.0.services_value.get()
    }

    /// The price paid.
    async fn price(&self) -> f64 {
        self.0.price.get()
    }

    /// What the relationship costs the customer.
    async fn relationship_costs(&self) -> f64 {
        self.0.relationship_costs.get()
    }

    /// `(coreValue + servicesValue) / (price + relationshipCosts)`: above 1 the customer gets more than it gives.
    async fn cpv(&self) -> f64 {
        self.0.cpv()
    }
}

impl Customer {
    fn customer(&self) -> Option<&domain::CustomerDetails> {
        match &self.0.details {
            KindDetails::Customer(customer) => Some(customer),
            _ => None,
        }
    }
}

impl Customer {
    /// The view of a customer record the caller may see in full (one it may not is masked instead: check first).
    pub(crate) fn of(record: Arc<Stakeholder>) -> Self {
        Self(record)
    }
}

/// One dated change of a customer's lifecycle.
#[derive(async_graphql::SimpleObject, Debug, Clone, PartialEq)]
pub struct LifecycleChange {
    /// The day it happened.
    pub date: NaiveDate,
    /// What happened.
    pub change: LifecycleChangeKind,
    /// Why the customer left, for an exit.
    pub reason: Option<ExitReason>,
}

/// What changed in a customer's lifecycle.
#[derive(async_graphql::Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum LifecycleChangeKind {
    /// The customer left.
    Exit,
    /// The customer, having left, came back.
    WinBack,
}

impl LifecycleChange {
    fn of(event: &domain::LifecycleEvent) -> Self {
        match *event {
            domain::LifecycleEvent::Exit { reason, date } => {
                Self { date, change: LifecycleChangeKind::Exit, reason: Some(reason.into()) }
            }
            domain::LifecycleEvent::WinBack { date } => {
                Self { date, change: LifecycleChangeKind::WinBack, reason: None }
            }
        }
    }
}

stakeholder_object!(
    /// A supplier (supplier and alliance market).
    Supplier {
        /// What it supplies.
        async fn category(&self) -> Option<String> {
            match &self.0.details {
                KindDetails::Supplier { category } => category.as_ref().map(ToString::to_string),
                _ => None,
            }
        }
    }
);

stakeholder_object!(
    /// A distributor: wholesaler, retailer or agent (referral market).
    Distributor {
        /// Its channel: wholesale, retail, agent, online.
        async fn channel(&self) -> Option<String> {
            match &self.0.details {
                KindDetails::Distributor { channel, .. } => channel.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// Where it operates.
        async fn region(&self) -> Option<String> {
            match &self.0.details {
                KindDetails::Distributor { region, .. } => region.as_ref().map(ToString::to_string),
                _ => None,
            }
        }
    }
);

/// Name of the managed-customers list, which its cursors are bound to.
const MANAGED_CUSTOMERS: &str = "managedCustomers";

stakeholder_object!(
    /// An employee (internal market) or candidate (recruitment market).
    Employee {
        /// Job title.
        async fn role(&self) -> Option<String> {
            match &self.0.details {
                KindDetails::Employee { role, .. } => role.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// Department.
        async fn department(&self) -> Option<String> {
            match &self.0.details {
                KindDetails::Employee { department, .. } => department.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// A candidate, not yet employed.
        async fn candidate(&self) -> Option<bool> {
            match &self.0.details {
                KindDetails::Employee { candidate, .. } => Some(*candidate),
                _ => None,
            }
        }

        /// Its portfolio as a relationship manager: the customers it manages, their mean strength, how many are at
        /// risk of leaving, the lifetime value it holds and the value at risk, and what the firm's reach loses if
        /// it leaves. An analysis in the complexity model (it computes every managed customer's churn risk).
        async fn portfolio(
            &self,
            ctx: &Context<'_>,
            #[graphql(default = 0.5, desc = "The churn risk from which a customer counts as at risk, in [0, 1].")]
            at_risk_above: f64,
        ) -> ApiResult<super::churn::PortfolioView> {
            super::churn::portfolio(ctx, &self.0, at_risk_above).await
        }

        /// The customers this employee manages that the caller may see, by customer id.
        async fn managed_customers(
            &self,
            ctx: &Context<'_>,
            first: Option<i32>,
            after: Option<String>,
            last: Option<i32>,
            before: Option<String>,
        ) -> ApiResult<Connection<String, Customer, Counted>> {
            let page = PageRequest::read(ctx, first, after, last, before)?;
            let id = self.0.id;
            let manages = |relationship: &domain::Relationship| {
                relationship.rel_type == RelationshipType::Manages && relationship.from == id
            };
            let mut customers: Vec<StakeholderId> =
                relationships_of_where(ctx, id, manages).await?.iter().map(|relationship| relationship.to).collect();
            customers.sort_unstable();
            customers.dedup();
            let window = Window::of(MANAGED_CUSTOMERS, customers.len(), &page)?;
            let nodes = load_stakeholders(ctx, &customers[window.start..window.end]).await?;
            let mut connection = Connection::with_additional_fields(
                window.has_previous_page,
                window.has_next_page,
                Counted { total_count: customers.len() as u64 },
            );
            for (offset, node) in nodes.into_iter().enumerate() {
                if let StakeholderNode::Customer(customer) = node {
                    connection.edges.push(Edge::new(Window::cursor(MANAGED_CUSTOMERS, window.start + offset), customer));
                }
            }
            Ok(connection)
        }
    }
);

stakeholder_object!(
    /// A media outlet (influence market).
    MediaOutlet {
        /// Name of the outlet.
        async fn outlet(&self) -> Option<String> {
            match &self.0.details {
                KindDetails::Media { outlet, .. } => outlet.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// Audience size.
        async fn reach(&self) -> Option<u64> {
            match &self.0.details {
                KindDetails::Media { reach, .. } => *reach,
                _ => None,
            }
        }
    }
);

stakeholder_object!(
    /// A government body or regulator (influence market).
    GovernmentBody {
        /// Agency.
        async fn agency(&self) -> Option<String> {
            match &self.0.details {
                KindDetails::Government { agency, .. } => agency.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// Jurisdiction.
        async fn jurisdiction(&self) -> Option<String> {
            match &self.0.details {
                KindDetails::Government { jurisdiction, .. } => jurisdiction.as_ref().map(ToString::to_string),
                _ => None,
            }
        }
    }
);

/// Which way an edge points from `from`'s point of view.
pub fn edge_direction(relationship: &domain::Relationship, seen_from: StakeholderId) -> EdgeDirection {
    if relationship.from == seen_from {
        EdgeDirection::Outgoing
    } else {
        EdgeDirection::Incoming
    }
}
