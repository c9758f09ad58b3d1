//! Who a bearer credential says the caller is: one of the configured API keys (compared as SHA-256 digests in
//! constant time with `subtle`, so that neither a key's bytes nor its length show in the timing; a key may be
//! configured as its digest), or a JWT from the company's identity provider (`[jwt]`): RS256 or ES256 against a
//! JWKS (a file, or a URL fetched again when a token names a key it does not hold), or HS256 against a shared
//! secret, with the issuer, the audience and the expiry checked, the role read from a configured claim and,
//! optionally, a visibility claim that withholds private stakeholders.
//!
//! Neither keys nor tokens are ever logged or echoed: a refusal says what was wrong with the credential, never
//! the credential.

use crate::api::{Caller, KeyId};
use crate::config::ApiKeys;
use crate::domain::Role;
use arc_swap::ArcSwap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `[jwt]` settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// The `iss` every token must carry.
    pub issuer: Option<String>,
    /// An `aud` every token must carry (one of its audiences).
    pub audience: Option<String>,
    /// Where the identity provider publishes its keys (RS256, ES256).
    pub jwks_url: Option<String>,
    /// A file holding the identity provider's keys (a JWKS document).
    pub jwks_file: Option<PathBuf>,
    /// A shared secret for HS256 (better from `STAKEGRAPH_JWT_SECRET` than from the file).
    pub hs256_secret: Option<String>,
    /// The claim holding the caller's role: `viewer`, `editor` or `admin` (default `role`).
    pub role_claim: Option<String>,
    /// A boolean claim that, when false, withholds private stakeholders from the caller whatever its role (unset:
    /// the role decides, as for API keys).
    pub visibility_claim: Option<String>,
    /// How far the clocks may disagree about `exp` and `nbf`, in seconds (default 30).
    pub leeway_seconds: Option<u64>,
}

/// Why `[jwt]` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JwtConfigError(pub String);

/// The shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash's size).
const MIN_SECRET_BYTES: usize = 32;

/// How soon a JWKS URL may be fetched again for a token naming a key it does not hold.
const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// Where the verification keys come from.
enum KeySource {
    /// HS256.
    Secret(DecodingKey),
    /// A JWKS document read at start-up.
    File(JwkSet),
    /// A JWKS document at a URL, kept and fetched again on an unknown `kid`.
    Url { url: String, keys: ArcSwap<JwkSet>, fetched: tokio::sync::Mutex<Option<Instant>>, client: reqwest::Client },
}

/// Verifies tokens.
pub struct Tokens {
    source: KeySource,
    issuer: String,
    audience: String,
    role_claim: String,
    visibility_claim: Option<String>,
    leeway: u64,
}

impl std::fmt::Debug for Tokens {
    /// Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("issuer", &self.issuer).field("audience", &self.audience).finish()
    }
}

