//! Subscriptions (DESIGN.md §5): the change log as a stream. A subscriber gets every committed change after its
//! cursor in commit order: first what is already in the durable log, then each new change as it commits. The
//! stream reads the log by cursor and waits for the engine to publish a new position when it has read everything,
//! so there is no gap and no duplicate between replay and live, a subscriber that falls behind only reads the log
//! later (it never holds up a writer), and changes made by other processes arrive through the same log.

use super::auth::{Caller, Need};
use super::changes::{decode, encode, ChangeEvent, ChangeKind};
use super::crossings::{self, StrengthCrossings, StrengthWatch};
use super::enums::{to_domain, Market, RelationshipType};
use super::error::ApiError;
use super::ids::stakeholder_id;
use super::ApiContext;
use crate::domain::{self, MarketSet, RelationshipId, StakeholderId};
use crate::engine::{Engine, Published};
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
    ) -> Result<impl Stream<Item = Result<ChangeEvent, ApiError>>, ApiError> {
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
    ) -> Result<impl Stream<Item = Result<ChangeEvent, ApiError>>, ApiError> {
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

    /// Fires when the strength of a watched relationship moves past `threshold`: above once it exceeds
    /// `threshold + hysteresis`, below once it drops under `threshold − hysteresis` (inside that band a
    /// relationship keeps its side, so one hovering at the threshold fires nothing). Re-evaluated after every
    /// change and by the engine's decay sweep, since strength decays with time alone. Each message holds the
    /// crossings of one evaluation; resume with the `cursor` of the last message processed (see the README).
    #[graphql(guard = "Need::Read")]
    async fn strength_crossed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The strength to watch, in [0, 1].")] threshold: f64,
        #[graphql(
            desc = "How far past the threshold a strength must go to count as a crossing, in [0, 0.5].",
            default = 0.02
        )]
        hysteresis: f64,
        #[graphql(desc = "Only these relationships (default: every relationship the caller may read).")] filter: Option<
            StrengthWatch,
        >,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<StrengthCrossings, ApiError>>, ApiError> {
        crossings::start(ctx, threshold, hysteresis, filter, after).await
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

/// A [`ChangeFilter`] (or a `strengthCrossed` filter, without kinds) in domain terms.
#[derive(Default)]
pub(crate) struct Filter {
    kinds: Option<HashSet<domain::ChangeKind>>,
    pub(crate) stakeholder: Option<StakeholderId>,
    pub(crate) markets: MarketSet,
    pub(crate) types: Option<HashSet<domain::RelationshipType>>,
}

impl Filter {
    fn parse(filter: ChangeFilter) -> Result<Self, ApiError> {
        let mut parsed = Self::of(filter.stakeholder, filter.markets, filter.relationship_types)?;
        parsed.kinds = filter.kinds.map(|kinds| kinds.into_iter().map(domain::ChangeKind::from).collect());
        Ok(parsed)
    }

    /// The filter on a stakeholder, markets and relationship types (each optional) given at `filter.*`.
    pub(crate) fn of(
        stakeholder: Option<ID>,
        markets: Option<Vec<Market>>,
        types: Option<Vec<RelationshipType>>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            kinds: None,
            stakeholder: stakeholder.map(|id| stakeholder_id(&id, "filter.stakeholder")).transpose()?,
            markets: MarketSet::of(to_domain::<Market, domain::Market>(&markets.unwrap_or_default())),
            types: types.map(|types| types.into_iter().map(domain::RelationshipType::from).collect()),
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
) -> Result<impl Stream<Item = Result<ChangeEvent, ApiError>> + use<>, ApiError> {
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
        engine: api.engine.clone(),
        published: api.engine.published(),
        cursor,
        filter,
        sees_private: Caller::of(ctx).sees_private(),
        ready: VecDeque::new(),
        live: false,
        max_lag: api.limits.max_subscriber_lag,
        ended: false,
    };
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|event| (event, feed)) }))
}

/// One subscriber's position in the log.
struct Feed {
    store: Arc<dyn GraphStore>,
    engine: Arc<Engine>,
    published: tokio::sync::watch::Receiver<Published>,
    /// Every entry up to here has been read (and is in `ready` if it matches).
    cursor: i64,
    filter: Filter,
    sees_private: bool,
    /// Matching entries read but not yet handed over.
    ready: VecDeque<ChangeEvent>,
    /// Whether the feed has once read up to the head of the log (a replay is not lag).
    live: bool,
    max_lag: u64,
    ended: bool,
}

