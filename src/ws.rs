//! GraphQL over WebSocket: the server side of `graphql-transport-ws` (the protocol of the `graphql-ws` library,
//! <https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md>) and of the legacy `graphql-ws` protocol of
//! subscriptions-transport-ws, over axum's WebSocket. Only this module and `http` know WebSocket.
//!
//! One state machine serves both protocols: they differ in message names (`subscribe`/`start`, `next`/`data`,
//! `complete`/`stop`), the legacy one has `connection_terminate` and `connection_error` and no ping, and
//! `graphql-transport-ws` defines the close codes, which the legacy connections get too:
//!
//! | close | when |
//! |---|---|
//! | `4400` | a message that is not JSON, has an unknown `type`, or lacks what its type needs |
//! | `4401 Unauthorized` | `subscribe` before the connection was acknowledged |
//! | `4403 Forbidden: …` | `connection_init` without a valid key (and anonymous reads are not allowed) |
//! | `4408 Connection initialisation timeout` | no `connection_init` within [`WsLimits::connection_init_timeout_ms`] |
//! | `4409 Subscriber for <id> already exists` | `subscribe` with the id of an operation still running |
//! | `4429 Too many initialisation requests` | a second `connection_init` |
//! | `1009` | a message larger than the transport's limit (the request body limit) |
//!
//! Operations run through [`StakegraphSchema::execute_websocket`] with the connection's caller as session data, so
//! the request policy (limits, deadline, error codes) applies as over HTTP; a `changes` subscription's events may
//! come rendered once for all the subscribers of its class (`api::fanout`), and are sent as they are. Each running
//! operation's stream sits in a [`SelectAll`]: a wake-up polls only the streams that were woken, not every stream of
//! the connection. What the operations have ready when the connection gets its turn (at most 64 messages or 64 KiB)
//! is written with one flush, so a subscriber that fell behind costs one `send` for several events, not one each.
//! Nothing is read or polled while a batch is being written, so a client that stops reading holds only what its
//! socket buffers hold and one batch (its subscriptions then fall behind the change log, which ends them with
//! `LIMIT_EXCEEDED` once they lag too far; see `api::subscription`).
//!
//! Operations are capped per connection and per API key (across all of the key's connections); past a cap the
//! `subscribe` gets an `error` message with `extensions.code = "LIMIT_EXCEEDED"` naming the limit, and the
//! connection stays open. Callers without a key (`serve --demo`) share one allowance, as if they were one key, so
//! that the service's total stays bounded. A slot is freed as soon as its operation completes, is completed by the
//! client, or its connection closes.

use crate::api::admission::{Admission, Spender, REFUSAL_PAUSE};
use crate::api::auth::KeyId;
use crate::api::fanout::Outgoing;
use crate::api::{Caller, StakegraphSchema};
use async_graphql::{Data, Response, Value as GraphQLValue};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{AbortHandle, Abortable, BoxStream, SelectAll, Stream, StreamExt};
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

/// Limits of the WebSocket transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsLimits {
    /// How long, in milliseconds, a new connection may take to send `connection_init` before it is closed with
    /// `4408`.
    pub connection_init_timeout_ms: u64,
    /// Most operations (subscriptions, and queries or mutations while they run) one connection may run at once.
    pub max_subscriptions_per_connection: usize,
    /// Most operations one API key may run at once over all of its connections (callers without a key count as
    /// one key).
    pub max_subscriptions_per_key: usize,
    /// How long, in milliseconds, one message may wait for a client that does not read before the connection is
    /// dropped (its operations end and free their slots).
    pub send_timeout_ms: u64,
    /// 0 (the default): the threads that serve WebSocket connections run at the requests' priority. 1 to 19: below
    /// the threads that answer requests (`crate::priority`), at `SCHED_IDLE` on Linux, raised to an ordinary thread
    /// this much nicer than the process when they starve. Measured on a shared machine, that made mutations slower,
    /// not faster, and starved the fan-out behind other processes (README, "Subscriptions").
    pub subscriber_nice: u8,
}

impl Default for WsLimits {
    fn default() -> Self {
        Self {
            connection_init_timeout_ms: 10_000,
            max_subscriptions_per_connection: 100,
            max_subscriptions_per_key: 500,
            send_timeout_ms: 30_000,
            subscriber_nice: 0,
        }
    }
}

