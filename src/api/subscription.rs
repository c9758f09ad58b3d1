//! Subscriptions (DESIGN.md §5): the change log as a stream. A subscriber gets every committed change after its
//! cursor in commit order: first what is already in the durable log, then each new change as it commits. The
//! stream reads the log by cursor and waits for the engine to publish a new position when it has read everything,
//! so there is no gap and no duplicate between replay and live, a subscriber that falls behind only reads the log
//! later (it never holds up a writer), and changes made by other processes arrive through the same log.

use super::auth::{Caller, Need};
use super::changes::{decode, ChangeEvent, ChangeKind};
use super::error::ApiError;
use super::ApiContext;
use crate::domain::{self, StakeholderId};
use crate::store::GraphStore;
use async_graphql::{Context, Subscription};
use futures_util::stream::{self, Stream};
use std::collections::{HashSet, VecDeque};
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
        #[graphql(desc = "Only these kinds of change (the cursor still moves past the others).")] kinds: Option<
            Vec<ChangeKind>,
        >,
    ) -> Result<impl Stream<Item = ChangeEvent>, ApiError> {
        let api = ctx.data_unchecked::<ApiContext>();
        let snapshot = api.engine.load().await.map_err(|error| {
            tracing::error!(%error, "the engine that publishes the log position is not available");
            ApiError::Unavailable
        })?;
        let cursor = match after.as_deref() {
            Some(cursor) => decode(cursor)?,
            None => snapshot.seq(),
        };
        let kinds: Option<HashSet<domain::ChangeKind>> =
            kinds.map(|kinds| kinds.into_iter().map(domain::ChangeKind::from).collect());
        let feed = Feed {
            store: api.store.clone(),
            published: api.engine.published(),
            cursor,
            kinds,
            sees_private: Caller::of(ctx).sees_private(),
            ready: VecDeque::new(),
        };
        Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|event| (event, feed)) }))
    }
}

/// One subscriber's position in the log.
struct Feed {
    store: Arc<dyn GraphStore>,
    published: tokio::sync::watch::Receiver<i64>,
    cursor: i64,
    kinds: Option<HashSet<domain::ChangeKind>>,
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
            let hidden = self.hidden(&events).await?;
            self.ready.extend(
                events
                    .into_iter()
                    .filter(|event| self.kinds.as_ref().is_none_or(|kinds| kinds.contains(&event.kind)))
                    .map(|event| ChangeEvent::of(event, &hidden)),
            );
        }
    }

    /// The stakeholders of `events` this subscriber sees masked.
    async fn hidden(&self, events: &[domain::ChangeEvent]) -> Option<HashSet<StakeholderId>> {
        if self.sees_private {
            return Some(HashSet::new());
        }
        let ids: Vec<StakeholderId> = events
            .iter()
            .flat_map(|event| event.stakeholders.iter().copied())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let found = self.store.stakeholders_by_id(&ids).await.ok()?;
        Some(found.into_iter().filter(|stakeholder| stakeholder.private).map(|stakeholder| stakeholder.id).collect())
    }
}