impl Feed {
    /// The next event: from what was read already, else from the log (the engine's recent entries, or the
    /// store for older ones), else after the next published position. A live feed that finds itself more than
    /// `max_lag` entries behind the head ends with `LIMIT_EXCEEDED` and the cursor to resume from. `None` ends
    /// the stream (the engine is gone, or the store failed: the client resumes from its cursor).
    async fn next(&mut self) -> Option<Result<ChangeEvent, ApiError>> {
        if self.ended {
            return None;
        }
        loop {
            // Mark the current position seen before reading, so that a change committed after the read wakes us.
            let head = self.published.borrow_and_update().seq;
            let handed_over = self.ready.front().map_or(self.cursor, |event| event.seq() - 1);
            if self.live && head.saturating_sub(handed_over) > self.max_lag as i64 {
                self.ended = true;
                return Some(Err(lagging(head - handed_over, self.max_lag, handed_over)));
            }
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            let events = match self.engine.recent_after(self.cursor, PAGE) {
                Some(events) => events,
                None => match self.store.changes_after(self.cursor, PAGE).await {
                    Ok(events) => events.into_iter().map(Arc::new).collect(),
                    Err(error) => {
                        tracing::warn!(%error, cursor = self.cursor, "a subscription could not read the change log");
                        return None;
                    }
                },
            };
            if events.is_empty() {
                self.live = true;
                self.published.changed().await.ok()?;
                continue;
            }
            self.cursor = events.last().map_or(self.cursor, |event| event.seq);
            let seen = self.look_up(&events).await?;
            let filter = &self.filter;
            self.ready.extend(
                events
                    .iter()
                    .filter(|event| filter.matches(event, &seen.markets, &seen.types))
                    .map(|event| ChangeEvent::of(event.clone(), &seen.hidden)),
            );
        }
    }

    /// What the filter and the masking need to know about the stakeholders and relationships of `events`: from
    /// the engine's snapshot, and from the store for the few it does not hold (archived stakeholders, changes
    /// another process made that the engine has not applied yet).
    async fn look_up(&self, events: &[Arc<domain::ChangeEvent>]) -> Option<Seen> {
        let mut seen = Seen::default();
        let wants_stakeholders = !self.sees_private || !self.filter.markets.is_empty();
        let wants_types = self.filter.types.is_some();
        if !wants_stakeholders && !wants_types {
            return Some(seen);
        }
        let snapshot = self.engine.loaded();
        let snapshot = snapshot.as_deref();
        let (mut missing_stakeholders, mut missing_relationships) = (Vec::new(), Vec::new());
        for event in events {
            for &id in event.stakeholders.iter().filter(|_| wants_stakeholders) {
                if seen.markets.contains_key(&id) {
                    continue;
                }
                match snapshot.and_then(|snapshot| Some((snapshot, snapshot.index_of(id)?))) {
                    Some((snapshot, node)) => {
                        seen.markets.insert(id, snapshot.markets(node));
                        if snapshot.is_private(node) && !self.sees_private {
                            seen.hidden.insert(id);
                        }
                    }
                    None => missing_stakeholders.push(id),
                }
            }
            if let Some(id) = event.relationship.filter(|_| wants_types) {
                let edge = snapshot.and_then(|snapshot| {
                    let from = *event.stakeholders.first()?;
                    Some((snapshot, snapshot.edge_of(id, from)?))
                });
                match edge {
                    Some((snapshot, edge)) => _ = seen.types.insert(id, snapshot.relationship_type(edge)),
                    None => missing_relationships.push(id),
                }
            }
        }
        if !missing_stakeholders.is_empty() {
            missing_stakeholders.sort_unstable();
            missing_stakeholders.dedup();
            for stakeholder in self.store.stakeholders_by_id(&missing_stakeholders).await.ok()? {
                if stakeholder.private && !self.sees_private {
                    seen.hidden.insert(stakeholder.id);
                }
                seen.markets.insert(stakeholder.id, stakeholder.markets());
            }
        }
        if !missing_relationships.is_empty() {
            missing_relationships.sort_unstable();
            missing_relationships.dedup();
            for relationship in self.store.relationships_by_id(&missing_relationships).await.ok()? {
                seen.types.insert(relationship.id, relationship.rel_type);
            }
        }
        Some(seen)
    }
}

/// The stakeholders a subscriber sees masked, the markets of stakeholders and the types of relationships.
#[derive(Default)]
struct Seen {
    hidden: HashSet<StakeholderId>,
    markets: HashMap<StakeholderId, MarketSet>,
    types: HashMap<RelationshipId, domain::RelationshipType>,
}

/// The error that ends a subscription which fell `behind` entries behind the log, with where to resume.
fn lagging(behind: i64, max_lag: u64, handed_over: i64) -> ApiError {
    ApiError::Lagging {
        resume_after: encode(handed_over),
        message: format!(
            "this subscription fell {behind} changes behind the log, past the server's limit of {max_lag} \
             (`limits.max_subscriber_lag`); nothing was lost: subscribe again with `after` set to the \
             `resumeAfter` cursor in this error's extensions (the cursor of the last event you received) to \
             catch up from the log"
        ),
    }
}
