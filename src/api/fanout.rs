//! The fan-out of live `changes` subscriptions over WebSockets: the work per new log entry is done once per class
//! of subscribers, not once per subscriber.
//!
//! A class is every WebSocket subscription with the same document, operation, variables (but the one that gives
//! `after`) and caller role: they see the same masking, match the same filter and select the same fields, so each
//! new log entry becomes one `next` payload for all of them. A task of its own (the hub), woken by the engine's
//! published position, reads each class's new entries from the engine's recent tail, looks up what masking and
//! the filter need once, executes the selection set once through a long-lived async-graphql execution of the
//! class's document (the renderer: the same resolvers, so the same JSON), serializes it once, and hands the same
//! bytes to every subscriber of the class that is at the head of the log.
//!
//! Every subscriber keeps its own cursor and its own async-graphql execution ([`super::subscription`]'s feed),
//! so nothing of the guarantees changes: it replays from the log by itself, and only once it has read up to the
//! head does it attach to its class (only when the hub has processed no further than its cursor: the hub then
//! hands it exactly the entries after its cursor). An attached subscriber gets the class's payloads through a
//! bounded queue; when the queue is full (it reads slowly) the hub detaches it at the last entry it queued, and
//! once it has sent what was queued it reads the log by itself again, as any subscriber that falls behind. The
//! lag limit applies to queued payloads as to entries read (`limits.max_subscriber_lag_seconds`), and the error
//! that ends a lagging subscription is its own execution's, as before. Writers only publish a position: the hub,
//! not the mutation, wakes the subscribers.

use super::auth::Caller;
use super::changes::ChangeEvent;
use super::error::ApiError;
use super::subscription::{Lens, SubscriptionRoot};
use super::{add_code, Mutation, QueryRoot};
use crate::engine::{Engine, Published};
use async_graphql::{Data, Request, Response, Schema, Variables};
use chrono::{DateTime, Utc};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, watch, Notify};

/// Log entries the hub reads from the tail per step.
const PAGE: usize = 200;

/// Payloads queued for one attached subscriber; past that it is detached and reads the log by itself.
const QUEUE: usize = 64;

/// What a WebSocket operation sends: a response of its own execution, or a `next` payload (the JSON of a response)
/// rendered once for its whole class.
pub enum Outgoing {
    /// A response of the operation's own execution (a query or mutation, an error, or an event it read itself).
    Response(Box<Response>),
    /// The JSON of a `next` payload shared by every subscriber of the class.
    Rendered(Arc<str>),
}

/// The classes of the process's WebSocket `changes` subscriptions, and the hub that feeds them.
pub struct FanOut {
    engine: Arc<Engine>,
    classes: Mutex<HashMap<ClassKey, Weak<Class>>>,
    hub: AtomicBool,
}

/// What makes subscriptions share their payloads: the operation without its cursor, and the caller's role.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ClassKey {
    operation: Arc<str>,
    caller: Caller,
}

impl FanOut {
    /// No class yet; the hub starts with the first subscriber.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine, classes: Mutex::default(), hub: AtomicBool::new(false) }
    }

    /// The class of `key`, created with `lens` (what masking and the filter need) and a renderer of `request`
    /// when it has no subscriber yet; starts the hub on the current runtime if it does not run.
    fn class(self: &Arc<Self>, key: ClassKey, lens: Lens, render: RenderRequest, cursor: i64) -> Arc<Class> {
        if !self.hub.swap(true, Ordering::AcqRel) {
            tokio::spawn(hub(Arc::downgrade(self), self.engine.published()));
        }
        let mut classes = self.classes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(class) = classes.get(&key).and_then(Weak::upgrade) {
            return class;
        }
        let class = Arc::new(Class {
            lens,
            render,
            renderer: tokio::sync::Mutex::new(None),
            state: Mutex::new(ClassState { processed: cursor, attached: Vec::new(), broken: false }),
        });
        classes.retain(|_, class| class.strong_count() > 0);
        classes.insert(key, Arc::downgrade(&class));
        class
    }

    /// The classes that still have subscribers.
    fn live(&self) -> Vec<Arc<Class>> {
        let classes = self.classes.lock().unwrap_or_else(PoisonError::into_inner);
        classes.values().filter_map(Weak::upgrade).collect()
    }
}

