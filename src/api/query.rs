//! The query root: node lookup, stakeholder listings and single records.

use super::aggregates::StakeholderListing;
use super::auth::{Caller, Need};
use super::enums::{to_domain, CustomerStatus, Market, Mendelow, SortDirection, StakeholderKind};
use super::error::{ApiError, ApiResult};
use super::ids::{decode_stakeholder_cursor, encode_stakeholder_cursor, relationship_id, stakeholder_id, GlobalId};
use super::loaders::Loaders;
use super::paging::PageRequest;
use super::relationships::{load_relationship, Interaction, Relationship};
use super::stakeholders::{
    load_stakeholder, Customer, Distributor, Employee, GovernmentBody, MaskedStakeholder, MediaOutlet, StakeholderNode,
    StakeholderView, Supplier,
};
use super::ApiContext;
use crate::domain::MarketSet;
use crate::store::{
    StakeholderCursor, StakeholderFilter as StoreFilter, StakeholderOrder as StoreOrder, StakeholderQuery,
    StakeholderSort,
};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, InputObject, Interface, Object, SimpleObject, ID};
use std::sync::Arc;

/// Anything with a global id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
pub enum Node {
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
    /// A private stakeholder the caller may not see.
    MaskedStakeholder(MaskedStakeholder),
    /// A relationship.
    Relationship(Relationship),
    /// An interaction.
    Interaction(Interaction),
    /// A relationship-marketing programme.
    Program(super::programs::Program),
}

impl From<StakeholderNode> for Node {
    fn from(node: StakeholderNode) -> Self {
        match node {
            StakeholderNode::Customer(object) => Node::Customer(object),
            StakeholderNode::Supplier(object) => Node::Supplier(object),
            StakeholderNode::Distributor(object) => Node::Distributor(object),
            StakeholderNode::Employee(object) => Node::Employee(object),
            StakeholderNode::MediaOutlet(object) => Node::MediaOutlet(object),
            StakeholderNode::GovernmentBody(object) => Node::GovernmentBody(object),
            StakeholderNode::MaskedStakeholder(object) => Node::MaskedStakeholder(object),
        }
    }
}

/// Loads the node a global id names, through the DataLoader; `field` is where the id came from. A relationship
/// the caller may not see, and an interaction on one, answer like ids that do not exist: null.
async fn load_node(ctx: &Context<'_>, id: &ID, field: &str) -> ApiResult<Option<Node>> {
    let loaders = ctx.data_unchecked::<Loaders>();
    Ok(match GlobalId::decode(id, field)? {
        GlobalId::Stakeholder(id) => load_stakeholder(ctx, id).await?.map(Node::from),
        GlobalId::Relationship(id) => load_relationship(ctx, id).await?.map(Node::Relationship),
        GlobalId::Interaction(id) => {
            let Some(interaction) = loaders.load_one(id).await? else { return Ok(None) };
            load_relationship(ctx, interaction.relationship).await?.map(|_| Node::Interaction(Interaction(interaction)))
        }
        GlobalId::Program(id) => super::programs::load_program(ctx, id).await?.map(Node::Program),
    })
}

/// Which stakeholders to list; every given criterion must hold, a list matches any of its values.
#[derive(InputObject, Default, Debug)]
pub struct StakeholderFilter {
    /// Any of these kinds.
    pub kinds: Option<Vec<StakeholderKind>>,
    /// Taking part in any of these markets.
    pub markets: Option<Vec<Market>>,
    /// Name or key contains this text (case-insensitive for ASCII letters).
    pub search: Option<String>,
    /// Customers with any of these lifecycle statuses.
    pub status: Option<Vec<CustomerStatus>>,
    /// In any of these Mendelow quadrants.
    pub mendelow: Option<Vec<Mendelow>>,
    /// Include archived stakeholders (left out by default).
    #[graphql(default = false)]
    pub include_archived: bool,
}

