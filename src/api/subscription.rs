//! Subscriptions (DESIGN.md §5): the change log as a stream. A subscriber gets every committed change after its
//! cursor in commit order: first what is already in the durable log, then each new change as it commits. The
//! stream reads the log by cursor and waits for the engine to publish a new position when it has read everything,
//! so there is no gap and no duplicate between replay and live, a subscriber that falls behind only reads the log
//! later (it never holds up a writer), and changes made by other processes arrive through the same log.

use super::auth::{Caller, Need};
use super::changes::{decode, ChangeEvent, ChangeKind};
use super::enums::{to_domain, Market, RelationshipType};
use super::error::ApiError;
use super::ids::stakeholder_id;
use super::ApiContext;
use crate::domain::{self, MarketSet, RelationshipId, StakeholderId};
use crate::store::GraphStore;
use async_graphql::{Context, InputObject, Subscription, ID};
use futures_util::stream::{self, Stream};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Change-log entries read per step.
const PAGE: usize = 200;

/// The subscription root.
#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Every committed change after `after` (without it: from the current position on), in commit order, as it
    /// commits. Resume after a disconnect by passing the `cursor` of the last event processed: nothing is lost or
    /// repeated. Events touching a stakeholder this caller sees masked keep their place with the payload withheld.
    #[graphql(guard = "Need::Read")]
    async fn changes(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        #[graphql(desc = "Only the changes that match (the cursor still moves past the others).")] filter: Option<
            ChangeFilter,
        >,
    ) -> Result<impl Stream<Item = ChangeEvent>, ApiError> {
        let filter = Filter::parse(filter.unwrap_or_default())?;
        start(ctx, after, filter).await
    }

    /// Every change to the relationships of one stakeholder (created, updated, interactions recorded) after
    /// `after`, in commit order, as it commits.
    #[graphql(guard = "Need::Read")]
    async fn relationship_changed(
        &self,
        ctx: &Context<'_>,
        stakeholder: ID,
        after: Option<String>,
    ) -> Result<impl Stream<Item = ChangeEvent>, ApiError> {
        let filter = Filter {
            kinds: Some(HashSet::from([
                domain::ChangeKind::RelationshipCreated,
                domain::ChangeKind::RelationshipUpdated,
                domain::ChangeKind::InteractionsRecorded,
            ])),
            stakeholder: Some(stakeholder_id(&stakeholder, "stakeholder")?),
            ..Filter::default()
        };
        start(ctx, after, filter).await
    }
}

/// Which changes a subscriber wants; every condition given must hold.
#[derive(InputObject, Default)]
pub struct ChangeFilter {
    /// Only these kinds of change.
    kinds: Option<Vec<ChangeKind>>,
    /// Only changes involving this stakeholder.
    stakeholder: Option<ID>,
    /// Only changes involving a stakeholder in one of these markets.
    markets: Option<Vec<Market>>,
    /// Only changes to relationships (or their interactions) of these types.
    relationship_types: Option<Vec<RelationshipType>>,
}

/// A [`ChangeFilter`] in domain terms.
#[derive(Default)]
struct Filter {
    kinds: Option<HashSet<domain::ChangeKind>>,
    stakeholder: Option<StakeholderId>,
    markets: MarketSet,
    types: Option<HashSet<domain::RelationshipType>>,
}

impl Filter {
    fn parse(filter: ChangeFilter) -> Result<Self, ApiError> {
        Ok(Self {
            kinds: filter.kinds.map(|kinds| kinds.into_iter().map(domain::ChangeKind::from).collect()),
            stakeholder: filter.stakeholder.map(|id| stakeholder_id(&id, "filter.stakeholder")).transpose()?,
            markets: MarketSet::of(to_domain::<Market, domain::Market>(&filter.markets.unwrap_or_default())),
            types: filter
                .relationship_types
                .map(|types| types.into_iter().map(domain::RelationshipType::from).collect()),
        })
    }

