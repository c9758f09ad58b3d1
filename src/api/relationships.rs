//! Relationship and interaction types, the connections that page through them, and which relationships a
//! caller may see.
//!
//! A relationship with an end the caller sees masked is withheld from that caller everywhere (the README's privacy
//! policy): every relationship this module hands out went through [`visible`], so a `Relationship` object only
//! ever exists for one the caller may see, and its interactions with it.

use super::auth::Caller;
use super::enums::{to_domain, Basis, Bond, Channel, Direction, EdgeDirection, Level, RelationshipType, Topic};
use super::error::ApiResult;
use super::ids::{decode_interaction_cursor, encode_interaction_cursor, GlobalId};
use super::loaders::{InteractionPageKey, Loaders};
use super::paging::{Counted, PageRequest, Window};
use super::stakeholders::{edge_direction, load_stakeholder, StakeholderNode};
use super::ApiContext;
use crate::domain::{self, RelationshipId, StakeholderId};
use crate::store::InteractionCursor;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, InputObject, Object, ID};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// A directed, typed relationship between two stakeholders.
#[derive(Clone, Debug)]
pub struct Relationship(pub domain::Relationship);

/// A directed, typed relationship between two stakeholders; `(from, to, type)` is unique.
#[Object]
impl Relationship {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        GlobalId::Relationship(self.0.id).encode()
    }

    /// What it is.
    #[graphql(name = "type")]
    async fn rel_type(&self) -> RelationshipType {
        self.0.rel_type.into()
    }

    /// Where it starts.
    async fn from(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.0.from).await
    }

    /// Where it ends.
    async fn to(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.0.to).await
    }

    /// Kotler's level.
    async fn level(&self) -> Level {
        self.0.level.into()
    }

    /// Kotler's level as a number, 1 (basic) to 5 (partnership).
    async fn level_rank(&self) -> i32 {
        i32::from(self.0.level.rank())
    }

    /// Bonds that tie it.
    async fn bonds(&self) -> Vec<Bond> {
        self.0.bonds.iter().map(Bond::from).collect()
    }

    /// Trust in [0, 1]; null when unknown.
    async fn trust(&self) -> Option<f64> {
        self.0.trust.map(|trust| trust.get())
    }

    /// Commitment in [0, 1]; null when unknown.
    async fn commitment(&self) -> Option<f64> {
        self.0.commitment.map(|commitment| commitment.get())
    }

    /// When it began.
    async fn since(&self) -> DateTime<Utc> {
        self.0.since
    }

    /// What it grew from, when known.
    async fn basis(&self) -> Option<Basis> {
        self.0.basis.map(Basis::from)
    }

    /// When it was first recorded.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Its strength as of `asOf` (default: now), with the components that explain it.
    async fn strength(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateTime<Utc>>,
    ) -> ApiResult<super::strength::RelationshipStrength> {
        super::strength::RelationshipStrength::load(ctx, self.0.clone(), as_of).await
    }

    /// Its interactions, newest first; with `topics`, only those about one of them (and `totalCount` counts only
    /// those).
    async fn interactions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        topics: Option<Vec<Topic>>,
    ) -> ApiResult<Connection<String, Interaction, Counted>> {
        let request = PageRequest::read(ctx, first, after, last, before)?;
        let argument = request.cursor_argument();
        let cursor = request.cursor.as_deref().map(|cursor| decode_interaction_cursor(cursor, argument)).transpose()?;
        let topics = domain::TopicSet::of(to_domain::<Topic, domain::Topic>(&topics.unwrap_or_default()));
        let (count, direction) = (request.count, request.direction);
        let key = InteractionPageKey { relationship: self.0.id, count, cursor, direction, topics };
        let page = ctx.data_unchecked::<Loaders>().load_one(key).await?.unwrap_or_default();
        let (has_previous_page, has_next_page) = request.page_info(page.has_more);
        let mut connection = Connection::with_additional_fields(
            has_previous_page,
            has_next_page,
            Counted { total_count: page.total_count },
        );
        connection.edges.extend(page.items.into_iter().map(|interaction| {
            let cursor = InteractionCursor { at_ms: interaction.at.timestamp_millis(), id: interaction.id };
            Edge::new(encode_interaction_cursor(cursor), Interaction(interaction))
        }));
        Ok(connection)
    }
}

