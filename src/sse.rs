//! GraphQL over Server-Sent Events: the `graphql-sse` protocol's distinct-connections mode (one operation per
//! `POST /graphql/stream`, with `Accept: text/event-stream`). Each result is a `next` event whose data is the
//! execution result's JSON, and the stream ends with a `complete` event, whether the operation ended (a query or
//! mutation after its one result, a subscription whose subscriber fell behind, with the error that says where to
//! resume) or failed before it ran (its errors in one `next`). A subscription resumes by its cursor as over
//! WebSocket (`changes(after:)`).
//!
//! The operation runs on the subscribers' runtime (as WebSocket subscribers do, so that thousands of woken streams
//! never queue ahead of requests) and hands its events to the response through a short queue; when the client goes
//! away, the queue closes and the operation is dropped, freeing its key's place; when the service shuts down, the
//! stream completes.

use crate::api::fanout::Outgoing;
use crate::graphql_http::Media;
use crate::ws::Slot;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{BoxStream, StreamExt};
use std::convert::Infallible;
use std::time::Duration;

/// Events queued for a slow client before the operation waits for it.
const QUEUED: usize = 64;

/// How often an idle stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The 406 to send when `headers` do not accept an event stream.
pub fn not_accepted(headers: &HeaderMap) -> Option<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let streams = accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case("text/event-stream")
    });
    if streams {
        return None;
    }
    let message = "/graphql/stream answers with Server-Sent Events only (graphql-sse, distinct connections mode); \
                   send `Accept: text/event-stream`, or send queries to /graphql";
    Some(Media::Json.error(StatusCode::NOT_ACCEPTABLE, message, "NOT_ACCEPTABLE"))
}

/// The event stream of `results`, driven on `runtime` (or the caller's, when there is none) while `place` is held.
pub(crate) fn respond(
    mut results: BoxStream<'static, Outgoing>,
    place: Slot,
    runtime: Option<&tokio::runtime::Handle>,
    stopping: Option<tokio::sync::watch::Receiver<bool>>,
) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Event>(QUEUED);
    let operation = async move {
        let _place = place;
        let stopped = async move {
            match stopping {
                Some(mut stopping) => drop(stopping.wait_for(|stop| *stop).await),
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stopped);
        loop {
            // A client that goes away closes the queue: the operation ends then, even one that never emits. When
            // the service shuts down, the stream completes (the client resumes from its last cursor elsewhere).
            let outgoing = tokio::select! {
                () = sender.closed() => return,
                () = &mut stopped => None,
                outgoing = results.next() => outgoing,
            };
            let Some(outgoing) = outgoing else { break };
            let data = match outgoing {
                Outgoing::Rendered(payload) => payload.to_string(),
                Outgoing::Response(mut response) => {
                    response.errors.iter_mut().for_each(crate::api::add_code);
                    match serde_json::to_string(&*response) {
                        Ok(json) => json,
                        Err(error) => {
                            tracing::error!(%error, "a streamed result could not be encoded");
                            break;
                        }
                    }
                }
            };
            if sender.send(Event::default().event("next").data(data)).await.is_err() {
                return;
            }
        }
        let _ = sender.send(Event::default().event("complete").data("")).await;
    };
    match runtime {
        Some(runtime) => drop(runtime.spawn(operation)),
        None => drop(tokio::spawn(operation)),
    }
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
}