/// The hub: after every published position, brings each class up to the head of the log. Ends with the engine or
/// the fan-out.
async fn hub(fanout: Weak<FanOut>, mut published: watch::Receiver<Published>) {
    loop {
        // Mark the position seen before reading, so that a change committed meanwhile wakes the hub again.
        published.borrow_and_update();
        let Some(fanout) = fanout.upgrade() else { return };
        for class in fanout.live() {
            class.advance(&fanout.engine).await;
        }
        drop(fanout);
        if published.changed().await.is_err() {
            return;
        }
    }
}

/// Everything needed to start a class's renderer: the subscription as the first subscriber sent it.
#[derive(Clone)]
pub(crate) struct RenderRequest {
    schema: Schema<QueryRoot, Mutation, SubscriptionRoot>,
    query: String,
    operation_name: Option<String>,
    variables: Variables,
    session: Arc<Data>,
}

/// One class of subscribers.
pub(crate) struct Class {
    lens: Lens,
    render: RenderRequest,
    /// The class's own execution of its document, fed one event at a time; started by the first render.
    renderer: tokio::sync::Mutex<Option<Renderer>>,
    state: Mutex<ClassState>,
}

struct ClassState {
    /// Every log entry up to here has been handed to the subscribers attached then (or there were none).
    processed: i64,
    attached: Vec<Attached>,
    /// The renderer failed: no subscriber attaches any more (each reads the log by itself).
    broken: bool,
}

/// A subscriber at the head of the log.
struct Attached {
    /// Every entry up to here was queued for it or does not match.
    cursor: i64,
    queue: mpsc::Sender<Item>,
    link: Arc<Link>,
}

/// One payload queued for an attached subscriber.
struct Item {
    seq: i64,
    at: DateTime<Utc>,
    payload: Arc<str>,
}

/// One log entry as the class sees it: whether it matches, and its payload when it does.
struct Rendered {
    seq: i64,
    at: DateTime<Utc>,
    payload: Option<Arc<str>>,
}

/// The outcome of asking to attach.
pub(crate) enum Attach {
    /// Attached: the hub hands over every entry after the cursor.
    Attached,
    /// The hub has processed entries after the cursor: read them first.
    Behind,
    /// The class cannot render: read the log alone.
    Unavailable,
}

impl Class {
    /// Attaches the subscriber of `link`, which has read every entry up to `cursor` and found none after it.
    pub(crate) fn attach(&self, cursor: i64, link: &Arc<Link>) -> Attach {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.broken {
            return Attach::Unavailable;
        }
        if cursor < state.processed {
            return Attach::Behind;
        }
        let (queue, receiver) = mpsc::channel(QUEUE);
        *link.receiver.lock().unwrap_or_else(PoisonError::into_inner) = Some(receiver);
        state.attached.push(Attached { cursor, queue, link: link.clone() });
        Attach::Attached
    }

    /// Hands the entries after what the class has processed, up to the head, to its attached subscribers.
    async fn advance(&self, engine: &Engine) {
        loop {
            let processed = self.state.lock().unwrap_or_else(PoisonError::into_inner).processed;
            let Some(events) = engine.recent_after(processed, PAGE) else {
                // The tail no longer holds what comes next: every attached subscriber reads the log by itself,
                // and the class goes on from where the tail starts.
                self.detach_all(engine.recent_start(), false);
                continue;
            };
            let Some(last) = events.last().map(|event| event.seq) else { return };
            if self.state.lock().unwrap_or_else(PoisonError::into_inner).attached.is_empty() {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                // Nobody to hand them to: skip them (a subscriber attaches only at or after `processed`, having
                // read everything up to its cursor).
                if state.attached.is_empty() {
                    state.processed = last;
                }
                continue;
            }
            let rendered = match self.render(&events).await {
                Ok(rendered) => rendered,
                Err(why) => {
                    tracing::warn!(%why, "a subscription class cannot render; its subscribers read the log alone");
                    self.detach_all(last, true);
                    return;
                }
            };
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.attached.retain_mut(|subscriber| subscriber.hand_over(&rendered));
            state.processed = last;
        }
    }