/// The relationships of `relationships` the caller may see, in the same order: all of them for a caller who sees
/// private stakeholders; for anyone else, those whose two ends are public (an end that cannot be found counts as
/// hidden). One batched load of the ends, shared with every other resolver of the same level.
pub async fn visible(
    ctx: &Context<'_>,
    relationships: impl IntoIterator<Item = domain::Relationship>,
) -> ApiResult<Vec<domain::Relationship>> {
    let relationships: Vec<domain::Relationship> = relationships.into_iter().collect();
    if Caller::of(ctx).sees_private() || relationships.is_empty() {
        return Ok(relationships);
    }
    // The engine's records answer for live stakeholders (a bit each); the loaders for the rest (archived ones).
    let records = ctx.data_unchecked::<ApiContext>().engine.records();
    let known: Vec<[Option<bool>; 2]> = relationships
        .iter()
        .map(|relationship| {
            [relationship.from, relationship.to].map(|id| records.as_ref().and_then(|records| records.is_public(id)))
        })
        .collect();
    let unknown: HashSet<StakeholderId> = relationships
        .iter()
        .zip(&known)
        .flat_map(|(relationship, known)| [(relationship.from, known[0]), (relationship.to, known[1])])
        .filter_map(|(id, known)| known.is_none().then_some(id))
        .collect();
    let found = match unknown.is_empty() {
        true => Default::default(),
        false => ctx.data_unchecked::<Loaders>().load_many(unknown).await?,
    };
    let public = |id: StakeholderId, known: Option<bool>| {
        known.unwrap_or_else(|| found.get(&id).is_some_and(|stakeholder| !stakeholder.private))
    };
    Ok(relationships
        .into_iter()
        .zip(known)
        .filter(|(relationship, [from, to])| public(relationship.from, *from) && public(relationship.to, *to))
        .map(|(relationship, _)| relationship)
        .collect())
}

/// The relationship with this id, if it exists and the caller may see it (a withheld one answers like an id
/// that does not exist).
pub async fn load_relationship(ctx: &Context<'_>, id: RelationshipId) -> ApiResult<Option<Relationship>> {
    let found = ctx.data_unchecked::<Loaders>().load_one(id).await?;
    Ok(visible(ctx, found).await?.into_iter().next().map(Relationship))
}

/// Every relationship of `stakeholder` (both directions, in id order) the caller may see.
pub async fn relationships_of(ctx: &Context<'_>, stakeholder: StakeholderId) -> ApiResult<Vec<domain::Relationship>> {
    relationships_of_where(ctx, stakeholder, |_| true).await
}

/// The relationships of `stakeholder` (both directions, in id order) that satisfy `wanted` and the caller may see;
/// only those wanted are copied and have their ends looked up.
pub async fn relationships_of_where(
    ctx: &Context<'_>,
    stakeholder: StakeholderId,
    wanted: impl Fn(&domain::Relationship) -> bool,
) -> ApiResult<Vec<domain::Relationship>> {
    let wanted = ctx.data_unchecked::<Loaders>().relationships_of_where(stakeholder, wanted).await?;
    visible(ctx, wanted).await
}

/// One recorded interaction.
#[derive(Clone, Debug)]
pub struct Interaction(pub domain::Interaction);

/// One recorded two-way interaction on a relationship.
#[Object]
impl Interaction {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        GlobalId::Interaction(self.0.id).encode()
    }

    /// The relationship it happened on.
    async fn relationship(&self, ctx: &Context<'_>) -> ApiResult<Option<Relationship>> {
        load_relationship(ctx, self.0.relationship).await
    }

    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// How.
    async fn channel(&self) -> Channel {
        self.0.channel.into()
    }

    /// Who reached out.
    async fn direction(&self) -> Direction {
        self.0.direction.into()
    }

    /// How it felt, in [−1, 1].
    async fn sentiment(&self) -> f64 {
        self.0.sentiment.get()
    }

    /// Amount, for purchases.
    async fn amount(&self) -> Option<f64> {
        self.0.amount.map(|amount| amount.get())
    }

    /// Product line, for purchases.
    async fn product_line(&self) -> Option<String> {
        self.0.product_line.as_ref().map(ToString::to_string)
    }

    /// Free text.
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }

    /// The recorder's own identifier for it (unique), when it was recorded with one.
    async fn key(&self) -> Option<&str> {
        self.0.key.as_ref().map(|key| key.as_str())
    }

    /// What it was about; null when not recorded.
    async fn topic(&self) -> Option<Topic> {
        self.0.topic.map(Into::into)
    }
}

