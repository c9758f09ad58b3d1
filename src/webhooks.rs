//! Webhook delivery: the change log POSTed to each registered webhook, in log order, signed as Standard Webhooks
//! says, at least once. Each enabled webhook has a task of its own that reads the log after the webhook's durable
//! cursor (kept in the store, so a restart resumes where deliveries stopped), sees each event as a subscriber with
//! its filter and visibility would (`api::subscription::Lens`), and sends the matching ones one at a time: an event
//! is retried with a doubling delay until the receiver takes it (2xx), and only then does the cursor move past it.
//! A webhook whose deliveries fail for longer than `disable_after_seconds` is disabled and says why.
//!
//! Targets must be allowed by configuration (`[webhooks] allowed_hosts`): the service sends nothing to a host no
//! one allowed (an internal address, say), and follows no redirect.

use crate::api::subscription::{Filter, Lens};
use crate::domain::webhook::{self, Attempt, EventFilter, Webhook};
use crate::domain::WebhookId;
use crate::engine::Engine;
use crate::store::{GraphStore, StoreError, StoreResult};
use chrono::Utc;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Change-log entries read per step.
const PAGE: usize = 100;

/// How long to wait before reading a store that failed again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The longest webhook URL.
const MAX_URL_BYTES: usize = 2_048;

/// How long an idle delivery task waits for the engine's next log position before it reads the log anyway.
const IDLE_READ: Duration = Duration::from_secs(10);

/// The `[webhooks]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Hosts webhooks may be sent to: `host` (any port) or `host:port`. Empty: no webhook can be registered.
    #[serde(deserialize_with = "crate::config::list_or_text")]
    pub allowed_hosts: Vec<String>,
    /// How long deliveries may keep failing before the webhook is disabled.
    pub disable_after_seconds: u64,
    /// The delay before the first retry of a failed delivery; it doubles with each attempt.
    pub retry_initial_ms: u64,
    /// The longest delay between two attempts.
    pub retry_max_seconds: u64,
    /// How long one delivery may take (connecting, sending, the receiver's answer).
    pub timeout_seconds: u64,
    /// The most webhooks that may be registered.
    pub max_webhooks: usize,
    /// Whether a host name in `allowed_hosts` may resolve to a private, loopback or link-local address (off: such
    /// addresses are refused, so that a name whose DNS changes cannot point deliveries into the internal network;
    /// an address written in `allowed_hosts` is always allowed as written).
    pub allow_private_networks: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            disable_after_seconds: 3 * 24 * 3600,
            retry_initial_ms: 1_000,
            retry_max_seconds: 3_600,
            timeout_seconds: 15,
            max_webhooks: 100,
            allow_private_networks: false,
        }
    }
}

impl WebhookSettings {
    /// Refuses settings that cannot work, saying which and how to fix it.
    pub fn check(&self) -> Result<(), String> {
        for host in &self.allowed_hosts {
            let bare_ipv6 = !host.starts_with('[') && host.matches(':').count() > 1;
            if host.is_empty() || host.contains('/') || host.contains('@') || bare_ipv6 {
                return Err(format!(
                    "webhooks.allowed_hosts: '{host}' is not a host; write a host name or address, with a port or \
                     without (`hooks.example.com`, `127.0.0.1:9000`, `[2001:db8::1]:443`), no scheme or path"
                ));
            }
        }
        if self.retry_initial_ms == 0 || self.retry_max_seconds == 0 || self.timeout_seconds == 0 {
            return Err("webhooks: retry_initial_ms, retry_max_seconds and timeout_seconds must be above 0".into());
        }
        Ok(())
    }

    fn disable_after(&self) -> Duration {
        Duration::from_secs(self.disable_after_seconds)
    }