impl WsLimits {
    fn init_timeout(&self) -> Duration {
        Duration::from_millis(self.connection_init_timeout_ms)
    }
}

/// What the connections of one service share: the limits, and how many operations each key runs. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct WsHub {
    limits: WsLimits,
    running: Arc<Mutex<HashMap<Spender, usize>>>,
    /// The service's gate: each `subscribe` counts as a request against its key's rate.
    admission: Option<Arc<Admission>>,
}

impl WsHub {
    /// A hub with these limits and nothing running.
    pub fn new(limits: WsLimits) -> Self {
        Self { limits, running: Arc::default(), admission: None }
    }

    /// The same hub, counting each `subscribe` against its key's request rate at `admission`.
    pub fn with_admission(mut self, admission: Arc<Admission>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Subscriptions running now (WebSocket and SSE), for `/metrics`.
    pub fn running(&self) -> usize {
        self.running.lock().map(|running| running.values().sum()).unwrap_or(0)
    }

    /// The limits.
    pub fn limits(&self) -> WsLimits {
        self.limits
    }

    /// A slot for one more operation of `holder`, or `None` at its cap (a Server-Sent Events stream takes one too).
    pub(crate) fn acquire(&self, holder: Spender) -> Option<Slot> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let count = running.entry(holder).or_insert(0);
        if *count >= self.limits.max_subscriptions_per_key {
            return None;
        }
        *count += 1;
        Some(Slot { running: self.running.clone(), holder })
    }
}

/// One running operation's place in its holder's allowance; dropping it frees the place.
pub(crate) struct Slot {
    running: Arc<Mutex<HashMap<Spender, usize>>>,
    holder: Spender,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.holder) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.holder);
            }
        }
    }
}

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    TransportWs,
    /// `graphql-ws`, the legacy protocol of subscriptions-transport-ws.
    LegacyGraphqlWs,
}

impl Protocol {
    /// The first protocol of a `Sec-WebSocket-Protocol` list (comma-separated) that this server speaks.
    pub fn negotiate(offered: &str) -> Option<Self> {
        offered.split(',').map(str::trim).find_map(|name| match name {
            "graphql-transport-ws" => Some(Protocol::TransportWs),
            "graphql-ws" => Some(Protocol::LegacyGraphqlWs),
            _ => None,
        })
    }

    /// Its `Sec-WebSocket-Protocol` name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::LegacyGraphqlWs => "graphql-ws",
        }
    }

    /// The name of a client message of type `kind` in this protocol's terms.
    fn client_message(self, kind: &str) -> Option<ClientMessage> {
        Some(match (self, kind) {
            (_, "connection_init") => ClientMessage::Init,
            (Protocol::TransportWs, "subscribe") | (Protocol::LegacyGraphqlWs, "start") => ClientMessage::Subscribe,
            (Protocol::TransportWs, "complete") | (Protocol::LegacyGraphqlWs, "stop") => ClientMessage::Complete,
            (Protocol::TransportWs, "ping") => ClientMessage::Ping,
            (Protocol::TransportWs, "pong") => ClientMessage::Pong,
            (Protocol::LegacyGraphqlWs, "connection_terminate") => ClientMessage::Terminate,
            _ => return None,
        })
    }

    /// The type of the message that carries one result.
    fn next(self) -> &'static str {
        match self {
            Protocol::TransportWs => "next",
            Protocol::LegacyGraphqlWs => "data",
        }
    }

    /// The client message types, for error messages.
    fn client_types(self) -> &'static str {
        match self {
            Protocol::TransportWs => "connection_init, subscribe, complete, ping, pong",
            Protocol::LegacyGraphqlWs => "connection_init, start, stop, connection_terminate",
        }
    }
}

/// What a client message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientMessage {
    Init,
    Subscribe,
    Complete,
    Ping,
    Pong,
    Terminate,
}

/// Who a `connection_init` says the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The caller its operations run as.
    pub caller: Caller,
    /// The configured key it came with; `None` for an anonymous caller (allowed under `serve --demo`).
    pub key: Option<KeyId>,
}

/// Serves one upgraded connection until it closes. `admit` reads the `connection_init` payload: the caller, or why
/// the connection is refused (said in the `4403` close reason, so at most about 110 bytes).
pub async fn serve(
    socket: WebSocket,
    protocol: Protocol,
    executor: StakegraphSchema,
    hub: WsHub,
    admit: impl FnOnce(&Value) -> Result<Credentials, String> + Send,
) {
    let mut connection = Connection {
        socket,
        protocol,
        executor,
        hub,
        admit: Some(admit),
        session: None,
        active: HashMap::new(),
        running: SelectAll::new(),
        started: 0,
    };
    connection.run().await;
}