impl Tokens {
    /// The verifier `settings` describe, a JWKS file read; `None` when `[jwt]` is not configured. A JWKS URL is
    /// fetched by [`Tokens::prefetch`] (the service calls it as it starts) or for the first token.
    pub fn new(settings: &JwtSettings) -> Result<Option<Self>, JwtConfigError> {
        let JwtSettings {
            issuer,
            audience,
            jwks_url,
            jwks_file,
            hs256_secret,
            role_claim,
            visibility_claim,
            leeway_seconds,
        } = settings;
        if *settings == JwtSettings::default() {
            return Ok(None);
        }
        let invalid = |message: &str| JwtConfigError(format!("jwt: {message}"));
        let issuer = issuer.clone().ok_or_else(|| {
            invalid("`issuer` is missing; set the `iss` your identity provider writes (STAKEGRAPH_JWT_ISSUER)")
        })?;
        let audience = audience.clone().ok_or_else(|| {
            invalid("`audience` is missing; set the `aud` your tokens carry for this API (STAKEGRAPH_JWT_AUDIENCE)")
        })?;
        let source = match (jwks_url, jwks_file, hs256_secret) {
            (Some(url), None, None) => {
                let parsed =
                    reqwest::Url::parse(url).map_err(|error| invalid(&format!("`jwks_url` {url}: {error}")))?;
                let loopback = parsed.host_str().is_some_and(|host| host == "localhost" || host == "127.0.0.1");
                if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
                    return Err(invalid(&format!(
                        "`jwks_url` {url} must be https (http only on localhost): the keys decide who may call"
                    )));
                }
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|error| invalid(&format!("cannot build the HTTP client for `jwks_url`: {error}")))?;
                KeySource::Url {
                    url: url.clone(),
                    keys: ArcSwap::from_pointee(JwkSet { keys: Vec::new() }),
                    fetched: tokio::sync::Mutex::new(None),
                    client,
                }
            }
            (None, Some(path), None) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| invalid(&format!("cannot read `jwks_file` {}: {error}", path.display())))?;
                let keys: JwkSet = serde_json::from_str(&text).map_err(|error| {
                    invalid(&format!("`jwks_file` {} is not a JWKS document ({error})", path.display()))
                })?;
                KeySource::File(keys)
            }
            (None, None, Some(secret)) if secret.len() < MIN_SECRET_BYTES => {
                return Err(invalid(&format!(
                    "the HS256 secret is shorter than {MIN_SECRET_BYTES} bytes; use a long random one (e.g. \
                     `openssl rand -hex 32`)"
                )))
            }
            (None, None, Some(secret)) => KeySource::Secret(DecodingKey::from_secret(secret.as_bytes())),
            (None, None, None) => {
                return Err(invalid(
                    "no key to verify tokens with; set one of `jwks_url`, `jwks_file` or `hs256_secret` \
                     (STAKEGRAPH_JWT_JWKS_URL, STAKEGRAPH_JWT_JWKS_FILE, STAKEGRAPH_JWT_SECRET)",
                ))
            }
            _ => return Err(invalid("set only one of `jwks_url`, `jwks_file` and `hs256_secret`")),
        };
        Ok(Some(Self {
            source,
            issuer,
            audience,
            role_claim: role_claim.clone().unwrap_or_else(|| "role".into()),
            visibility_claim: visibility_claim.clone(),
            leeway: leeway_seconds.unwrap_or(30),
        }))
    }

    /// Fetches a JWKS URL's document (nothing for the other sources); a failure is logged, and the next token
    /// fetches again.
    pub async fn prefetch(&self) {
        let KeySource::Url { url, keys, fetched, client } = &self.source else { return };
        let mut last = fetched.lock().await;
        *last = Some(Instant::now());
        match fetch(client, url).await {
            Ok(fresh) => keys.store(Arc::new(fresh)),
            Err(error) => {
                *last = None;
                tracing::warn!(%error, "could not fetch the identity provider's keys; tokens wait for them");
            }
        }
    }

    /// The caller `token` names, or why it is refused (never quoting it). A token naming a key the JWKS URL's
    /// document does not hold has the document fetched again first.
    pub async fn verify(&self, token: &str) -> Result<(Caller, KeyId), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the bearer token is not a JWT".to_owned())?;
        let key = match self.key_now(&header)? {
            Some(key) => key,
            None => self.key_fetched(&header).await?,
        };
        self.claims(token, &header, &key)
    }

    /// [`Tokens::verify`] with the keys held now (a WebSocket's `connection_init`, answered without waiting).
    pub fn verify_now(&self, token: &str) -> Result<(Caller, KeyId), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the bearer token is not a JWT".to_owned())?;
        let key = self.key_now(&header)?.ok_or_else(unknown_key)?;
        self.claims(token, &header, &key)
    }

    /// The caller a token signed with `key` names.
    fn claims(&self, token: &str, header: &jsonwebtoken::Header, key: &DecodingKey) -> Result<(Caller, KeyId), String> {
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, &validation)
            .map_err(|error| refusal(error.kind()))?
            .claims;
        let role = match claims.get(&self.role_claim) {
            Some(serde_json::Value::String(role)) => role.parse::<Role>().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("the token's `{}` claim is missing or not viewer, editor or admin", self.role_claim))?;
        let withheld = match self.visibility_claim.as_deref().map(|name| (name, claims.get(name))) {
            None | Some((_, None)) => false,
            Some((_, Some(serde_json::Value::Bool(sees)))) => !sees,
            Some((name, Some(_))) => return Err(format!("the token's `{name}` claim is not true or false")),
        };
        let caller = if withheld && role.sees_private() { Caller::Masked(role) } else { Caller::Key(role) };
        // Per-caller limits count by subject (the token's `sub`), apart from the configured keys.
        let subject = claims.get("sub").and_then(serde_json::Value::as_str).unwrap_or_default();
        Ok((caller, KeyId::of_subject(subject)))
    }

    /// The key `header` asks for among those held now; `None` when a JWKS URL's document does not hold it.
    fn key_now(&self, header: &jsonwebtoken::Header) -> Result<Option<DecodingKey>, String> {
        let allowed: &[Algorithm] = match self.source {
            KeySource::Secret(_) => &[Algorithm::HS256],
            _ => &[Algorithm::RS256, Algorithm::ES256],
        };
        if !allowed.contains(&header.alg) {
            return Err(format!("the token is signed with {:?}; this service accepts {allowed:?}", header.alg));
        }
        match &self.source {
            KeySource::Secret(key) => Ok(Some(key.clone())),
            KeySource::File(keys) => find(keys, header)?.map(Some).ok_or_else(unknown_key),
            KeySource::Url { keys, .. } => find(&keys.load(), header),
        }
    }

    /// The key `header` asks for after fetching the JWKS URL's document again (the provider may have rotated its
    /// keys): at most every [`REFETCH_AFTER`], one fetch at a time.
    async fn key_fetched(&self, header: &jsonwebtoken::Header) -> Result<DecodingKey, String> {
        let KeySource::Url { url, keys, fetched, client } = &self.source else { return Err(unknown_key()) };
        let mut last = fetched.lock().await;
        if last.is_none_or(|at| at.elapsed() >= REFETCH_AFTER) {
            *last = Some(Instant::now());
            match fetch(client, url).await {
                Ok(fresh) => keys.store(Arc::new(fresh)),
                Err(error) => tracing::warn!(%error, "could not fetch the JWKS again"),
            }
        }
        find(&keys.load(), header)?.ok_or_else(unknown_key)
    }
}

