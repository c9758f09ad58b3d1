//! Subscriptions (ARCHITECTURE.md): the change log as a stream. A subscriber gets every committed change after its
//! cursor in commit order: first what is already in the durable log, then each new change as it commits. The
//! stream reads the log by cursor and waits for the engine to publish a new position when it has read everything,
//! so there is no gap and no duplicate between replay and live, a subscriber that falls behind only reads the log
//! later (it never holds up a writer), and changes made by other processes arrive through the same log.

use super::auth::{Caller, Need};
use super::changes::{decode, encode, ChangeEvent, ChangeKind};
use super::crossings::{self, StrengthCrossings, StrengthWatch};
use super::enums::{to_domain, Market, RelationshipType};
use super::error::ApiError;
use super::fanout::{self, Attach, Class, Handoff, Link};
use super::ids::stakeholder_id;
use super::ApiContext;
use crate::domain::{self, MarketSet, RelationshipId, StakeholderId};
use crate::engine::{Engine, Published};
use crate::store::{GraphStore, StoreError};
use async_graphql::{Context, InputObject, Subscription, ID};
use chrono::Utc;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
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
    /// repeated. Events involving a stakeholder this caller sees masked keep their place with everything but the
    /// cursor withheld; a filter never matches them (it would tell what the mask hides).
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
    /// `after`, in commit order, as it commits; only those of relationships the caller may see.
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
        #[graphql(desc = "The `cursor` of the last message processed, to resume after it.")] after: Option<String>,
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
    pub(crate) fn parse(filter: ChangeFilter) -> Result<Self, ApiError> {
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

    /// A webhook's filter (`domain::webhook::EventFilter`) as a subscription's.
    pub(crate) fn of_webhook(filter: &domain::webhook::EventFilter) -> Self {
        Self {
            kinds: filter.kinds.as_ref().map(|kinds| kinds.iter().copied().collect()),
            stakeholder: filter.stakeholder,
            markets: MarketSet::of(filter.markets.iter().copied()),
            types: filter.relationship_types.as_ref().map(|types| types.iter().copied().collect()),
        }
    }

    /// The filter in the terms a webhook stores.
    pub(crate) fn to_webhook(&self) -> domain::webhook::EventFilter {
        let mut kinds: Option<Vec<_>> = self.kinds.as_ref().map(|kinds| kinds.iter().copied().collect());
        let mut types: Option<Vec<_>> = self.types.as_ref().map(|types| types.iter().copied().collect());
        kinds.iter_mut().for_each(|kinds| kinds.sort_unstable_by_key(|kind| *kind as u8));
        types.iter_mut().for_each(|types| types.sort_unstable());
        domain::webhook::EventFilter {
            kinds,
            stakeholder: self.stakeholder,
            markets: domain::Market::ALL.iter().copied().filter(|market| self.markets.contains(*market)).collect(),
            relationship_types: types,
        }
    }

    /// Whether the filter has any condition.
    fn is_empty(&self) -> bool {
        self.kinds.is_none() && self.stakeholder.is_none() && self.markets.is_empty() && self.types.is_none()
    }

    /// Whether `event` matches, given the markets of its stakeholders and the types of its relationships. An
    /// event the caller sees masked matches only a filter without conditions: whether it matched one would tell
    /// its kind, its stakeholders' markets or its relationship's type.
    fn matches(
        &self,
        event: &ChangeEvent,
        markets: &HashMap<StakeholderId, MarketSet>,
        types: &HashMap<RelationshipId, domain::RelationshipType>,
    ) -> bool {
        if event.is_masked() {
            return self.is_empty();
        }
        let event = event.record();
        self.kinds.as_ref().is_none_or(|kinds| kinds.contains(&event.kind))
            && self.admits(
                event.stakeholders.iter().map(|id| (*id, markets.get(id).copied().unwrap_or(MarketSet::EMPTY))),
                event.relationship.and_then(|id| types.get(&id)).copied(),
            )
    }

    /// Whether something involving `stakeholders` (with their markets) and of relationship type `kind` (if any)
    /// passes the stakeholder, market and type conditions.
    pub(crate) fn admits(
        &self,
        stakeholders: impl Iterator<Item = (StakeholderId, MarketSet)> + Clone,
        kind: Option<domain::RelationshipType>,
    ) -> bool {
        self.stakeholder.is_none_or(|wanted| stakeholders.clone().any(|(id, _)| id == wanted))
            && (self.markets.is_empty() || stakeholders.clone().any(|(_, set)| set.intersects(self.markets)))
            && self.types.as_ref().is_none_or(|wanted| kind.is_some_and(|kind| wanted.contains(&kind)))
    }
}

