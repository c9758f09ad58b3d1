//! Admission control: how many analyses compute at once and how many may wait for a turn (the rest are refused at
//! once, with when to retry), and how many requests and analyses each API key may send (rate limits, by
//! `governor`'s GCRA). It decides whether, and when, work may start; admitted analyses compute on threads of their
//! own, below the CPU priority of the threads that answer requests ([`crate::priority`]), so that on a busy core a
//! simple query goes first.

use super::auth::KeyId;
use super::error::ApiError;
use super::ApiLimits;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus_client::metrics::histogram::Histogram;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument as _;

/// Most a refusal for load is held back before it is sent (HTTP 429, or a WebSocket error before the connection
/// reads on): the refusal's `retryAfter`, at most this.
pub const REFUSAL_PAUSE: Duration = Duration::from_secs(1);

/// Whose budget a request spends: a configured key, or (`None`) every anonymous caller together.
pub type Spender = Option<KeyId>;

/// The service-wide gate in front of requests and analyses.
pub struct Admission {
    running: Arc<Semaphore>,
    /// `fallsBelow` forecasts computing at once (as many as analyses may).
    forecasting: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    requests: DefaultKeyedRateLimiter<Spender>,
    analyses: DefaultKeyedRateLimiter<Spender>,
    clock: DefaultClock,
    /// The threads analyses compute on, below the threads that answer requests.
    background: Arc<crate::priority::Background>,
    /// How long analyses held their turn.
    run_seconds: Histogram,
    /// How long analyses waited for a turn (those that had to).
    wait_seconds: Histogram,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("max_waiting", &self.max_waiting).finish_non_exhaustive()
    }
}

/// A turn to compute one analysis; the next waiting one starts when it is dropped, and how long it was held is
/// recorded.
pub struct Turn {
    _permit: OwnedSemaphorePermit,
    started: std::time::Instant,
    seconds: Histogram,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.seconds.observe(self.started.elapsed().as_secs_f64());
    }
}

impl Admission {
    /// The gate for `limits` (which the configuration has checked to be positive).
    pub fn new(limits: &ApiLimits) -> Self {
        let positive = |value: u32| NonZeroU32::new(value.max(1)).expect("at least one");
        let requests = Quota::per_second(positive(limits.requests_per_second_per_key))
            .allow_burst(positive(limits.requests_per_second_per_key.saturating_mul(2)));
        let analyses = Quota::per_minute(positive(limits.analyses_per_minute_per_key))
            .allow_burst(positive((limits.max_analyses as u32).saturating_mul(2)));
        Self {
            running: Arc::new(Semaphore::new(limits.max_concurrent_analyses.max(1))),
            forecasting: Arc::new(Semaphore::new(limits.max_concurrent_analyses.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting: limits.max_queued_analyses,
            requests: RateLimiter::dashmap(requests),
            analyses: RateLimiter::dashmap(analyses),
            clock: DefaultClock::default(),
            background: Arc::new(crate::priority::Background::new(limits.analysis_nice)),
            run_seconds: crate::telemetry::seconds(),
            wait_seconds: crate::telemetry::seconds(),
        }
    }

    /// Registers the analyses' run and wait times in `registry`.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        let seconds = prometheus_client::registry::Unit::Seconds;
        registry.register_with_unit(
            "analysis_run",
            "How long analyses computed (held their turn)",
            seconds.clone(),
            self.run_seconds.clone(),
        );
        registry.register_with_unit(
            "analysis_wait",
            "How long analyses queued for a turn, those that had to",
            seconds,
            self.wait_seconds.clone(),
        );
    }

    /// Analyses waiting for a turn now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    fn turn(&self, permit: OwnedSemaphorePermit) -> Turn {
        Turn { _permit: permit, started: std::time::Instant::now(), seconds: self.run_seconds.clone() }
    }

    /// The threads analyses compute on, for work that runs in the background without a turn (the estimates of
    /// brokers, which only take what the cores leave idle, at the priority of analyses).
    pub fn background(&self) -> Arc<crate::priority::Background> {
        self.background.clone()
    }