    /// Detaches every subscriber at its cursor and skips to `position` (an entry of the log, or where the tail
    /// starts); `broken` keeps any from attaching again.
    fn detach_all(&self, position: i64, broken: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for subscriber in state.attached.drain(..) {
            subscriber.detach();
        }
        state.processed = state.processed.max(position);
        state.broken |= broken;
    }

    /// `events` as this class sees them: masked and filtered once, each matching one rendered once.
    async fn render(&self, events: &[Arc<crate::domain::ChangeEvent>]) -> Result<Vec<Rendered>, String> {
        let views = self.lens.views(events, false).await.map_err(|error| error.to_string())?;
        let mut renderer = self.renderer.lock().await;
        if renderer.is_none() {
            *renderer = Some(Renderer::start(&self.render));
        }
        let Some(renderer) = renderer.as_mut() else { return Err("no renderer".into()) };
        let mut rendered = Vec::with_capacity(events.len());
        for (event, view) in events.iter().zip(views) {
            let payload = match view {
                Some(view) => Some(renderer.render(view).await?),
                None => None,
            };
            rendered.push(Rendered { seq: event.seq, at: event.at, payload });
        }
        Ok(rendered)
    }
}

impl Attached {
    /// Queues the payloads after its cursor; false when it is detached (its queue is full) or gone.
    fn hand_over(&mut self, rendered: &[Rendered]) -> bool {
        for entry in rendered {
            if entry.seq <= self.cursor {
                continue;
            }
            if let Some(payload) = &entry.payload {
                let item = Item { seq: entry.seq, at: entry.at, payload: payload.clone() };
                match self.queue.try_send(item) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.link.resume_at.store(self.cursor, Ordering::Release);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            self.cursor = entry.seq;
        }
        true
    }

    /// Lets it read the log by itself after what it was handed (once it has sent that).
    fn detach(self) {
        self.link.resume_at.store(self.cursor, Ordering::Release);
    }
}

/// A class's own execution of its document: each event pushed in comes out as the response async-graphql makes
/// of it, exactly as for any subscriber of the document.
struct Renderer {
    events: mpsc::UnboundedSender<Result<ChangeEvent, ApiError>>,
    responses: BoxStream<'static, Response>,
    opened: Arc<AtomicBool>,
}

/// Marks a class's renderer: its `changes` or `relationshipChanged` resolver streams the events the hub pushes.
pub(crate) struct Rendering {
    events: Mutex<Option<mpsc::UnboundedReceiver<Result<ChangeEvent, ApiError>>>>,
    opened: Arc<AtomicBool>,
}

impl Rendering {
    /// The events to stream (once).
    pub(crate) fn events(&self) -> BoxStream<'static, Result<ChangeEvent, ApiError>> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.opened.store(events.is_some(), Ordering::Release);
        match events {
            Some(mut events) => futures_util::stream::poll_fn(move |cx| events.poll_recv(cx)).boxed(),
            None => futures_util::stream::empty().boxed(),
        }
    }
}

impl Renderer {
    fn start(request: &RenderRequest) -> Self {
        let (events, receiver) = mpsc::unbounded_channel();
        let opened = Arc::new(AtomicBool::new(false));
        let rendering = Rendering { events: Mutex::new(Some(receiver)), opened: opened.clone() };
        let mut run = Request::new(request.query.clone()).variables(request.variables.clone()).data(rendering);
        if let Some(name) = &request.operation_name {
            run = run.operation_name(name.clone());
        }
        let responses = request.schema.execute_stream_with_session_data(run, request.session.clone());
        Self { events, responses, opened }
    }