/// The field a stakeholder listing is sorted by.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
#[graphql(remote = "crate::store::StakeholderSort")]
pub enum StakeholderSortField {
    /// Creation order.
    #[default]
    Id,
    /// Name.
    Name,
    /// Creation time.
    CreatedAt,
    /// Power.
    Power,
    /// Interest.
    Interest,
}

/// Sort order of a stakeholder listing; ties always go to the lower id.
#[derive(InputObject, Debug, Default)]
pub struct StakeholderOrder {
    /// Sort field.
    #[graphql(default)]
    pub field: StakeholderSortField,
    /// Direction.
    #[graphql(default)]
    pub direction: SortDirection,
}

/// How much the graph holds.
#[derive(SimpleObject)]
pub struct GraphCounts {
    /// Stakeholders, archived included.
    pub stakeholders: u64,
    /// Relationships.
    pub relationships: u64,
    /// Interactions.
    pub interactions: u64,
    /// Change-log entries.
    pub changes: u64,
}

impl From<crate::store::GraphCounts> for GraphCounts {
    fn from(counts: crate::store::GraphCounts) -> Self {
        let crate::store::GraphCounts { stakeholders, relationships, interactions, changes } = counts;
        Self { stakeholders, relationships, interactions, changes }
    }
}

/// Longest accepted search text.
const MAX_SEARCH_CHARS: usize = 200;

/// The store query for a page of the stakeholder listing. A page read backward is read forward in the reverse
/// order (ties go by id in the same direction as the order, so the reverse is exact): its cursor becomes the
/// reverse listing's `after`, and the caller turns the rows back round.
fn store_query(
    filter: StakeholderFilter,
    order: StakeholderOrder,
    page: &PageRequest,
    caller: Caller,
    with_total: bool,
) -> ApiResult<StakeholderQuery> {
    let argument = page.cursor_argument();
    let backward = page.backward();
    let cursor = page.cursor.as_deref().map(|cursor| decode_stakeholder_cursor(cursor, argument)).transpose()?;
    // A cursor of this listing in its order, turned round with it.
    let cursor = cursor.map(|cursor| StakeholderCursor { descending: cursor.descending != backward, ..cursor });
    let search = match filter.search.as_deref().map(str::trim) {
        Some(text) if text.chars().count() > MAX_SEARCH_CHARS => {
            return Err(ApiError::bad_input(
                "filter.search",
                format!("is longer than {MAX_SEARCH_CHARS} characters; search for a shorter part of the name or key"),
            ))
        }
        Some("") | None => None,
        Some(text) => Some(text.to_owned()),
    };
    let sort = StakeholderSort::from(order.field);
    let statuses: Vec<crate::domain::CustomerStatus> = to_domain(&filter.status.unwrap_or_default());
    // A listing would tell what a mask hides (that the row matches the filter, where it sorts, that it is not
    // archived): private stakeholders are left out of the listings of a caller who sees them masked.
    let exclude_private = !caller.sees_private();
    Ok(StakeholderQuery {
        filter: StoreFilter {
            kinds: to_domain(&filter.kinds.unwrap_or_default()),
            markets: MarketSet::of(to_domain::<Market, crate::domain::Market>(&filter.markets.unwrap_or_default())),
            search,
            statuses,
            mendelow: to_domain(&filter.mendelow.unwrap_or_default()),
            include_archived: filter.include_archived,
            exclude_private,
        },
        order: StoreOrder { field: sort, descending: (order.direction == SortDirection::Desc) != backward },
        first: page.count,
        after: cursor,
        with_total,
    })
}

/// Reads of stakeholders and relationships.
#[derive(Default)]
pub struct Query;