    /// `url` if it may be a webhook's target: http or https, no credentials, an allowed host.
    pub fn check_url(&self, url: &str) -> Result<String, WebhookError> {
        let invalid = |why: &str| WebhookError::Invalid(format!("url: {why}"));
        if url.len() > MAX_URL_BYTES {
            return Err(invalid(&format!("{} bytes is longer than the {MAX_URL_BYTES} a URL may have", url.len())));
        }
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|error| invalid(&format!("'{url}' is not a URL ({error}); write http(s)://host[:port]/path")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("only http and https URLs can receive webhooks"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("leave credentials out of the URL; verify deliveries by their signature instead"));
        }
        let host = parsed.host_str().unwrap_or_default();
        let port = parsed.port_or_known_default().unwrap_or_default();
        if !self.allows(host, port) {
            return Err(invalid(&format!(
                "the host '{host}:{port}' is not allowed to receive webhooks; an operator allows it in the \
                 configuration ([webhooks] allowed_hosts, or STAKEGRAPH_WEBHOOK_HOSTS)"
            )));
        }
        Ok(parsed.to_string())
    }

    /// Whether the configuration allows sending to `host` on `port`.
    fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            let (name, allowed_port) = match allowed.rsplit_once(':') {
                Some((name, port)) if !name.ends_with(':') && port.parse::<u16>().is_ok() => {
                    (name, port.parse::<u16>().ok())
                }
                _ => (allowed.as_str(), None),
            };
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name.eq_ignore_ascii_case(host) && allowed_port.is_none_or(|allowed| allowed == port)
        })
    }
}

/// Why a webhook could not be registered or changed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The input is not acceptable; the message says how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// No webhook has this id.
    #[error("no webhook has this id")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The registered webhooks and their delivery tasks.
pub struct Webhooks {
    store: Arc<dyn GraphStore>,
    engine: Arc<Engine>,
    settings: WebhookSettings,
    client: reqwest::Client,
    /// The delivery task of each enabled webhook, with its generation: only the current task of a webhook saves it.
    running: Mutex<HashMap<WebhookId, (u64, JoinHandle<()>)>>,
    /// The last generation given to a task.
    generations: AtomicU64,
    /// Held while a webhook's record is written: a task's save (which runs to its end even when the task is
    /// stopped) and an admin's enable or delete never interleave.
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl Webhooks {
    /// The webhooks of `engine`'s store, delivered under `settings` (nothing runs until [`Webhooks::start`]).
    pub fn new(engine: Arc<Engine>, settings: WebhookSettings) -> Arc<Self> {
        let allowed = settings.clone();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(settings.timeout_seconds))
            .dns_resolver(Arc::new(PublicOnly(allowed)))
            .user_agent(concat!("Stakegraph-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client's settings are valid");
        Arc::new(Self {
            store: engine.store().clone(),
            engine,
            settings,
            client,
            running: Mutex::default(),
            generations: AtomicU64::new(0),
            writing: Arc::default(),
        })
    }

    /// Starts delivering to every enabled webhook, retrying while the store is unavailable.
    pub async fn start(self: &Arc<Self>) {
        let webhooks = loop {
            match self.store.webhooks().await {
                Ok(webhooks) => break webhooks,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the webhooks yet; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                }
            }
        };
        for webhook in webhooks.into_iter().filter(|webhook| webhook.disabled.is_none()) {
            self.spawn(webhook);
        }
    }

    /// Every registered webhook, in id order.
    pub async fn list(&self) -> StoreResult<Vec<Webhook>> {
        self.store.webhooks().await
    }

    /// Registers a webhook to `url` for the changes `filter` matches after log position `after` (the current
    /// position without it), and starts delivering to it. The secret is generated here.
    pub async fn register(
        self: &Arc<Self>,
        url: &str,
        filter: EventFilter,
        include_private: bool,
        after: Option<i64>,
    ) -> Result<Webhook, WebhookError> {
        let url = self.settings.check_url(url)?;
        let _writing = self.writing.lock().await;
        if self.store.webhooks().await?.len() >= self.settings.max_webhooks {
            return Err(WebhookError::Invalid(format!(
                "{} webhooks are registered, the most allowed (`webhooks.max_webhooks`); delete one first",
                self.settings.max_webhooks
            )));
        }
        let after = match after {
            Some(after) => after,
            None => self.head().await?,
        };
        let mut key = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let webhook = Webhook::new(url, filter, include_private, webhook::secret_of(&key), after, Utc::now());
        let webhook = self.store.create_webhook(webhook).await?;
        self.spawn(webhook.clone());
        Ok(webhook)
    }