/// Why the server closes a connection.
#[derive(Debug)]
struct Close {
    code: u16,
    reason: String,
}

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }

    fn invalid(reason: impl Into<String>) -> Self {
        Self::new(4400, reason)
    }
}

/// What to do after a step.
enum Flow {
    Continue,
    /// The socket is gone or closed normally: stop without a close frame of ours.
    Stop,
    Close(Close),
}

/// An operation the client started and that has not ended.
struct Active {
    /// Tells this operation's results from those of an earlier one with the same id.
    generation: u64,
    /// The start of its `next` messages, up to the payload: `{"type":"next","id":<id>,"payload":`.
    next: Box<str>,
    abort: AbortHandle,
    _slot: Slot,
}

struct Connection<A> {
    socket: WebSocket,
    protocol: Protocol,
    executor: StakegraphSchema,
    hub: WsHub,
    admit: Option<A>,
    /// The caller's session data and allowance, once acknowledged.
    session: Option<(Arc<Data>, Spender)>,
    active: HashMap<String, Active>,
    running: SelectAll<Operation>,
    /// Operations started so far (the next generation).
    started: u64,
}

impl<A> Connection<A>
where
    A: FnOnce(&Value) -> Result<Credentials, String>,
{
    async fn run(&mut self) {
        let init_deadline = tokio::time::sleep(self.hub.limits.init_timeout());
        tokio::pin!(init_deadline);
        loop {
            let flow = tokio::select! {
                received = self.socket.recv() => match received {
                    Some(Ok(Message::Text(text))) => self.receive(text.as_bytes()).await,
                    Some(Ok(Message::Binary(bytes))) => self.receive(&bytes).await,
                    Some(Ok(Message::Close(_))) => {
                        // Free the slots before the close is answered, then let the socket answer it (within the
                        // time a close of ours gets, should the client not read).
                        self.end_all();
                        let answer = async { while let Some(Ok(_)) = self.socket.recv().await {} };
                        _ = tokio::time::timeout(self.hub.limits.init_timeout(), answer).await;
                        Flow::Stop
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
                    // A message past the size limit: tungstenite's `CapacityError::MessageTooLong` (axum wraps it
                    // in an error that can only be read as text), answered with 1009 as RFC 6455 says.
                    Some(Err(error)) if error.to_string().contains("Message too long") => {
                        Flow::Close(Close::new(1009, format!("{error}; send smaller messages")))
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "a WebSocket connection failed");
                        Flow::Stop
                    }
                    None => Flow::Stop,
                },
                Some(event) = self.running.next(), if !self.running.is_empty() => self.deliver(event).await,
                () = &mut init_deadline, if self.admit.is_some() => Flow::Close(Close::new(
                    4408,
                    "Connection initialisation timeout",
                )),
            };
            match flow {
                Flow::Continue => {}
                Flow::Stop => return,
                Flow::Close(close) => return self.close(close).await,
            }
        }
    }

    /// Handles one client message.
    async fn receive(&mut self, bytes: &[u8]) -> Flow {
        #[derive(serde::Deserialize)]
        struct Incoming {
            #[serde(rename = "type")]
            kind: String,
            id: Option<String>,
            payload: Option<Value>,
        }
        let incoming: Incoming = match serde_json::from_slice(bytes) {
            Ok(incoming) => incoming,
            Err(error) => {
                return Flow::Close(Close::invalid(format!(
                    "Invalid message received: not a protocol message ({error})"
                )))
            }
        };
        let Some(message) = self.protocol.client_message(&incoming.kind) else {
            return Flow::Close(Close::invalid(format!(
                "Invalid message received: unknown type `{}`; {} sends {}",
                incoming.kind,
                self.protocol.name(),
                self.protocol.client_types()
            )));
        };
        match message {
            ClientMessage::Init => self.init(incoming.payload.unwrap_or(Value::Null)).await,
            ClientMessage::Ping => {
                let pong = match incoming.payload {
                    Some(payload) => json!({ "type": "pong", "payload": payload }),
                    None => json!({ "type": "pong" }),
                };
                self.send(pong).await
            }
            ClientMessage::Pong => Flow::Continue,
            ClientMessage::Terminate => Flow::Close(Close::new(1000, "connection_terminate")),
            ClientMessage::Subscribe | ClientMessage::Complete => {
                let Some(id) = incoming.id else {
                    return Flow::Close(Close::invalid(format!(
                        "Invalid message received: `{}` needs an `id`",
                        incoming.kind
                    )));
                };
                if message == ClientMessage::Complete {
                    return self.complete(&id).await;
                }
                self.subscribe(id, incoming.payload).await
            }
        }
    }

    /// `connection_init`: admits the caller, or refuses the connection.
    async fn init(&mut self, payload: Value) -> Flow {
        let Some(admit) = self.admit.take() else {
            return Flow::Close(Close::new(4429, "Too many initialisation requests"));
        };
        match admit(&payload) {
            Ok(credentials) => {
                let mut data = Data::default();
                data.insert(credentials.caller);
                if let Some(key) = credentials.key {
                    data.insert(key);
                }
                self.session = Some((Arc::new(data), credentials.key));
                self.send(json!({ "type": "connection_ack" })).await
            }
            Err(why) => {
                if self.protocol == Protocol::LegacyGraphqlWs {
                    let error = json!({ "type": "connection_error", "payload": coded(&why, "UNAUTHENTICATED") });
                    if let Flow::Stop = self.send(error).await {
                        return Flow::Stop;
                    }
                }
                Flow::Close(Close::new(4403, format!("Forbidden: {why}")))
            }
        }
    }

    /// `subscribe`: starts the operation, or refuses it with an `error` message when a cap is reached.
    async fn subscribe(&mut self, id: String, payload: Option<Value>) -> Flow {
        let Some((session, holder)) = self.session.clone() else {
            return Flow::Close(Close::new(4401, "Unauthorized"));
        };
        if self.active.contains_key(&id) {
            return Flow::Close(Close::new(4409, format!("Subscriber for {id} already exists")));
        }
        let request: async_graphql::Request = match payload.map(serde_json::from_value).transpose() {
            Ok(Some(request)) => request,
            Ok(None) => {
                return Flow::Close(Close::invalid(
                    "Invalid message received: `subscribe` needs a `payload` with the `query`",
                ))
            }
            Err(error) => {
                return Flow::Close(Close::invalid(format!(
                    "Invalid message received: the payload is not a GraphQL request ({error})"
                )))
            }
        };
        if let Some(admission) = &self.hub.admission {
            if let Err(refused) = admission.request(holder) {
                let wait = match &refused {
                    crate::api::ApiError::Refused { retry_after: Some(seconds), .. } => *seconds,
                    _ => 1,
                };
                let error = serde_json::to_value(refused.into_server_error()).unwrap_or_default();
                let flow = self.send_error(&id, vec![error]).await;
                // Like a 429 over HTTP: this connection reads its next message after a pause, so a client that
                // keeps sending cannot keep a core busy refusing it (its subscriptions wait as long).
                tokio::time::sleep(REFUSAL_PAUSE.min(Duration::from_secs(wait))).await;
                return flow;
            }
        }
        let limits = self.hub.limits;
        if self.active.len() >= limits.max_subscriptions_per_connection {
            let message = format!(
                "this connection already runs {} operations, the most `websocket.max_subscriptions_per_connection` \
                 allows; complete one (send `complete` with its id) or open another connection",
                self.active.len()
            );
            return self.send_error(&id, vec![coded(&message, "LIMIT_EXCEEDED")]).await;
        }
        let Some(slot) = self.hub.acquire(holder) else {
            let message = format!(
                "this API key already runs {} operations over all its connections, the most \
                 `websocket.max_subscriptions_per_key` allows; complete one (send `complete` with its id) first",
                limits.max_subscriptions_per_key
            );
            return self.send_error(&id, vec![coded(&message, "LIMIT_EXCEEDED")]).await;
        };
        let stream = self.executor.execute_websocket(request, session);
        let (stream, abort) = futures_util::stream::abortable(stream);
        self.started += 1;
        let generation = self.started;
        let next = format!(r#"{{"type":"{}","id":{},"payload":"#, self.protocol.next(), json!(id)).into();
        let id: Arc<str> = id.into();
        self.active.insert(id.to_string(), Active { generation, next, abort, _slot: slot });
        self.running.push(Operation { id, generation, stream: Some(stream), first: true });
        Flow::Continue
    }

    /// `complete` from the client: stops the operation (an unknown id is ignored, as the protocol allows).
    async fn complete(&mut self, id: &str) -> Flow {
        let Some(active) = self.active.remove(id) else { return Flow::Continue };
        active.abort.abort();
        // The legacy protocol answers `stop` with `complete`; `graphql-transport-ws` sends nothing more.
        if self.protocol == Protocol::LegacyGraphqlWs {
            return self.send(json!({ "type": "complete", "id": id })).await;
        }
        Flow::Continue
    }

    /// Sends what operations produced: `event`, and whatever the connection's other operations (or the same one)
    /// have ready at this moment, up to [`BATCH_MESSAGES`] messages or [`BATCH_BYTES`], written with one flush (one
    /// `send` on the socket). A subscriber that keeps up gets one event per flush as before; one that fell behind
    /// (its class queued several events while the connection waited for a turn) gets them in one write, so a busy
    /// service catches up instead of falling further behind.
    async fn deliver(&mut self, event: Produced) -> Flow {
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut next = Some(event);
        while let Some(event) = next.take() {
            if let Some(message) = self.message(event) {
                bytes += message.len();
                batch.push(Message::text(message));
            }
            if batch.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
                break;
            }
            next = self.ready_now().await;
        }
        self.send_all(batch).await
    }

    /// The next result of a running operation if one is ready now (polled with this task's waker, so nothing ready
    /// later is missed).
    async fn ready_now(&mut self) -> Option<Produced> {
        std::future::poll_fn(|cx| match self.running.poll_next_unpin(cx) {
            Poll::Ready(event) => Poll::Ready(event),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }

    /// The message that sends what an operation produced (a result, or its end); `None` when there is none to
    /// send (the client completed the operation meanwhile).
    fn message(&mut self, (id, generation, event): Produced) -> Option<String> {
        let active = self.active.get(&*id).filter(|active| active.generation == generation)?;
        let Some((outgoing, first)) = event else {
            self.active.remove(&*id);
            return Some(json!({ "type": "complete", "id": &*id }).to_string());
        };
        let mut response = match outgoing {
            Outgoing::Response(response) => *response,
            // A payload rendered once for every subscriber of its class: only the id is this operation's.
            Outgoing::Rendered(payload) => {
                let mut message = String::with_capacity(active.next.len() + payload.len() + 1);
                message.push_str(&active.next);
                message.push_str(&payload);
                message.push('}');
                return Some(message);
            }
        };
        response.errors.iter_mut().for_each(crate::api::add_code);
        if first && before_execution(&response) {
            // The operation never ran (a syntax or validation error, a limit): an `error` message ends it.
            if let Some(active) = self.active.remove(&*id) {
                active.abort.abort();
            }
            let errors = serde_json::to_value(&response.errors).unwrap_or_default();
            return Some(json!({ "type": "error", "id": &*id, "payload": errors }).to_string());
        }
        Some(json!({ "type": self.protocol.next(), "id": &*id, "payload": response }).to_string())
    }

    async fn send_error(&mut self, id: &str, errors: Vec<Value>) -> Flow {
        self.send(json!({ "type": "error", "id": id, "payload": errors })).await
    }

    /// Sends `message`; a client that has not taken it within `websocket.send_timeout_ms` is dropped, so a socket
    /// that stops reading holds no slot, subscription or buffer for long.
    async fn send(&mut self, message: Value) -> Flow {
        self.send_text(message.to_string()).await
    }

    /// Sends `message`, JSON already, as [`Self::send`] does.
    async fn send_text(&mut self, message: String) -> Flow {
        self.send_all(vec![Message::text(message)]).await
    }

    /// Sends `messages` in order with one flush, as [`Self::send`] does (the timeout is for all of them).
    async fn send_all(&mut self, messages: Vec<Message>) -> Flow {
        if messages.is_empty() {
            return Flow::Continue;
        }
        let timeout = Duration::from_millis(self.hub.limits.send_timeout_ms);
        let socket = &mut self.socket;
        let sending = async move {
            for message in messages {
                socket.feed(message).await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout(timeout, sending).await {
            Ok(Ok(())) => Flow::Continue,
            Ok(Err(_)) | Err(_) => Flow::Stop,
        }
    }

    /// Ends every operation and frees their slots.
    fn end_all(&mut self) {
        for (_, active) in self.active.drain() {
            active.abort.abort();
        }
        self.running = SelectAll::new();
    }

    /// Closes the connection with `close`. A client that does not read gets as long as a `connection_init` may
    /// take for the close frame to go out.
    async fn close(&mut self, close: Close) {
        self.end_all();
        if self.protocol == Protocol::LegacyGraphqlWs && close.code != 1000 && close.code != 4403 {
            let error =
                json!({ "type": "connection_error", "payload": coded(&close.reason, close_code_name(close.code)) });
            _ = self.send(error).await;
        }
        tracing::debug!(code = close.code, reason = %close.reason, "closing a WebSocket connection");
        let frame = CloseFrame { code: close.code, reason: truncate(&close.reason, MAX_CLOSE_REASON).into() };
        let closing = self.socket.send(Message::Close(Some(frame)));
        _ = tokio::time::timeout(self.hub.limits.init_timeout(), closing).await;
    }
}

/// Most messages written with one flush.
const BATCH_MESSAGES: usize = 64;

/// Bytes of messages past which no more are added to a flush.
const BATCH_BYTES: usize = 64 * 1024;

/// What a running operation produced: its id, generation, and a result (with whether it is the first) or its end.
type Produced = (Arc<str>, u64, Option<(Outgoing, bool)>);

/// A close reason may hold at most 123 bytes (RFC 6455 §5.5: 125 bytes of control payload, 2 of them the code).
const MAX_CLOSE_REASON: usize = 123;

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The error code a legacy `connection_error` carries for a close code.
fn close_code_name(code: u16) -> &'static str {
    match code {
        4401 => "UNAUTHENTICATED",
        4408 | 1009 => "LIMIT_EXCEEDED",
        _ => "BAD_USER_INPUT",
    }
}

/// A GraphQL error with `message` and `code`.
fn coded(message: &str, code: &str) -> Value {
    json!({ "message": message, "extensions": { "code": code } })
}

/// Whether `response` reports that its operation never ran: no data, and errors that point at no field (parse,
/// validation and limit errors; a resolver's error names its field).
fn before_execution(response: &Response) -> bool {
    matches!(response.data, GraphQLValue::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// One operation's results, tagged with its id and generation, then `None` when it ends; the stream (and what it
/// holds, a subscription's state) is dropped as soon as it ends or is aborted.
struct Operation {
    id: Arc<str>,
    generation: u64,
    stream: Option<Abortable<BoxStream<'static, Outgoing>>>,
    /// Whether the next result is the first.
    first: bool,
}

impl Stream for Operation {
    type Item = Produced;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(stream) = this.stream.as_mut() else { return Poll::Ready(None) };
        let item = match stream.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(response)) => Some((response, std::mem::replace(&mut this.first, false))),
            Poll::Ready(None) => {
                this.stream = None;
                None
            }
        };
        Poll::Ready(Some((this.id.clone(), this.generation, item)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_first_protocol_it_speaks() {
        assert_eq!(Protocol::negotiate("graphql-transport-ws"), Some(Protocol::TransportWs));
        assert_eq!(Protocol::negotiate("foo, graphql-ws, graphql-transport-ws"), Some(Protocol::LegacyGraphqlWs));
        assert_eq!(Protocol::negotiate("foo"), None);
    }

    #[test]
    fn close_reasons_are_cut_on_a_character_boundary() {
        let reason = "é".repeat(100);
        let cut = truncate(&reason, MAX_CLOSE_REASON);
        assert!(cut.len() <= MAX_CLOSE_REASON && cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate("short", MAX_CLOSE_REASON), "short");
    }

    #[test]
    fn a_slot_is_freed_when_dropped() {
        let hub = WsHub::new(WsLimits { max_subscriptions_per_key: 1, ..WsLimits::default() });
        let holder = Some(KeyId(0));
        let slot = hub.acquire(holder).expect("a first slot");
        assert!(hub.acquire(holder).is_none(), "the key is at its cap");
        assert!(hub.acquire(None).is_some(), "another holder has its own allowance");
        drop(slot);
        assert!(hub.acquire(holder).is_some(), "the slot came back");
        assert!(hub.running.lock().unwrap().is_empty(), "nothing is counted once every slot is dropped");
    }
}