/// The key of `keys` that `header` names (the only one when it names none); `None` when it holds no such key.
fn find(keys: &JwkSet, header: &jsonwebtoken::Header) -> Result<Option<DecodingKey>, String> {
    let jwk = match &header.kid {
        Some(kid) => match keys.find(kid) {
            Some(jwk) => jwk,
            None => return Ok(None),
        },
        None if keys.keys.len() == 1 => &keys.keys[0],
        None => return Err("the token names no key (`kid`) and the JWKS holds several".into()),
    };
    DecodingKey::from_jwk(jwk).map(Some).map_err(|_| "the token's key in the JWKS cannot verify it".into())
}

fn unknown_key() -> String {
    "the token's key (`kid`) is not one the identity provider publishes".to_owned()
}

/// The JWKS document at `url`.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<JwkSet, String> {
    let response = client.get(url).send().await.map_err(|error| format!("cannot fetch `jwks_url` {url}: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("`jwks_url` {url} answered {}", response.status()));
    }
    let body = response.bytes().await.map_err(|error| format!("cannot read `jwks_url` {url}: {error}"))?;
    serde_json::from_slice(&body).map_err(|error| format!("`jwks_url` {url} is not a JWKS document ({error})"))
}

/// What a failed verification tells the caller.
fn refusal(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired; get a new one from the identity provider".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)".into(),
        ErrorKind::InvalidAudience => "the token is not for this API (its `aud` is not the configured audience)".into(),
        ErrorKind::InvalidIssuer => "the token is not from the configured issuer (`iss`)".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        _ => "the bearer token is not a valid JWT".into(),
    }
}

/// Every credential the service accepts.
#[derive(Debug, Default, Clone)]
pub struct Identity {
    /// The configured API keys.
    pub keys: ApiKeys,
    /// The identity provider's tokens, when `[jwt]` is configured.
    pub tokens: Option<Arc<Tokens>>,
}

impl Identity {
    /// Who the bearer credential `credential` names, or why it is refused. A credential shaped like a JWT (three
    /// dot-separated parts) is verified as one when `[jwt]` is configured; anything else is an API key.
    pub async fn identify(&self, credential: &str) -> Result<(Caller, KeyId), String> {
        match self.token_verifier(credential) {
            Some(tokens) => tokens.verify(credential).await,
            None => self.key(credential),
        }
    }

    /// [`Identity::identify`] with the token keys held now, without waiting on a fetch.
    pub fn identify_now(&self, credential: &str) -> Result<(Caller, KeyId), String> {
        match self.token_verifier(credential) {
            Some(tokens) => tokens.verify_now(credential),
            None => self.key(credential),
        }
    }

    fn token_verifier(&self, credential: &str) -> Option<&Tokens> {
        self.tokens.as_deref().filter(|_| credential.split('.').count() == 3)
    }

    fn key(&self, credential: &str) -> Result<(Caller, KeyId), String> {
        self.keys
            .identify(credential)
            .map(|(key, role)| (Caller::Key(role), key))
            .ok_or_else(|| crate::api::auth::BAD_KEY.to_owned())
    }

    /// Whether any credential is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.tokens.is_none()
    }
}