/// Starts a subscriber's feed after `after` (default: the current position). Over a WebSocket the feed belongs to
/// a class of subscribers whose payloads the fan-out renders once (`api::fanout`); a class's own renderer streams
/// what the fan-out pushes.
async fn start(
    ctx: &Context<'_>,
    after: Option<String>,
    filter: Filter,
) -> Result<BoxStream<'static, Result<ChangeEvent, ApiError>>, ApiError> {
    if let Some(rendering) = ctx.data_opt::<fanout::Rendering>() {
        return Ok(rendering.events());
    }
    let api = ctx.data_unchecked::<ApiContext>();
    let snapshot = api.engine.load().await.map_err(|error| {
        tracing::error!(%error, "the engine that publishes the log position is not available");
        ApiError::Unavailable
    })?;
    let cursor = match after.as_deref() {
        Some(cursor) => decode(cursor)?,
        None => snapshot.seq(),
    };
    let caller = Caller::of(ctx);
    let lens = Lens {
        store: api.store.clone(),
        engine: api.engine.clone(),
        filter: Arc::new(filter),
        sees_private: caller.sees_private(),
    };
    let shared = ctx.data_opt::<fanout::Sharing>().map(|sharing| sharing.join(caller, lens.clone(), cursor));
    let feed = Feed {
        lens,
        published: api.engine.published(),
        cursor,
        ready: VecDeque::new(),
        live: false,
        max_lag: max_lag(&api.limits),
        ended: false,
        shared,
    };
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|event| (event, feed)) }).boxed())
}

/// How old the next event due to a live subscriber may get (`limits.max_subscriber_lag_seconds`).
pub(crate) fn max_lag(limits: &super::ApiLimits) -> chrono::Duration {
    chrono::Duration::seconds(limits.max_subscriber_lag_seconds.min(i64::MAX as u64) as i64)
}

/// What masking and a filter need to see log entries as one subscriber (or one class of them) does.
#[derive(Clone)]
pub(crate) struct Lens {
    store: Arc<dyn GraphStore>,
    engine: Arc<Engine>,
    filter: Arc<Filter>,
    sees_private: bool,
}

impl Lens {
    /// What a reader of the log under `filter`, who may see private stakeholders or not, sees.
    pub(crate) fn new(store: Arc<dyn GraphStore>, engine: Arc<Engine>, filter: Filter, sees_private: bool) -> Self {
        Self { store, engine, filter: Arc::new(filter), sees_private }
    }
}

/// One subscriber's position in the log.
struct Feed {
    lens: Lens,
    published: tokio::sync::watch::Receiver<Published>,
    /// Every entry up to here has been read (and is in `ready` if it matches).
    cursor: i64,
    /// Matching entries read but not yet handed over.
    ready: VecDeque<ChangeEvent>,
    /// Whether the feed has once read up to the head of the log (a replay is not lag).
    live: bool,
    /// How old the next event to send may get while the feed is live.
    max_lag: chrono::Duration,
    ended: bool,
    /// Over a WebSocket: its class, which it attaches to at the head of the log, and its link to the connection.
    shared: Option<(Arc<Class>, Arc<Link>)>,
}

impl Feed {
    /// The next event: from what was read already, else from the log (the engine's recent entries, or the
    /// store for older ones), else after the next published position. A live feed whose next event was committed
    /// more than `max_lag` ago (the subscriber is not reading fast enough) ends with `LIMIT_EXCEEDED` and the cursor
    /// to resume from; a store failure ends it with that error. `None` ends the stream.
    async fn next(&mut self) -> Option<Result<ChangeEvent, ApiError>> {
        if self.ended {
            return None;
        }
        loop {
            // Mark the current position seen before reading, so that a change committed after the read wakes us.
            self.published.borrow_and_update();
            if let Some(event) = self.ready.front() {
                let age = Utc::now() - event.committed_at();
                if self.live && age > self.max_lag {
                    self.ended = true;
                    return Some(Err(lagging(age, self.max_lag, event.seq() - 1)));
                }
            }
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            let (events, from_store) = match self.lens.engine.recent_after(self.cursor, PAGE) {
                Some(events) => (events, false),
                None => match self.lens.store.changes_after(self.cursor, PAGE).await {
                    Ok(events) => (events.into_iter().map(Arc::new).collect(), true),
                    Err(error) => return self.end(error.into()),
                },
            };
            if events.is_empty() {
                self.live = true;
                if let Some((class, link)) = self.shared.clone() {
                    match class.attach(self.cursor, &link) {
                        // The connection now sends what the class hands over, until it detaches us.
                        Attach::Attached => match link.handoff().await {
                            Handoff::Resume(cursor) => self.cursor = self.cursor.max(cursor),
                            Handoff::Lagging { age, resume_after } => {
                                self.ended = true;
                                return Some(Err(lagging(age, self.max_lag, resume_after)));
                            }
                        },
                        // The class has gone past our cursor: what it handed over is in the log; read it.
                        Attach::Behind => {}
                        Attach::Unavailable => {
                            self.shared = None;
                            self.published.changed().await.ok()?;
                        }
                    }
                    continue;
                }
                self.published.changed().await.ok()?;
                continue;
            }
            self.cursor = events.last().map_or(self.cursor, |event| event.seq);
            match self.lens.views(&events, from_store).await {
                Ok(views) => self.ready.extend(views.into_iter().flatten()),
                Err(error) => return self.end(error.into()),
            }
        }
    }

