//! Stakeholder types: the `Stakeholder` interface and one object type per kind, thin views over domain records.

use super::auth::Caller;
use super::enums::{CustomerStatus, EdgeDirection, ExitReason, Market, Mendelow, StakeholderKind};
use super::error::ApiResult;
use super::ids::GlobalId;
use super::loaders::{Loaders, RelationshipsOf};
use super::paging::{page_size, Counted, Window};
use super::relationships::{relationship_connection, RelationshipConnection, RelationshipFilter, RelationshipSort};
use super::strength::{RankedRelationship, RelationshipStrength};
use super::ApiContext;
use crate::domain::{self, KindDetails, RelationshipType, Stakeholder, StakeholderId};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Interface, Object, ID};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// What a caller who may not see a private stakeholder gets instead of its name and key.
const MASKED_NAME: &str = "Private stakeholder";

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

    /// The GraphQL object of the stakeholder's kind.
    pub fn into_node(self) -> StakeholderNode {
        match self.record.kind() {
            domain::StakeholderKind::Customer => StakeholderNode::Customer(Customer(self)),
            domain::StakeholderKind::Supplier => StakeholderNode::Supplier(Supplier(self)),
            domain::StakeholderKind::Distributor => StakeholderNode::Distributor(Distributor(self)),
            domain::StakeholderKind::Employee => StakeholderNode::Employee(Employee(self)),
            domain::StakeholderKind::Media => StakeholderNode::MediaOutlet(MediaOutlet(self)),
            domain::StakeholderKind::Government => StakeholderNode::GovernmentBody(GovernmentBody(self)),
        }
    }

    /// The kind-specific fields, unless masked.
    fn details(&self) -> Option<&KindDetails> {
        (!self.masked).then_some(&self.record.details)
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

/// A stakeholder: a customer, supplier, distributor, employee, media outlet or government body.
// Clippy reads the repeated `ty = "…"` of the interface's fields as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(Interface, Clone, Debug)]
#[graphql(
    name = "Stakeholder",
    field(name = "id", ty = "ID", desc = "Opaque global id."),
    field(name = "key", ty = "String", desc = "The caller's own unique key; masked for private stakeholders."),
    field(name = "name", ty = "String", desc = "Display name; masked for private stakeholders."),
    field(name = "kind", ty = "StakeholderKind", desc = "What it is."),
    field(name = "primary_market", ty = "Market", desc = "The market it belongs to first."),
    field(name = "markets", ty = "Vec<Market>", desc = "Every market it takes part in."),
    field(name = "power", ty = "f64", desc = "Power over the firm, in [0, 1]."),
    field(name = "interest", ty = "f64", desc = "Interest in the firm, in [0, 1]."),
    field(name = "mendelow", ty = "Mendelow", desc = "Mendelow quadrant from power and interest."),
    field(name = "private", ty = "bool", desc = "Visible in full only to editors and admins."),
    field(name = "masked", ty = "bool", desc = "True when private details are hidden from this caller."),
    field(name = "created_at", ty = "DateTime<Utc>", desc = "When it was created."),
    field(name = "updated_at", ty = "DateTime<Utc>", desc = "When it last changed."),
    field(name = "archived_at", ty = "Option<DateTime<Utc>>", desc = "When it was archived, if it was."),
    field(
        name = "relationships",
        ty = "ApiResult<RelationshipConnection>",
        desc = "Its relationships in both directions.",
        arg(name = "filter", ty = "Option<RelationshipFilter>"),
        arg(name = "order_by", ty = "Option<RelationshipSort>"),
        arg(name = "first", ty = "Option<i32>"),
        arg(name = "after", ty = "Option<String>")
    ),
    field(
        name = "strongest_relationships",
        ty = "ApiResult<Vec<RankedRelationship>>",
        desc = "Its strongest relationships as of `asOf` (default: now), strongest first.",
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
}

/// Declares one stakeholder object type with the interface's fields and its own.
macro_rules! stakeholder_object {
    ($(#[$doc:meta])* $name:ident { $($own:tt)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(pub StakeholderView);

        $(#[$doc])*
        #[Object]
        impl $name {
            /// Opaque global id.
            pub async fn id(&self) -> ID {
                GlobalId::Stakeholder(self.0.record.id).encode()
            }

            /// The caller's own unique key; masked for private stakeholders.
            async fn key(&self) -> String {
                if self.0.masked { MASKED_NAME.to_owned() } else { self.0.record.key.to_string() }
            }

            /// Display name; masked for private stakeholders.
            async fn name(&self) -> String {
                if self.0.masked { MASKED_NAME.to_owned() } else { self.0.record.name.to_string() }
            }

            /// What it is.
            async fn kind(&self) -> StakeholderKind {
                self.0.record.kind().into()
            }

            /// The market it belongs to first.
            async fn primary_market(&self) -> Market {
                self.0.record.primary_market().into()
            }

            /// Every market it takes part in.
            async fn markets(&self) -> Vec<Market> {
                self.0.record.markets().iter().map(Market::from).collect()
            }

            /// Power over the firm, in [0, 1].
            async fn power(&self) -> f64 {
                self.0.record.power.get()
            }

            /// Interest in the firm, in [0, 1].
            async fn interest(&self) -> f64 {
                self.0.record.interest.get()
            }

            /// Mendelow quadrant from power and interest.
            async fn mendelow(&self) -> Mendelow {
                self.0.record.mendelow().into()
            }

            /// Visible in full only to editors and admins.
            async fn private(&self) -> bool {
                self.0.record.private
            }

            /// True when private details are hidden from this caller.
            async fn masked(&self) -> bool {
                self.0.masked
            }

            /// When it was created.
            async fn created_at(&self) -> DateTime<Utc> {
                self.0.record.created_at
            }

            /// When it last changed.
            async fn updated_at(&self) -> DateTime<Utc> {
                self.0.record.updated_at
            }

            /// When it was archived, if it was.
            async fn archived_at(&self) -> Option<DateTime<Utc>> {
                self.0.record.archived_at
            }

            /// Its relationships in both directions.
            async fn relationships(
                &self,
                ctx: &Context<'_>,
                filter: Option<RelationshipFilter>,
                order_by: Option<RelationshipSort>,
                first: Option<i32>,
                after: Option<String>,
            ) -> ApiResult<RelationshipConnection> {
                relationship_connection(ctx, &self.0, filter, order_by, first, after).await
            }

            /// Its strongest relationships as of `asOf` (default: now), strongest first; ties go to the lower relationship id.
            async fn strongest_relationships(
                &self,
                ctx: &Context<'_>,
                first: Option<i32>,
                as_of: Option<DateTime<Utc>>,
            ) -> ApiResult<Vec<RankedRelationship>> {
                strongest_relationships(ctx, &self.0, first, as_of).await
            }

            $($own)*
        }
    };
}

/// The strongest relationships of `stakeholder`; withheld when the caller sees it masked.
async fn strongest_relationships(
    ctx: &Context<'_>,
    stakeholder: &StakeholderView,
    first: Option<i32>,
    as_of: Option<DateTime<Utc>>,
) -> ApiResult<Vec<RankedRelationship>> {
    let first = page_size(first, ctx.data_unchecked::<ApiContext>().limits.max_page_size)?;
    if stakeholder.masked {
        return Ok(Vec::new());
    }
    let id = stakeholder.record.id;
    let as_of = Some(as_of.unwrap_or_else(Utc::now));
    let relationships = ctx.data_unchecked::<Loaders>().load_one(RelationshipsOf(id)).await?.unwrap_or_default();
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

        /// Why the customer left, once it has.
        async fn exit_reason(&self) -> Option<ExitReason> {
            self.customer().and_then(|customer| customer.exit).map(|exit| exit.reason.into())
        }

        /// When the customer left, once it has.
        async fn exit_date(&self) -> Option<NaiveDate> {
            self.customer().and_then(|customer| customer.exit).map(|exit| exit.date)
        }

        /// The employee on this customer's oldest MANAGES relationship (archived or not: see its `archivedAt`);
        /// withheld for a customer the caller sees masked.
        async fn relationship_manager(&self, ctx: &Context<'_>) -> ApiResult<Option<Employee>> {
            if self.0.masked {
                return Ok(None);
            }
            let id = self.0.record.id;
            let relationships = ctx.data_unchecked::<Loaders>().load_one(RelationshipsOf(id)).await?;
            let manager = relationships
                .unwrap_or_default()
                .iter()
                .find(|relationship| relationship.rel_type == RelationshipType::Manages && relationship.to == id)
                .map(|relationship| relationship.from);
            let Some(manager) = manager else { return Ok(None) };
            Ok(load_stakeholder(ctx, manager).await?.and_then(|node| match node {
                StakeholderNode::Employee(employee) => Some(employee),
                _ => None,
            }))
        }
    }
);

impl Customer {
    fn customer(&self) -> Option<&domain::CustomerDetails> {
        match self.0.details() {
            Some(KindDetails::Customer(customer)) => Some(customer),
            _ => None,
        }
    }
}

stakeholder_object!(
    /// A supplier (supplier and alliance market).
    Supplier {
        /// What it supplies.
        async fn category(&self) -> Option<String> {
            match self.0.details() {
                Some(KindDetails::Supplier { category }) => category.as_ref().map(ToString::to_string),
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
            match self.0.details() {
                Some(KindDetails::Distributor { channel, .. }) => channel.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// Where it operates.
        async fn region(&self) -> Option<String> {
            match self.0.details() {
                Some(KindDetails::Distributor { region, .. }) => region.as_ref().map(ToString::to_string),
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
            match self.0.details() {
                Some(KindDetails::Employee { role, .. }) => role.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// Department.
        async fn department(&self) -> Option<String> {
            match self.0.details() {
                Some(KindDetails::Employee { department, .. }) => department.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// A candidate, not yet employed.
        async fn candidate(&self) -> Option<bool> {
            match self.0.details() {
                Some(KindDetails::Employee { candidate, .. }) => Some(*candidate),
                _ => None,
            }
        }

        /// The customers this employee manages, by customer id; withheld for an employee the caller sees masked.
        async fn managed_customers(
            &self,
            ctx: &Context<'_>,
            first: Option<i32>,
            after: Option<String>,
        ) -> ApiResult<Connection<String, Customer, Counted>> {
            let first = page_size(first, ctx.data_unchecked::<ApiContext>().limits.max_page_size)?;
            if self.0.masked {
                return Ok(Connection::with_additional_fields(false, false, Counted::default()));
            }
            let id = self.0.record.id;
            let relationships = ctx.data_unchecked::<Loaders>().load_one(RelationshipsOf(id)).await?;
            let mut customers: Vec<StakeholderId> = relationships
                .unwrap_or_default()
                .iter()
                .filter(|relationship| relationship.rel_type == RelationshipType::Manages && relationship.from == id)
                .map(|relationship| relationship.to)
                .collect();
            customers.sort_unstable();
            customers.dedup();
            let window = Window::of(MANAGED_CUSTOMERS, customers.len(), first, after.as_deref())?;
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
            match self.0.details() {
                Some(KindDetails::Media { outlet, .. }) => outlet.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// Audience size.
        async fn reach(&self) -> Option<u64> {
            match self.0.details() {
                Some(KindDetails::Media { reach, .. }) => *reach,
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
            match self.0.details() {
                Some(KindDetails::Government { agency, .. }) => agency.as_ref().map(ToString::to_string),
                _ => None,
            }
        }

        /// Jurisdiction.
        async fn jurisdiction(&self) -> Option<String> {
            match self.0.details() {
                Some(KindDetails::Government { jurisdiction, .. }) => jurisdiction.as_ref().map(ToString::to_string),
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