/// Which relationships of a stakeholder to list.
#[derive(InputObject, Default, Debug)]
pub struct RelationshipFilter {
    /// Only these types.
    pub types: Option<Vec<RelationshipType>>,
    /// Only outgoing or only incoming ones.
    pub direction: Option<EdgeDirection>,
    /// Only those at this level or above.
    pub min_level: Option<Level>,
}

/// Order of a stakeholder's relationships; ties go to the lower id.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum RelationshipSort {
    /// Oldest record first.
    #[default]
    Id,
    /// Highest Kotler level first, then highest trust, then highest commitment.
    LevelDesc,
    /// Longest-standing first.
    SinceAsc,
    /// Most recently changed first.
    UpdatedDesc,
}

/// The edge fields of a stakeholder's relationship list.
#[derive(Clone, Debug)]
pub struct RelationshipEdgeFields {
    counterpart: StakeholderId,
    direction: EdgeDirection,
}

#[Object]
impl RelationshipEdgeFields {
    /// The stakeholder at the other end.
    async fn counterpart(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.counterpart).await
    }

    /// Whether the listed stakeholder is the `from` (OUTGOING) or `to` (INCOMING) end.
    async fn direction(&self) -> EdgeDirection {
        self.direction
    }
}

/// A page of a stakeholder's relationships.
pub type RelationshipConnection = Connection<String, Relationship, Counted, RelationshipEdgeFields>;

/// Name of the relationship list, which its cursors are bound to.
const RELATIONSHIPS: &str = "relationships";

fn known(value: Option<domain::Probability>) -> f64 {
    value.map_or(-1.0, |value| value.get())
}

/// Sorts relationships in place by `sort`, ties to the lower id.
fn sort_relationships(relationships: &mut [&domain::Relationship], sort: RelationshipSort) {
    match sort {
        RelationshipSort::Id => relationships.sort_by_key(|relationship| relationship.id),
        RelationshipSort::LevelDesc => relationships.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then(known(b.trust).total_cmp(&known(a.trust)))
                .then(known(b.commitment).total_cmp(&known(a.commitment)))
                .then(a.id.cmp(&b.id))
        }),
        RelationshipSort::SinceAsc => relationships.sort_by(|a, b| a.since.cmp(&b.since).then(a.id.cmp(&b.id))),
        RelationshipSort::UpdatedDesc => {
            relationships.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)))
        }
    }
}

/// One page of the relationships of `stakeholder` the caller may see, filtered and sorted in memory from its
/// DataLoader batch (so `totalCount` counts only those too).
pub async fn relationship_connection(
    ctx: &Context<'_>,
    stakeholder: StakeholderId,
    filter: Option<RelationshipFilter>,
    order_by: Option<RelationshipSort>,
    page: PageRequest,
) -> ApiResult<RelationshipConnection> {
    let filter = filter.unwrap_or_default();
    let types: Option<Vec<domain::RelationshipType>> = filter.types.map(|types| super::enums::to_domain(&types));
    let min_level = filter.min_level.map(domain::Level::from);
    let all = relationships_of_where(ctx, stakeholder, |relationship| {
        types.as_ref().is_none_or(|types| types.contains(&relationship.rel_type))
            && filter.direction.is_none_or(|direction| edge_direction(relationship, stakeholder) == direction)
            && min_level.is_none_or(|level| relationship.level >= level)
    })
    .await?;
    let mut relationships: Vec<&domain::Relationship> = all.iter().collect();
    sort_relationships(&mut relationships, order_by.unwrap_or_default());
    let window = Window::of(RELATIONSHIPS, relationships.len(), &page)?;
    let mut connection = Connection::with_additional_fields(
        window.has_previous_page,
        window.has_next_page,
        Counted { total_count: relationships.len() as u64 },
    );
    for (index, relationship) in relationships[window.start..window.end].iter().copied().cloned().enumerate() {
        let fields = RelationshipEdgeFields {
            counterpart: relationship.other_end(stakeholder),
            direction: edge_direction(&relationship, stakeholder),
        };
        connection.edges.push(Edge::with_additional_fields(
            Window::cursor(RELATIONSHIPS, window.start + index),
            Relationship(relationship),
            fields,
        ));
    }
    Ok(connection)
}