#[Object(name = "StakeholderQueries")]
impl Query {
    /// The node with this global id; null when there is none.
    #[graphql(guard = "Need::Read")]
    async fn node(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Node>> {
        load_node(ctx, &id, "id").await
    }

    /// The nodes with these global ids, in the same order; null where there is none.
    #[graphql(guard = "Need::Read")]
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> ApiResult<Vec<Option<Node>>> {
        let max = ctx.data_unchecked::<ApiContext>().limits.max_page_size;
        if ids.len() > max {
            return Err(ApiError::LimitExceeded {
                limit: "max_page_size",
                field: "ids".into(),
                message: format!("{} ids is more than {max}; ask for at most {max} at a time", ids.len()),
            });
        }
        let lookups =
            ids.iter().enumerate().map(|(index, id)| async move { load_node(ctx, id, &format!("ids.{index}")).await });
        futures_util::future::try_join_all(lookups).await
    }

    /// The stakeholder with this id; null when there is none.
    #[graphql(guard = "Need::Read")]
    async fn stakeholder(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, stakeholder_id(&id, "id")?).await
    }

    /// The stakeholder with this key; null when there is none, or it is private and the caller may not see it
    /// (a key names what a mask hides).
    #[graphql(guard = "Need::Read")]
    async fn stakeholder_by_key(&self, ctx: &Context<'_>, key: String) -> ApiResult<Option<StakeholderNode>> {
        let api = ctx.data_unchecked::<ApiContext>();
        let caller = Caller::of(ctx);
        let found = api.store.stakeholder_by_key(key.trim()).await?;
        Ok(found
            .filter(|stakeholder| !stakeholder.private || caller.sees_private())
            .map(|stakeholder| StakeholderView::new(Arc::new(stakeholder), caller).into_node()))
    }

    /// A page of stakeholders; private ones only for callers who may see them in full (editors and admins).
    #[graphql(guard = "Need::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn stakeholders(
        &self,
        ctx: &Context<'_>,
        filter: Option<StakeholderFilter>,
        order_by: Option<StakeholderOrder>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<Connection<String, StakeholderNode, StakeholderListing>> {
        let api = ctx.data_unchecked::<ApiContext>();
        let request = PageRequest::read(ctx, first, after, last, before)?;
        let caller = Caller::of(ctx);
        let with_total = ctx.look_ahead().field("totalCount").exists();
        let query =
            store_query(filter.unwrap_or_default(), order_by.unwrap_or_default(), &request, caller, with_total)?;
        // From the engine's records when they can answer it (the common listings), else from the store.
        let mut page = match api.engine.records().and_then(|records| records.list(&query)) {
            Some(page) => page?,
            None => api.store.list_stakeholders(&query).await?,
        };
        if request.backward() {
            // Read in the reverse order: turn the rows, and their cursors, back round.
            page.items.reverse();
            for (_, cursor) in &mut page.items {
                cursor.descending = !cursor.descending;
            }
        }
        let (has_previous_page, has_next_page) = request.page_info(page.has_next_page);
        let mut connection = Connection::with_additional_fields(
            has_previous_page,
            has_next_page,
            StakeholderListing { total_count: page.total_count.unwrap_or(0), filter: query.filter },
        );
        connection.edges.extend(page.items.into_iter().map(|(stakeholder, cursor)| {
            Edge::new(
                encode_stakeholder_cursor(&cursor),
                StakeholderView::new(Arc::new(stakeholder), caller).into_node(),
            )
        }));
        Ok(connection)
    }

    /// The relationship with this id; null when there is none, or the caller may not see it (it has an end the
    /// caller sees masked).
    #[graphql(guard = "Need::Read")]
    async fn relationship(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Relationship>> {
        load_relationship(ctx, relationship_id(&id, "id")?).await
    }

    /// How much of the graph the caller may see: for a caller who sees private stakeholders masked, only public
    /// stakeholders, the relationships between them and their interactions (change-log entries all count: each
    /// keeps its place in the feed).
    #[graphql(guard = "Need::Read")]
    async fn graph_counts(&self, ctx: &Context<'_>) -> ApiResult<GraphCounts> {
        let store = &ctx.data_unchecked::<ApiContext>().store;
        let counts = if Caller::of(ctx).sees_private() { store.counts().await? } else { store.public_counts().await? };
        Ok(counts.into())
    }
}