    /// Counts one request against `spender`'s rate, or says when it may send the next.
    pub fn request(&self, spender: Spender) -> Result<(), ApiError> {
        self.requests.check_key(&spender).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            rate_limited("requests_per_second_per_key", "requests", wait)
        })
    }

    /// Waits for a turn to compute an analysis for `spender`, at most until `deadline`. Refuses at once when the
    /// spender is over its analysis rate (when the turn is to be `charge`d to it: a further pass of an analysis
    /// already charged is not), or when `max_queued_analyses` already wait.
    pub async fn analysis(&self, spender: Spender, deadline: Instant, charge: bool) -> Result<Turn, ApiError> {
        if let Err(not_until) = if charge { self.analyses.check_key(&spender) } else { Ok(()) } {
            let wait = not_until.wait_time_from(self.clock.now());
            return Err(rate_limited("analyses_per_minute_per_key", "analyses", wait));
        }
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Ok(self.turn(permit));
        }
        let joined = self.waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
            (waiting < self.max_waiting).then_some(waiting + 1)
        });
        if let Err(waiting) = joined {
            return Err(ApiError::Refused {
                limit: "max_queued_analyses",
                message: format!(
                    "the service is computing as many analyses as it may and {waiting} more are waiting, the \
                     most it queues (limits.max_queued_analyses); retry in a moment"
                ),
                retry_after: Some(1),
            });
        }
        let _leave = Leave(&self.waiting);
        let queued = std::time::Instant::now();
        let wait = deadline.saturating_duration_since(Instant::now());
        let acquired = tokio::time::timeout(wait, self.running.clone().acquire_owned())
            .instrument(tracing::debug_span!(target: crate::traces::TARGET, "analysis queue"))
            .await;
        self.wait_seconds.observe(queued.elapsed().as_secs_f64());
        match acquired {
            Ok(Ok(permit)) => Ok(self.turn(permit)),
            Ok(Err(_closed)) => Err(ApiError::Internal),
            Err(_elapsed) => Err(ApiError::Refused {
                limit: "request_timeout_ms",
                message: "the analysis waited for a turn until the request's deadline (limits.request_timeout_ms); \
                          the service is busy, retry in a moment"
                    .into(),
                retry_after: Some(1),
            }),
        }
    }
}

impl Admission {
    /// Waits for a turn to compute one `fallsBelow` forecast, at most until `deadline`: forecasts share as many
    /// blocking threads as analyses may use, so a request full of them cannot crowd out the store's reads.
    pub async fn forecast(&self, deadline: Option<Instant>) -> Result<Turn, ApiError> {
        let turn = self.forecasting.clone().acquire_owned();
        let turn = match deadline {
            Some(deadline) => {
                tokio::time::timeout_at(deadline.into(), turn).await.map_err(|_elapsed| ApiError::Refused {
                    limit: "request_timeout_ms",
                    message:
                        "the forecast waited for a turn until the request's deadline (limits.request_timeout_ms); ask \
                          for fewer forecasts at once"
                            .into(),
                    retry_after: None,
                })?
            }
            None => turn.await,
        };
        turn.map(|permit| self.turn(permit)).map_err(|_closed| ApiError::Internal)
    }
}

impl Admission {
    /// Computes `work` on a thread of its own below the threads that answer requests ([`crate::priority`]),
    /// holding `turn` until it is done, even if the caller stops waiting (the work stops at its own deadline). A
    /// thread per analysis costs tens of microseconds against analyses of milliseconds, and admission already bounds
    /// how many run.
    pub async fn compute<T: Send + 'static>(
        &self,
        turn: Turn,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (done, result) = tokio::sync::oneshot::channel();
        // Under the resolver that asked for it, in traces ([`crate::traces`]).
        let span = tracing::debug_span!(target: crate::traces::TARGET, "analysis");
        let spawned = self.background.spawn(move || {
            // The turn goes back before the answer (or, if `work` panics, before `done` is dropped), so whoever
            // the answer wakes finds it free.
            let answer = {
                let _turn = turn;
                let _span = span.enter();
                work()
            };
            _ = done.send(answer);
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start an analysis thread");
            return Err(ApiError::Internal);
        }
        result.await.map_err(|_| {
            tracing::error!("an analysis failed (it panicked; the log above says where)");
            ApiError::Internal
        })
    }
}