    /// Whether `event` matches, given the markets of its stakeholders and the types of its relationships.
    fn matches(
        &self,
        event: &domain::ChangeEvent,
        markets: &HashMap<StakeholderId, MarketSet>,
        types: &HashMap<RelationshipId, domain::RelationshipType>,
    ) -> bool {
        self.kinds.as_ref().is_none_or(|kinds| kinds.contains(&event.kind))
            && self.stakeholder.is_none_or(|id| event.stakeholders.contains(&id))
            && (self.markets.is_empty()
                || event.stakeholders.iter().any(|id| markets.get(id).is_some_and(|set| set.intersects(self.markets))))
            && self.types.as_ref().is_none_or(|wanted| {
                event.relationship.and_then(|id| types.get(&id)).is_some_and(|kind| wanted.contains(kind))
            })
    }
}

/// Starts a subscriber's feed after `after` (default: the current position).
async fn start(
    ctx: &Context<'_>,
    after: Option<String>,
    filter: Filter,
) -> Result<impl Stream<Item = ChangeEvent> + use<>, ApiError> {
    let api = ctx.data_unchecked::<ApiContext>();
    let snapshot = api.engine.load().await.map_err(|error| {
        tracing::error!(%error, "the engine that publishes the log position is not available");
        ApiError::Unavailable
    })?;
    let cursor = match after.as_deref() {
        Some(cursor) => decode(cursor)?,
        None => snapshot.seq(),
    };
    let feed = Feed {
        store: api.store.clone(),
        published: api.engine.published(),
        cursor,
        filter,
        sees_private: Caller::of(ctx).sees_private(),
        ready: VecDeque::new(),
    };
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|event| (event, feed)) }))
}

/// One subscriber's position in the log.
struct Feed {
    store: Arc<dyn GraphStore>,
    published: tokio::sync::watch::Receiver<i64>,
    cursor: i64,
    filter: Filter,
    sees_private: bool,
    ready: VecDeque<ChangeEvent>,
}

impl Feed {
    /// The next event: from what was read already, else from the log, else after the next published position.
    /// `None` ends the stream (the engine is gone, or the store failed: the client resumes from its cursor).
    async fn next(&mut self) -> Option<ChangeEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            // Mark the current position seen before reading, so that a change committed after the read wakes us.
            self.published.borrow_and_update();
            let events = match self.store.changes_after(self.cursor, PAGE).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, cursor = self.cursor, "a subscription could not read the change log");
                    return None;
                }
            };
            if events.is_empty() {
                self.published.changed().await.ok()?;
                continue;
            }
            self.cursor = events.last().map_or(self.cursor, |event| event.seq);
            let (hidden, markets) = self.stakeholders(&events).await?;
            let types = self.relationship_types(&events).await?;
            let filter = &self.filter;
            self.ready.extend(
                events
                    .into_iter()
                    .filter(|event| filter.matches(event, &markets, &types))
                    .map(|event| ChangeEvent::of(event, &hidden)),
            );
        }
    }

    /// The stakeholders of `events` this subscriber sees masked, and the markets of each (read only when needed).
    async fn stakeholders(
        &self,
        events: &[domain::ChangeEvent],
    ) -> Option<(HashSet<StakeholderId>, HashMap<StakeholderId, MarketSet>)> {
        if self.sees_private && self.filter.markets.is_empty() {
            return Some((HashSet::new(), HashMap::new()));
        }
        let ids: Vec<StakeholderId> = events
            .iter()
            .flat_map(|event| event.stakeholders.iter().copied())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let found = self.store.stakeholders_by_id(&ids).await.ok()?;
        let hidden = found
            .iter()
            .filter(|stakeholder| stakeholder.private && !self.sees_private)
            .map(|stakeholder| stakeholder.id)
            .collect();
        let markets = found.iter().map(|stakeholder| (stakeholder.id, stakeholder.markets())).collect();
        Some((hidden, markets))
    }

    /// The type of each relationship of `events` (read only when the filter asks for types).
    async fn relationship_types(
        &self,
        events: &[domain::ChangeEvent],
    ) -> Option<HashMap<RelationshipId, domain::RelationshipType>> {
        if self.filter.types.is_none() {
            return Some(HashMap::new());
        }
        let ids: Vec<RelationshipId> =
            events.iter().filter_map(|event| event.relationship).collect::<HashSet<_>>().into_iter().collect();
        let found = self.store.relationships_by_id(&ids).await.ok()?;
        Some(found.into_iter().map(|relationship| (relationship.id, relationship.rel_type)).collect())
    }
}