    /// The JSON of the `next` payload of `event`.
    async fn render(&mut self, event: ChangeEvent) -> Result<Arc<str>, String> {
        self.events.send(Ok(event)).map_err(|_| "the renderer ended".to_owned())?;
        let mut response = self.responses.next().await.ok_or("the renderer ended")?;
        if !self.opened.load(Ordering::Acquire) {
            // The document did not reach the resolver (it cannot: every subscriber's own execution did).
            return Err(format!("the renderer answered without an event: {:?}", response.errors));
        }
        response.errors.iter_mut().for_each(add_code);
        serde_json::to_string(&response).map(Arc::from).map_err(|error| error.to_string())
    }
}

/// Between one WebSocket subscription's own execution (its feed) and what the connection sends.
#[derive(Default)]
pub(crate) struct Link {
    /// The queue of the current attachment, for the connection's side to take.
    receiver: Mutex<Option<mpsc::Receiver<Item>>>,
    /// Where the feed resumes reading after a detachment.
    resume_at: AtomicI64,
    /// What the connection's side tells the feed once it has sent everything queued.
    handoff: Mutex<Option<Handoff>>,
    notify: Notify,
}

/// Why an attached feed continues.
pub(crate) enum Handoff {
    /// Detached: read the log after this position.
    Resume(i64),
    /// A queued payload was older than the lag limit: end with `LIMIT_EXCEEDED`.
    Lagging { age: chrono::Duration, resume_after: i64 },
}

impl Link {
    fn hand_off(&self, handoff: Handoff) {
        *self.handoff.lock().unwrap_or_else(PoisonError::into_inner) = Some(handoff);
        self.notify.notify_one();
    }

    /// Waits until the connection's side has sent everything queued and says how to go on.
    pub(crate) async fn handoff(&self) -> Handoff {
        loop {
            if let Some(handoff) = self.handoff.lock().unwrap_or_else(PoisonError::into_inner).take() {
                return handoff;
            }
            self.notify.notified().await;
        }
    }
}

/// What a WebSocket subscription's resolver finds in its context: the class it belongs to and its link.
pub(crate) struct Sharing {
    fanout: Arc<FanOut>,
    operation: Arc<str>,
    render: RenderRequest,
    link: Arc<Link>,
}

impl Sharing {
    /// The class of this subscription for `caller` (created with `lens` if it has no subscriber), and the link.
    pub(crate) fn join(&self, caller: Caller, lens: Lens, cursor: i64) -> (Arc<Class>, Arc<Link>) {
        let key = ClassKey { operation: self.operation.clone(), caller };
        (self.fanout.class(key, lens, self.render.clone(), cursor), self.link.clone())
    }
}

/// The class operation of a WebSocket subscription, if it can share payloads: a `changes` or
/// `relationshipChanged` subscription; its variables without the one that gives `after` (when only `after` uses
/// it), so that subscribers resuming from different cursors share.
pub(crate) fn operation_key(request: &mut Request) -> Option<Arc<str>> {
    use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
    let name = request.operation_name.clone();
    let variables = request.variables.clone();
    let query = request.query.clone();
    let document = request.parsed_query().ok()?;
    let operation = match (&document.operations, name.as_deref()) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?,
        (DocumentOperations::Multiple(_), None) => return None,
    };
    if operation.node.ty != OperationType::Subscription {
        return None;
    }
    let [selection] = operation.node.selection_set.node.items.as_slice() else { return None };
    let Selection::Field(field) = &selection.node else { return None };
    if !matches!(field.node.name.node.as_str(), "changes" | "relationshipChanged") {
        return None;
    }
    let mut variables = variables;
    if let Some(async_graphql_value::Value::Variable(after)) = field.node.get_argument("after").map(|value| &value.node)
    {
        if uses(&query, after) == 2 {
            variables.remove(after);
        }
    }
    let variables = serde_json::to_string(&variables).ok()?;
    Some(format!("{}\u{0}{query}\u{0}{variables}", name.unwrap_or_default()).into())
}

/// How often `$name` occurs in `query` as a whole variable name.
fn uses(query: &str, name: &str) -> usize {
    let pattern = format!("${name}");
    query
        .match_indices(&pattern)
        .filter(|(at, _)| {
            query[at + pattern.len()..].chars().next().is_none_or(|next| !(next.is_alphanumeric() || next == '_'))
        })
        .count()
}