/// Takes one off the waiting count when the waiter leaves, however it leaves.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn rate_limited(limit: &'static str, what: &str, wait: Duration) -> ApiError {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::Refused {
        limit,
        message: format!(
            "this API key sent {what} faster than it may (limits.{limit}); retry in {seconds} s, and spread them out"
        ),
        retry_after: Some(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrent: usize, queued: usize) -> ApiLimits {
        ApiLimits {
            max_concurrent_analyses: concurrent,
            max_queued_analyses: queued,
            analyses_per_minute_per_key: 10_000,
            max_analyses: 1_000,
            ..ApiLimits::default()
        }
    }

    #[tokio::test]
    async fn a_further_pass_of_a_charged_analysis_is_not_charged_again() {
        // A burst of two (twice the analyses a request may hold), then one a minute.
        let admission = Admission::new(&ApiLimits { analyses_per_minute_per_key: 1, max_analyses: 1, ..limits(4, 4) });
        let deadline = Instant::now() + Duration::from_secs(60);
        let charged = (admission.analysis(None, deadline, true).await, admission.analysis(None, deadline, true).await);
        assert!(charged.0.is_ok() && charged.1.is_ok());
        let refused = admission.analysis(None, deadline, true).await.err().expect("over the rate");
        assert!(matches!(refused, ApiError::Refused { limit: "analyses_per_minute_per_key", .. }));
        assert!(admission.analysis(None, deadline, false).await.is_ok(), "the same analysis' next pass runs");
    }

    #[tokio::test]
    async fn past_the_running_and_waiting_analyses_the_rest_are_refused_at_once() {
        let admission = Arc::new(Admission::new(&limits(2, 3)));
        let deadline = Instant::now() + Duration::from_secs(60);
        let first = admission.analysis(None, deadline, true).await.ok();
        let second = admission.analysis(None, deadline, true).await.ok();
        assert!(first.is_some() && second.is_some());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let admission = admission.clone();
                tokio::spawn(async move { admission.analysis(None, deadline, true).await.map(|_| ()) })
            })
            .collect();
        while admission.waiting.load(Ordering::Acquire) < 3 {
            tokio::task::yield_now().await;
        }
        let refused = admission.analysis(None, deadline, true).await.err().expect("a sixth analysis is refused");
        assert!(matches!(refused, ApiError::Refused { limit: "max_queued_analyses", retry_after: Some(1), .. }));
        drop((first, second));
        for waiter in waiters {
            assert!(waiter.await.unwrap().is_ok(), "every queued analysis gets its turn");
        }
    }

    #[tokio::test]
    async fn a_waiting_analysis_gives_up_at_the_deadline() {
        let admission = Admission::new(&limits(1, 4));
        let _held = admission.analysis(None, Instant::now() + Duration::from_secs(60), true).await.ok();
        let refused = admission.analysis(None, Instant::now() + Duration::from_millis(20), true).await.err();
        assert!(matches!(refused, Some(ApiError::Refused { limit: "request_timeout_ms", .. })));
        assert_eq!(admission.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_panicking_analysis_answers_internal_and_gives_its_turn_back() {
        let admission = Admission::new(&limits(1, 1));
        let turn = admission.analysis(None, Instant::now() + Duration::from_secs(60), true).await.unwrap();
        assert_eq!(admission.compute(turn, || 6 * 7).await.ok(), Some(42));
        let turn = admission.analysis(None, Instant::now() + Duration::from_secs(60), true).await.unwrap();
        let failed = admission.compute(turn, || panic!("a failing analysis")).await;
        assert!(matches!(failed, Err(ApiError::Internal)), "a panicking analysis answers INTERNAL");
        assert_eq!(admission.running.available_permits(), 1, "and gives its turn back");
    }

    #[test]
    fn each_key_has_its_own_request_rate() {
        let admission = Admission::new(&ApiLimits { requests_per_second_per_key: 5, ..ApiLimits::default() });
        let sent = (0..100).take_while(|_| admission.request(Some(KeyId(0))).is_ok()).count();
        assert_eq!(sent, 10, "a burst of twice the rate");
        let refused = admission.request(Some(KeyId(0))).err();
        assert!(matches!(refused, Some(ApiError::Refused { limit: "requests_per_second_per_key", .. })));
        assert!(admission.request(Some(KeyId(1))).is_ok(), "another key is not held back");
        assert!(admission.request(None).is_ok(), "nor are anonymous callers");
    }
}