    /// Ends the feed with `error` (the client resumes from the cursor of the last event it received).
    fn end(&mut self, error: ApiError) -> Option<Result<ChangeEvent, ApiError>> {
        self.ended = true;
        Some(Err(error))
    }
}

impl Lens {
    /// Each of `events` as this subscriber sees it (masked or not), or `None` where the filter does not match.
    pub(crate) async fn views(
        &self,
        events: &[Arc<domain::ChangeEvent>],
        from_store: bool,
    ) -> Result<Vec<Option<ChangeEvent>>, StoreError> {
        let seen = self.look_up(events, from_store).await?;
        Ok(events
            .iter()
            .map(|event| ChangeEvent::of(event.clone(), &seen.hidden, self.sees_private))
            .map(|event| self.filter.matches(&event, &seen.markets, &seen.types).then_some(event))
            .collect())
    }

    /// What the filter and the masking need to know about the stakeholders and relationships of `events`: for
    /// entries from the engine's recent tail, from its snapshot (which reflects them and is at least as new), and
    /// from the store for what it does not hold (archived stakeholders); for entries read from the store (a
    /// replay, which may run ahead of the engine), from the store, as the `changes` query does.
    async fn look_up(&self, events: &[Arc<domain::ChangeEvent>], from_store: bool) -> Result<Seen, StoreError> {
        let mut seen = Seen::default();
        let wants_stakeholders = !self.sees_private || !self.filter.markets.is_empty();
        let wants_types = self.filter.types.is_some();
        if !wants_stakeholders && !wants_types {
            return Ok(seen);
        }
        let current = self.engine.loaded().filter(|_| !from_store);
        let (mut missing_stakeholders, mut missing_relationships) = (Vec::new(), Vec::new());
        for event in events {
            let snapshot = current.as_deref().filter(|snapshot| event.seq <= snapshot.seq());
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
            for stakeholder in self.store.stakeholders_by_id(&missing_stakeholders).await? {
                if stakeholder.private && !self.sees_private {
                    seen.hidden.insert(stakeholder.id);
                }
                seen.markets.insert(stakeholder.id, stakeholder.markets());
            }
        }
        if !missing_relationships.is_empty() {
            missing_relationships.sort_unstable();
            missing_relationships.dedup();
            for relationship in self.store.relationships_by_id(&missing_relationships).await? {
                seen.types.insert(relationship.id, relationship.rel_type);
            }
        }
        Ok(seen)
    }
}

/// The stakeholders a subscriber sees masked, the markets of stakeholders and the types of relationships.
#[derive(Default)]
struct Seen {
    hidden: HashSet<StakeholderId>,
    markets: HashMap<StakeholderId, MarketSet>,
    types: HashMap<RelationshipId, domain::RelationshipType>,
}

/// The error that ends a live subscription whose next event is `age` old, with where to resume.
fn lagging(age: chrono::Duration, max_lag: chrono::Duration, resume_after: i64) -> ApiError {
    ApiError::Lagging {
        resume_after: encode(resume_after),
        message: format!(
            "this subscription fell {:.1} s behind the log, past the server's limit of {} s \
             (`limits.max_subscriber_lag_seconds`): it was not reading fast enough; nothing was lost: subscribe \
             again with `after` set to the `resumeAfter` cursor in this error's extensions (everything after it \
             that matches your filter is still to come) to catch up from the log",
            age.num_milliseconds() as f64 / 1e3,
            max_lag.num_seconds()
        ),
    }
}