    /// Enables a disabled webhook again (a failing one is retried now): its delivery task starts afresh from the
    /// stored cursor, with the event that was failing; a task still running is replaced.
    pub async fn enable(self: &Arc<Self>, id: WebhookId) -> Result<Webhook, WebhookError> {
        let _writing = self.writing.lock().await;
        let mut webhook = self.find(id).await?;
        webhook.enable();
        if !self.store.save_webhook(&webhook).await? {
            return Err(WebhookError::NotFound);
        }
        self.spawn(webhook.clone());
        Ok(webhook)
    }

    /// Deletes a webhook and stops its deliveries.
    pub async fn delete(&self, id: WebhookId) -> Result<Webhook, WebhookError> {
        let _writing = self.writing.lock().await;
        let webhook = self.find(id).await?;
        self.store.delete_webhook(id).await?;
        if let Some((_, task)) = self.running.lock().expect("webhook tasks lock").remove(&id) {
            task.abort();
        }
        Ok(webhook)
    }

    /// The webhook with this id.
    pub async fn find(&self, id: WebhookId) -> Result<Webhook, WebhookError> {
        let webhooks = self.store.webhooks().await?;
        webhooks.into_iter().find(|webhook| webhook.id == id).ok_or(WebhookError::NotFound)
    }

    /// The log position now: the engine's, or the store's when the engine has not loaded.
    async fn head(&self) -> Result<i64, WebhookError> {
        match self.engine.loaded() {
            Some(snapshot) => Ok(snapshot.seq()),
            None => Ok(self.store.graph_scan().await?.seq),
        }
    }

    /// Starts the delivery task of `webhook`, in place of any it had.
    fn spawn(self: &Arc<Self>, webhook: Webhook) {
        let id = webhook.id;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let mut running = self.running.lock().expect("webhook tasks lock");
        let task = tokio::spawn(self.clone().deliver(webhook, generation));
        if let Some((_, previous)) = running.insert(id, (generation, task)) {
            previous.abort();
        }
    }

    /// Whether `generation` is the current task of webhook `id`.
    fn is_current(&self, id: WebhookId, generation: u64) -> bool {
        self.running.lock().expect("webhook tasks lock").get(&id).is_some_and(|(current, _)| *current == generation)
    }