/// Runs `request` (a subscription) for a WebSocket connection: its own execution, and the payloads its class
/// shares once its feed has attached. `None` when it cannot share (then run it as any subscription).
pub(crate) fn execute(
    fanout: &Arc<FanOut>,
    schema: &Schema<QueryRoot, Mutation, SubscriptionRoot>,
    mut request: Request,
    session: Arc<Data>,
    max_lag: chrono::Duration,
) -> Result<BoxStream<'static, Outgoing>, Box<Request>> {
    let Some(operation) = operation_key(&mut request) else { return Err(Box::new(request)) };
    let link = Arc::new(Link::default());
    let render = RenderRequest {
        schema: schema.clone(),
        query: request.query.clone(),
        operation_name: request.operation_name.clone(),
        variables: request.variables.clone(),
        session: session.clone(),
    };
    let sharing = Sharing { fanout: fanout.clone(), operation, render, link: link.clone() };
    let own = schema.execute_stream_with_session_data(request.data(sharing), session);
    Ok(Shared { own, link, receiver: None, max_lag }.boxed())
}

/// A shared subscription as the connection sees it: the payloads queued while its feed is attached, in order
/// with the responses of its own execution (the feed's own events before it attached and after it was detached,
/// and the error that ends it).
struct Shared {
    own: BoxStream<'static, Response>,
    link: Arc<Link>,
    receiver: Option<mpsc::Receiver<Item>>,
    max_lag: chrono::Duration,
}

impl Stream for Shared {
    type Item = Outgoing;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outgoing>> {
        let this = self.get_mut();
        loop {
            if let Some(receiver) = this.receiver.as_mut() {
                match receiver.poll_recv(cx) {
                    Poll::Ready(Some(item)) => {
                        let age = Utc::now() - item.at;
                        if age <= this.max_lag {
                            return Poll::Ready(Some(Outgoing::Rendered(item.payload)));
                        }
                        // Its own execution ends it with the error, as when it reads the log by itself.
                        this.receiver = None;
                        this.link.hand_off(Handoff::Lagging { age, resume_after: item.seq - 1 });
                    }
                    Poll::Ready(None) => {
                        // Detached, and everything queued is sent: the feed reads on from where the queue ended.
                        this.receiver = None;
                        this.link.hand_off(Handoff::Resume(this.link.resume_at.load(Ordering::Acquire)));
                    }
                    Poll::Pending => {}
                }
            }
            match this.own.poll_next_unpin(cx) {
                Poll::Ready(Some(response)) => return Poll::Ready(Some(Outgoing::Response(Box::new(response)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            if this.receiver.is_none() {
                let attached = this.link.receiver.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(receiver) = attached {
                    this.receiver = Some(receiver);
                    continue;
                }
            }
            return Poll::Pending;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_counts_only_as_a_whole_name() {
        let query = "subscription($after: String, $afterAll: String) { changes(after: $after) { cursor } }";
        assert_eq!(uses(query, "after"), 2);
        assert_eq!(uses(query, "afterAll"), 1);
    }

    #[test]
    fn subscribers_resuming_from_different_cursors_share_one_class() {
        let query = "subscription($after: String) { changes(after: $after) { cursor } }";
        let key = |after: &str| {
            let variables = Variables::from_json(serde_json::json!({ "after": after }));
            operation_key(&mut Request::new(query).variables(variables))
        };
        assert!(key("a").is_some());
        assert_eq!(key("a"), key("b"));
        // A variable used beside `after` stays in the key; so does a literal cursor (in the text).
        let twice = "subscription($c: String) { changes(after: $c, filter: { stakeholder: $c }) { cursor } }";
        let key_twice = |after: &str| {
            let variables = Variables::from_json(serde_json::json!({ "c": after }));
            operation_key(&mut Request::new(twice).variables(variables))
        };
        assert_ne!(key_twice("a"), key_twice("b"));
        assert!(
            operation_key(&mut Request::new("subscription { strengthCrossed(threshold: 0.5) { cursor } }")).is_none()
        );
        assert!(operation_key(&mut Request::new("query { __typename }")).is_none());
    }
}