    /// Delivers the log to `webhook` from its cursor on, until it is disabled, deleted or replaced.
    async fn deliver(self: Arc<Self>, mut webhook: Webhook, generation: u64) {
        let lens = Lens::new(
            self.store.clone(),
            self.engine.clone(),
            Filter::of_webhook(&webhook.filter),
            webhook.include_private,
        );
        let mut published = self.engine.published();
        tracing::info!(webhook = %webhook.id, cursor = webhook.cursor, "delivering to a webhook");
        loop {
            published.borrow_and_update();
            let events = match self.store.changes_after(webhook.cursor, PAGE).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(webhook = %webhook.id, %error, "cannot read the change log; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            };
            if events.is_empty() {
                // Woken by the engine's next position (it follows other processes' writes too), or after a while
                // when the engine is not following.
                let _ = tokio::time::timeout(IDLE_READ, published.changed()).await;
                continue;
            }
            let events: Vec<_> = events.into_iter().map(Arc::new).collect();
            let views = match lens.views(&events, true).await {
                Ok(views) => views,
                Err(error) => {
                    tracing::warn!(webhook = %webhook.id, %error, "cannot read the stakeholders of the log; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            };
            let mut skipped = false;
            for (event, view) in events.iter().zip(views) {
                let Some(view) = view else {
                    webhook.cursor = event.seq;
                    skipped = true;
                    continue;
                };
                if skipped && !self.save(&webhook, generation).await {
                    return;
                }
                skipped = false;
                if !self.send_until_taken(&mut webhook, event, view, &lens, generation).await {
                    return;
                }
            }
            if skipped && !self.save(&webhook, generation).await {
                return;
            }
        }
    }

    /// Sends one event (first as `view`, the page's view of it) until the receiver takes it, recording every
    /// attempt; the event is seen afresh before each retry (masking and filter as they are then: a stakeholder made
    /// private meanwhile is masked, an event that no longer matches is passed over). False when the task stops: the webhook is disabled (failing too long),
    /// deleted, or has a newer task.
    async fn send_until_taken(
        self: &Arc<Self>,
        webhook: &mut Webhook,
        event: &Arc<crate::domain::ChangeEvent>,
        view: crate::api::changes::ChangeEvent,
        lens: &Lens,
        generation: u64,
    ) -> bool {
        let message_id = webhook::message_id(webhook, event.seq);
        let initial = Duration::from_millis(self.settings.retry_initial_ms);
        let max = Duration::from_secs(self.settings.retry_max_seconds);
        let mut first = Some(view);
        for number in 1.. {
            let view = match first.take() {
                Some(view) => Some(view),
                None => Self::view_again(lens, event, webhook.id).await,
            };
            let Some(view) = view else {
                webhook.cursor = event.seq;
                return self.save(webhook, generation).await;
            };
            let attempt = match view.message() {
                Ok(body) => self.post(webhook, &message_id, event.seq, number, &body.to_string()).await,
                // Recorded as a failure, so that the webhook fails and then is disabled with the reason.
                Err(error) => Attempt {
                    message_id: message_id.clone(),
                    seq: event.seq,
                    number,
                    at: Utc::now(),
                    status: None,
                    error: Some(format!("this change could not be rendered ({error:?}); see the service's log")),
                    millis: 0,
                },
            };
            let taken = attempt.succeeded();
            if !taken {
                tracing::warn!(webhook = %webhook.id, seq = event.seq, number, error = ?attempt.error, "a delivery failed");
            }
            let disabled = webhook.record(attempt, self.settings.disable_after());
            if !self.save(webhook, generation).await {
                return false;
            }
            if taken {
                return true;
            }
            if disabled {
                tracing::warn!(webhook = %webhook.id, reason = ?webhook.disabled, "webhook disabled");
                return false;
            }
            tokio::time::sleep(webhook::retry_delay(number, initial, max)).await;
        }
        unreachable!("attempts go on until one is taken or the webhook is disabled")
    }

    /// `event` as `lens` sees it now (`None`: it no longer matches), retrying while the store is unavailable.
    async fn view_again(
        lens: &Lens,
        event: &Arc<crate::domain::ChangeEvent>,
        webhook: WebhookId,
    ) -> Option<crate::api::changes::ChangeEvent> {
        loop {
            match lens.views(std::slice::from_ref(event), true).await {
                Ok(mut views) => return views.pop().flatten(),
                Err(error) => {
                    tracing::warn!(%webhook, %error, "cannot read the stakeholders of the log; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                }
            }
        }
    }

    /// One signed POST of `body`.
    async fn post(&self, webhook: &Webhook, message_id: &str, seq: i64, number: u32, body: &str) -> Attempt {
        let at = Utc::now();
        let started = Instant::now();
        let attempt = |status: Option<u16>, error: Option<String>| Attempt {
            message_id: message_id.to_owned(),
            seq,
            number,
            at,
            status,
            error,
            millis: started.elapsed().as_millis().min(u64::MAX as u128) as u64,
        };
        // The configuration may have changed since the webhook was registered.
        if let Err(error) = self.settings.check_url(&webhook.url) {
            return attempt(None, Some(error.to_string()));
        }
        let timestamp = at.timestamp();
        let signature = match webhook::sign(&webhook.secret, message_id, timestamp, body.as_bytes()) {
            Ok(signature) => signature,
            Err(error) => return attempt(None, Some(error.to_string())),
        };
        let sent = self
            .client
            .post(&webhook.url)
            .header("content-type", "application/json")
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => attempt(Some(response.status().as_u16()), None),
            Ok(response) => {
                let status = response.status();
                attempt(Some(status.as_u16()), Some(format!("the receiver answered {status}")))
            }
            Err(error) => attempt(None, Some(describe(&error))),
        }
    }

    /// Saves `webhook` for the task of `generation`, retrying while the store is unavailable; false when the task
    /// is to stop: the webhook was deleted, or has a newer task. The write runs as a task of its own, so that it
    /// ends (holding [`Webhooks::writing`]) even when the delivery task is stopped while it waits.
    async fn save(self: &Arc<Self>, webhook: &Webhook, generation: u64) -> bool {
        loop {
            let (this, record) = (self.clone(), webhook.clone());
            let saved = tokio::spawn(async move {
                let _writing = this.writing.lock().await;
                if !this.is_current(record.id, generation) {
                    return Ok(false);
                }
                this.store.save_webhook(&record).await
            })
            .await;
            match saved {
                Ok(Ok(exists)) => return exists,
                Ok(Err(error)) => {
                    tracing::warn!(webhook = %webhook.id, %error, "cannot save a webhook's progress; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                }
                Err(_) => return false,
            }
        }
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        if let Ok(running) = self.running.get_mut() {
            running.values().for_each(|(_, task)| task.abort());
        }
    }
}

/// The resolver of webhook host names: only public addresses, unless `allow_private_networks`.
struct PublicOnly(WebhookSettings);

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.0.allow_private_networks;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<std::net::SocketAddr> =
                found.into_iter().filter(|address| allow_private || is_public(address.ip())).collect();
            if usable.is_empty() {
                return Err(format!(
                    "'{host}' resolves to no public address; deliveries go to private, loopback or link-local \
                     addresses only when written as such in [webhooks] allowed_hosts, or with \
                     allow_private_networks = true"
                )
                .into());
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is an address of the public internet (not loopback, private, link-local, shared, unspecified or
/// otherwise special).
fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// What went wrong with a request, with its causes (reqwest's own message leaves them out).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "the receiver did not answer in time".to_owned()
    } else if error.is_connect() {
        "cannot connect to the receiver".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_count_as_public() {
        for public in ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
    }

    #[tokio::test]
    async fn a_host_name_that_resolves_to_a_loopback_address_is_refused_unless_private_networks_are_allowed() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let refused = PublicOnly(WebhookSettings::default()).resolve(name).await;
        assert!(refused.err().unwrap().to_string().contains("no public address"));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let settings = WebhookSettings { allow_private_networks: true, ..WebhookSettings::default() };
        assert!(PublicOnly(settings).resolve(name).await.unwrap().next().is_some());
    }

    #[test]
    fn only_allowed_hosts_with_http_urls_and_no_credentials_are_accepted() {
        let settings = WebhookSettings {
            allowed_hosts: vec!["127.0.0.1:9000".into(), "Hooks.Example.com".into(), "[::1]:8080".into()],
            ..WebhookSettings::default()
        };
        let bare = WebhookSettings { allowed_hosts: vec!["2001:db8::8:80".into()], ..WebhookSettings::default() };
        assert!(bare.check().unwrap_err().contains("[2001:db8::1]:443"), "an IPv6 address is written in brackets");
        let webhooks = settings;
        for allowed in ["http://127.0.0.1:9000/hook", "https://hooks.example.com/x?y=1", "http://[::1]:8080/"] {
            assert!(webhooks.check_url(allowed).is_ok(), "{allowed}");
        }
        for (refused, why) in [
            ("http://127.0.0.1:9001/hook", "not allowed"),
            ("http://10.0.0.1:9000/", "not allowed"),
            ("http://hooks.example.com.evil.test/", "not allowed"),
            ("ftp://hooks.example.com/", "only http"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("hooks.example.com/x", "not a URL"),
            (&format!("https://hooks.example.com/{}", "a".repeat(2_100)), "longer than the 2048"),
        ] {
            let error = webhooks.check_url(refused).unwrap_err().to_string();
            assert!(error.contains(why), "{refused}: {error}");
        }
    }
}
