//! One typed configuration, layered: defaults, then a TOML file, then `STAKEGRAPH_*` environment variables, then
//! command-line flags.

use crate::api::auth::KeyId;
use crate::api::ApiLimits;
use crate::domain::churn::ChurnModel;
use crate::domain::strength::StrengthModel;
use crate::domain::Role;
use crate::store::falkor::FalkorSettings;
use crate::store::neo4j::Neo4jSettings;
use crate::webhooks::WebhookSettings;
use crate::ws::WsLimits;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the service listens when nothing else is said.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The embedded database file when nothing else is said.
pub const DEFAULT_DB: &str = "./data/stakegraph.db";
/// Stakeholders `serve --demo` writes into an empty database.
pub const DEFAULT_DEMO_SIZE: usize = 3_000;
/// Shortest API key accepted: a guessable key is no protection.
pub const MIN_KEY_CHARS: usize = 16;
/// How long one statement to Neo4j (or FalkorDB) may take before a request fails as unavailable, when nothing else
/// is said.
pub const DEFAULT_NEO4J_TIMEOUT_SECONDS: f64 = 5.0;
/// The FalkorDB graph when nothing else is said.
pub const DEFAULT_FALKORDB_GRAPH: &str = "stakegraph";
/// Pooled Neo4j connections when nothing else is said.
pub const DEFAULT_NEO4J_CONNECTIONS: usize = 16;

/// Which store the service keeps the graph in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(try_from = "String")]
pub enum StoreKind {
    /// The embedded SQLite file (the default).
    #[default]
    Sqlite,
    /// A Neo4j 5 server, cluster member or Aura instance.
    Neo4j,
    /// A FalkorDB server (the Cypher backend, as on Neo4j): to try the service on a graph database one can install
    /// from PyPI or a container.
    Falkordb,
}

impl TryFrom<String> for StoreKind {
    type Error = String;

    /// `sqlite`, `neo4j` or `falkordb`, in any case.
    fn try_from(text: String) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sqlite" => Ok(StoreKind::Sqlite),
            "neo4j" => Ok(StoreKind::Neo4j),
            "falkordb" => Ok(StoreKind::Falkordb),
            _ => Err(format!("'{text}' is not a store; write sqlite, neo4j or falkordb")),
        }
    }
}

/// The Neo4j section of the file (`[neo4j]`); the password is never written here, only the path of a file
/// holding it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNeo4j {
    uri: Option<String>,
    user: Option<String>,
    database: Option<String>,
    password_file: Option<PathBuf>,
    timeout_seconds: Option<f64>,
    max_connections: Option<usize>,
}

/// The FalkorDB section of the file (`[falkordb]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFalkor {
    url: Option<String>,
    graph: Option<String>,
    timeout_seconds: Option<f64>,
}

/// A configuration that cannot be used, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("the configuration file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment variable's value is wrong.
    #[error("{variable}: {message}")]
    Variable {
        /// The variable.
        variable: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A value is wrong.
    #[error("{setting}: {message}")]
    Invalid {
        /// Which setting.
        setting: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The configured API keys, each kept as the SHA-256 digest of the key (a key may be configured as its digest,
/// `role:sha256:<64 hex digits>`, so that the configuration holds no key).
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<(Role, [u8; 32])>);

/// The SHA-256 digest of a key.
fn key_digest(key: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 digests are 32 bytes")
}

impl std::fmt::Debug for ApiKeys {
    /// Never prints a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roles: Vec<&str> = self.0.iter().map(|(role, _)| role.as_str()).collect();
        f.debug_tuple("ApiKeys").field(&roles).finish()
    }
}

impl ApiKeys {
    /// Parses `role:key[,role:key…]` (the form of `STAKEGRAPH_API_KEYS`); an entry `role:sha256:<hex>` gives the
    /// key's SHA-256 digest instead of the key (`printf %s "$KEY" | sha256sum`).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_setting(text, "api_keys")
    }

    /// Parses the keys of `setting` (named in the errors). A key listed twice is refused, under one role or two:
    /// at best a typo, at worst a key that silently gets the higher role. The errors never quote a key.
    fn parse_setting(text: &str, setting: &'static str) -> Result<Self, ConfigError> {
        let mut keys: Vec<(Role, [u8; 32])> = Vec::new();
        for (index, entry) in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()).enumerate() {
            let (role, key) = Self::parse_entry(entry, setting)?;
            if let Some(first) = keys.iter().position(|(_, earlier)| *earlier == key) {
                let (earlier, position) = (keys[first].0, index + 1);
                let message = if earlier == role {
                    format!(
                        "entries {} and {position} are the same {} key; list each key once",
                        first + 1,
                        role.as_str()
                    )
                } else {
                    format!(
                        "entries {} ({}) and {position} ({}) are the same key; a key has one role, so keep only the \
                         entry with the role it should have",
                        first + 1,
                        earlier.as_str(),
                        role.as_str()
                    )
                };
                return Err(ConfigError::Invalid { setting, message });
            }
            keys.push((role, key));
        }
        Ok(Self(keys))
    }

    fn parse_entry(entry: &str, setting: &'static str) -> Result<(Role, [u8; 32]), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { setting, message };
        let (role, key) = entry.split_once(':').ok_or_else(|| {
            invalid("an entry has no ':'; write each key as role:key, for example editor:0123456789abcdef".into())
        })?;
        let role: Role = role.parse().map_err(|error: crate::domain::InvalidValue| invalid(error.0))?;
        let key = key.trim();
        if let Some(hex) = key.strip_prefix("sha256:") {
            let bytes: Option<Vec<u8>> = (hex.len() == 64)
                .then(|| (0..32).map(|at| u8::from_str_radix(hex.get(at * 2..at * 2 + 2)?, 16).ok()).collect())
                .flatten();
            let digest = bytes.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()).ok_or_else(|| {
                invalid(format!(
                    "a {} key's sha256: digest is not 64 hexadecimal digits; write the output of                      `printf %s \"$KEY\" | sha256sum`",
                    role.as_str()
                ))
            })?;
            return Ok((role, digest));
        }
        if key.chars().count() < MIN_KEY_CHARS {
            return Err(invalid(format!(
                "a {} key is shorter than {MIN_KEY_CHARS} characters; use a long random key (e.g. `openssl rand -hex 24`)",
                role.as_str()
            )));
        }
        Ok((role, key_digest(key)))
    }

    /// The role of `key`, if it is configured.
    pub fn role_of(&self, key: &str) -> Option<Role> {
        self.identify(key).map(|(_, role)| role)
    }

    /// Which configured key `key` is, and its role. Its digest is compared with every configured one in constant
    /// time (`subtle`): the timing says nothing of the keys, nor of how many bytes matched, nor of the length.
    pub fn identify(&self, key: &str) -> Option<(KeyId, Role)> {
        use subtle::{ConditionallySelectable, ConstantTimeEq};
        let digest = key_digest(key);
        let (mut found, mut at) = (subtle::Choice::from(0), 0u64);
        for (index, (_, candidate)) in self.0.iter().enumerate() {
            let equal = candidate.ct_eq(&digest);
            at.conditional_assign(&(index as u64), equal);
            found |= equal;
        }
        bool::from(found).then(|| (KeyId(at as usize), self.0[at as usize].0))
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A limit below which the service cannot do what the limit bounds.
struct LimitFloor {
    /// The setting, as written in the file.
    setting: &'static str,
    /// Its value.
    value: u64,
    /// The least value that leaves the service usable.
    least: u64,
    /// What a value below `least` would do (after "would").
    breaks: &'static str,
}

/// Every limit whose 0 (or other value below a floor) makes the service refuse all it bounds. A new limit of that
/// kind is one line here; limits where 0 means something (`betweenness_exact_below = 0`: always sample) stay out.
fn limit_floors(limits: &ApiLimits, websocket: &WsLimits) -> Vec<LimitFloor> {
    let floor = |setting, value: u64, least, breaks| LimitFloor { setting, value, least, breaks };
    vec![
        floor("limits.max_page_size", limits.max_page_size as u64, 1, "refuse every page of a list"),
        floor("limits.max_depth", limits.max_depth as u64, 1, "refuse every query as too deep"),
        floor("limits.max_complexity", limits.max_complexity as u64, 1, "refuse every query as too complex"),
        floor("limits.max_nodes", limits.max_nodes, 1, "refuse every query that returns a node"),
        floor("limits.max_batch", limits.max_batch as u64, 1, "refuse every recordInteractions batch"),
        floor("limits.max_body_bytes", limits.max_body_bytes as u64, 1024, "refuse most queries as too large"),
        floor("limits.max_hops", limits.max_hops as u64, 1, "refuse every influence path and reach"),
        floor("limits.max_analysis_results", limits.max_analysis_results as u64, 1, "refuse every analysis"),
        floor(
            "limits.max_churn_customers",
            limits.max_churn_customers as u64,
            1,
            "refuse every portfolio and at-risk ranking with a customer",
        ),
        floor("limits.analysis_budget_ms", limits.analysis_budget_ms, 1, "stop every analysis before it starts"),
        floor("limits.betweenness_samples", limits.betweenness_samples as u64, 1, "find no broker in a large graph"),
        floor(
            "limits.max_subscriber_lag_seconds",
            limits.max_subscriber_lag_seconds,
            1,
            "end every live subscription at once",
        ),
        floor("limits.max_nesting", limits.max_nesting as u64, 8, "refuse most queries as nested too deeply"),
        floor("limits.max_cost", limits.max_cost, 1, "refuse every query as too costly"),
        floor("limits.max_analyses", limits.max_analyses as u64, 1, "refuse every analysis"),
        floor("limits.max_forecasts", limits.max_forecasts, 1, "refuse every fallsBelow forecast"),
        floor("limits.request_timeout_ms", limits.request_timeout_ms, 1, "stop every request before it starts"),
        floor("limits.max_concurrent_analyses", limits.max_concurrent_analyses as u64, 1, "never run an analysis"),
        floor(
            "limits.requests_per_second_per_key",
            u64::from(limits.requests_per_second_per_key),
            1,
            "refuse every request",
        ),
        floor(
            "limits.analyses_per_minute_per_key",
            u64::from(limits.analyses_per_minute_per_key),
            1,
            "refuse every analysis",
        ),
        floor("limits.max_connections", limits.max_connections as u64, 1, "accept no connection"),
        floor("limits.header_timeout_ms", limits.header_timeout_ms, 1, "close every connection before its request"),
        floor("limits.body_timeout_ms", limits.body_timeout_ms, 1, "refuse every POST body"),
        floor(
            "websocket.connection_init_timeout_ms",
            websocket.connection_init_timeout_ms,
            1,
            "close every WebSocket before it can send connection_init",
        ),
        floor(
            "websocket.max_subscriptions_per_connection",
            websocket.max_subscriptions_per_connection as u64,
            1,
            "refuse every subscription",
        ),
        floor(
            "websocket.max_subscriptions_per_key",
            websocket.max_subscriptions_per_key as u64,
            1,
            "refuse every subscription",
        ),
        floor("websocket.send_timeout_ms", websocket.send_timeout_ms, 1, "drop every WebSocket at its first message"),
    ]
}

/// The longest any timeout may be (a day): longer ones are mistakes, and past a point an `Instant` cannot hold them.
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// The deepest nesting a document may be allowed: the parser and the validators recurse once per level on a
/// worker's stack, which holds a few thousand levels at most; this keeps a wide margin.
pub const MAX_NESTING_CEILING: usize = 256;

/// The whole configuration of a running service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The embedded database file.
    pub db_path: PathBuf,
    /// Seed a demo graph into an empty database, and let anonymous callers read when listening on loopback.
    pub demo: bool,
    /// Stakeholders in the demo graph.
    pub demo_size: usize,
    /// API keys and their roles.
    pub api_keys: ApiKeys,
    /// Request limits.
    pub limits: ApiLimits,
    /// The WebSocket transport's limits (`[websocket]`).
    pub websocket: WsLimits,
    /// The relationship-strength model (weights, half-life, κ, channel weights).
    pub strength: StrengthModel,
    /// The churn-risk model (signal weights and bounds).
    pub churn: ChurnModel,
    /// Browser origins (`https://dash.example.com`) allowed to call the API from their pages (CORS).
    pub cors_origins: Vec<String>,
    /// Which store holds the graph.
    pub store: StoreKind,
    /// How to reach Neo4j, when `store` is [`StoreKind::Neo4j`].
    pub neo4j: Option<Neo4jSettings>,
    /// Where the graph is on FalkorDB, when `store` is [`StoreKind::Falkordb`].
    pub falkordb: Option<FalkorSettings>,
    /// How long one Neo4j (or FalkorDB) statement may take before the request fails as unavailable.
    pub neo4j_timeout: Duration,
    /// Where webhooks may be sent and how deliveries are retried (`[webhooks]`).
    pub webhooks: WebhookSettings,
    /// The trusted documents, read from `trusted_documents` (`STAKEGRAPH_TRUSTED_DOCUMENTS`,
    /// `--trusted-documents`): when set, only they run.
    pub trusted_documents: Option<std::sync::Arc<crate::api::persisted::Persisted>>,
    /// Who may introspect the schema (`introspection`, `STAKEGRAPH_INTROSPECTION`).
    pub introspection: crate::api::auth::Introspection,
    /// Who may read `/metrics` (`metrics`, `STAKEGRAPH_METRICS`): `admins` by default.
    pub metrics: crate::api::auth::Introspection,
    /// JWT bearer tokens from an identity provider (`[jwt]`, `STAKEGRAPH_JWT_*`), beside the API keys.
    pub jwt: Option<std::sync::Arc<crate::identity::Tokens>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("the default address is valid"),
            db_path: PathBuf::from(DEFAULT_DB),
            demo: false,
            demo_size: DEFAULT_DEMO_SIZE,
            api_keys: ApiKeys::default(),
            limits: ApiLimits::default(),
            websocket: WsLimits::default(),
            strength: StrengthModel::default(),
            churn: ChurnModel::default(),
            cors_origins: Vec::new(),
            store: StoreKind::Sqlite,
            neo4j: None,
            falkordb: None,
            neo4j_timeout: Duration::from_secs_f64(DEFAULT_NEO4J_TIMEOUT_SECONDS),
            webhooks: WebhookSettings::default(),
            trusted_documents: None,
            introspection: Default::default(),
            jwt: Default::default(),
            metrics: crate::api::auth::Introspection::Admins,
        }
    }
}

/// The TOML file's shape; every entry is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default, deserialize_with = "address")]
    listen: Option<SocketAddr>,
    db: Option<PathBuf>,
    demo_size: Option<usize>,
    #[serde(default, deserialize_with = "list")]
    api_keys: Option<Vec<String>>,
    limits: Option<ApiLimits>,
    websocket: Option<WsLimits>,
    strength: Option<StrengthModel>,
    churn: Option<ChurnModel>,
    #[serde(default, deserialize_with = "list")]
    cors_origins: Option<Vec<String>>,
    store: Option<StoreKind>,
    neo4j: Option<FileNeo4j>,
    falkordb: Option<FileFalkor>,
    webhooks: Option<WebhookSettings>,
    trusted_documents: Option<PathBuf>,
    introspection: Option<crate::api::auth::Introspection>,
    jwt: Option<crate::identity::JwtSettings>,
    metrics: Option<crate::api::auth::Introspection>,
}

/// What the command line says; it wins over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--db`.
    pub db: Option<PathBuf>,
    /// `--demo`.
    pub demo: bool,
    /// `--store`.
    pub store: Option<StoreKind>,
    /// `--neo4j-uri`.
    pub neo4j_uri: Option<String>,
    /// `--neo4j-user`.
    pub neo4j_user: Option<String>,
    /// `--neo4j-database`.
    pub neo4j_database: Option<String>,
    /// `--neo4j-password-file`.
    pub neo4j_password_file: Option<PathBuf>,
    /// `--falkordb-url`.
    pub falkordb_url: Option<String>,
    /// `--falkordb-graph`.
    pub falkordb_graph: Option<String>,
    /// `--trusted-documents`.
    pub trusted_documents: Option<PathBuf>,
}

/// How long one statement may take: `timeout` (the store's `timeout_seconds`, named `setting`), else
/// [`DEFAULT_NEO4J_TIMEOUT_SECONDS`]; a positive number of seconds.
fn statement_timeout(timeout: Option<f64>, setting: &'static str) -> Result<Duration, ConfigError> {
    let timeout = timeout.unwrap_or(DEFAULT_NEO4J_TIMEOUT_SECONDS);
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(ConfigError::Invalid {
            setting,
            message: "must be a number of seconds greater than 0, e.g. 5".into(),
        });
    }
    Ok(Duration::from_secs_f64(timeout))
}

/// The top-level settings a `STAKEGRAPH_<NAME>` variable sets (`STAKEGRAPH_LISTEN` is `listen`).
const TOP_LEVEL_VARIABLES: [&str; 9] =
    ["listen", "db", "demo_size", "api_keys", "cors_origins", "store", "trusted_documents", "introspection", "metrics"];

/// Variables whose setting has another name or no `STAKEGRAPH_` prefix: (variable, setting).
const RENAMED_VARIABLES: [(&str, &str); 16] = [
    ("STAKEGRAPH_WEBHOOK_HOSTS", "webhooks.allowed_hosts"),
    ("STAKEGRAPH_JWT_ISSUER", "jwt.issuer"),
    ("STAKEGRAPH_JWT_AUDIENCE", "jwt.audience"),
    ("STAKEGRAPH_JWT_JWKS_URL", "jwt.jwks_url"),
    ("STAKEGRAPH_JWT_JWKS_FILE", "jwt.jwks_file"),
    ("STAKEGRAPH_JWT_SECRET", "jwt.hs256_secret"),
    ("STAKEGRAPH_JWT_ROLE_CLAIM", "jwt.role_claim"),
    ("STAKEGRAPH_JWT_VISIBILITY_CLAIM", "jwt.visibility_claim"),
    ("NEO4J_URI", "neo4j.uri"),
    ("NEO4J_USER", "neo4j.user"),
    ("NEO4J_DATABASE", "neo4j.database"),
    ("NEO4J_PASSWORD_FILE", "neo4j.password_file"),
    ("NEO4J_TIMEOUT_SECONDS", "neo4j.timeout_seconds"),
    ("FALKORDB_URL", "falkordb.url"),
    ("FALKORDB_GRAPH", "falkordb.graph"),
    ("FALKORDB_TIMEOUT_SECONDS", "falkordb.timeout_seconds"),
];

/// Settings whose values are never quoted in an error: they may hold a key.
const SECRET_SETTINGS: [&str; 2] = ["api_keys", "jwt.hs256_secret"];

/// The setting `variable` sets, as a dotted path: a renamed variable's, `STAKEGRAPH_<NAME>` for a top-level
/// setting, `STAKEGRAPH_<SECTION>__<NAME>` for one in a section (`STAKEGRAPH_LIMITS__MAX_DEPTH` is
/// `limits.max_depth`, `STAKEGRAPH_STRENGTH__WEIGHTS__TRUST` is `strength.weights.trust`); none for any other
/// variable (`STAKEGRAPH_CONFIG` and `STAKEGRAPH_LOG_FORMAT` are the command line's).
fn setting_of(variable: &str) -> Option<String> {
    if let Some((_, setting)) = RENAMED_VARIABLES.iter().find(|(name, _)| *name == variable) {
        return Some((*setting).to_owned());
    }
    let name = variable.strip_prefix("STAKEGRAPH_")?.to_ascii_lowercase();
    if name.contains("__") {
        return Some(name.replace("__", "."));
    }
    TOP_LEVEL_VARIABLES.contains(&name.as_str()).then_some(name)
}

/// The variable that sets `setting` (a dotted path): the inverse of [`setting_of`].
fn variable_of(setting: &str) -> String {
    match RENAMED_VARIABLES.iter().find(|(_, path)| *path == setting) {
        Some((variable, _)) => (*variable).to_owned(),
        None => format!("STAKEGRAPH_{}", setting.replace('.', "__").to_ascii_uppercase()),
    }
}

/// What figment calls the environment in its metadata.
const ENVIRONMENT: &str = "the environment";

/// The environment's settings as a figment provider. Each value stays the text it is (figment's own `Env` would
/// read `STAKEGRAPH_JWT_SECRET=0123…` as a number, which a text setting refuses and which loses the leading 0);
/// the lossy extraction turns text into a number or a boolean where the setting is one, and a value written as
/// `[…]` or `{…}` is read as a list or a table (`STAKEGRAPH_STRENGTH__CHANNEL_WEIGHTS=[1, 1, 0.8, …]`,
/// `STAKEGRAPH_CHURN__RETENTION_COSTS={SMB = 500.0}`).
struct Environment {
    /// (variable, setting, value), sorted by variable so that the outcome does not depend on their order.
    settings: Vec<(String, String, String)>,
}

impl Environment {
    /// The settings among `variables`.
    fn new(variables: &[(String, String)]) -> Self {
        let mut settings: Vec<(String, String, String)> = variables
            .iter()
            .filter_map(|(variable, value)| Some((variable.clone(), setting_of(variable)?, value.clone())))
            .collect();
        settings.sort();
        Self { settings }
    }

    /// The variables that set `setting` or a part of it.
    fn variables_of(&self, setting: &str) -> Vec<&str> {
        let within =
            |path: &str| path == setting || path.strip_prefix(setting).is_some_and(|rest| rest.starts_with('.'));
        self.settings.iter().filter(|(_, path, _)| within(path)).map(|(variable, _, _)| variable.as_str()).collect()
    }
}

impl figment::Provider for Environment {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(ENVIRONMENT).interpolater(|_, path| variable_of(&path.join(".")))
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        use figment::value::{Dict, Value};
        /// Puts `value` at the dotted `path` of `dict`, making the sections on the way.
        fn insert(dict: &mut Dict, path: &str, value: Value) {
            match path.split_once('.') {
                None => {
                    dict.insert(path.to_owned(), value);
                }
                Some((section, rest)) => {
                    let entry = dict.entry(section.to_owned()).or_insert_with(|| Dict::new().into());
                    if !matches!(entry, Value::Dict(..)) {
                        *entry = Dict::new().into();
                    }
                    if let Value::Dict(_, inner) = entry {
                        insert(inner, rest, value);
                    }
                }
            }
        }
        let mut dict = Dict::new();
        for (_, setting, text) in &self.settings {
            let structured = text.trim_start().starts_with(['[', '{']) && !SECRET_SETTINGS.contains(&setting.as_str());
            let value =
                if structured { text.parse().expect("figment reads any text") } else { Value::from(text.clone()) };
            insert(&mut dict, setting, value);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// A list setting: a TOML array, or (as an environment variable holds it) text with entries separated by commas.
fn list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    struct List;
    impl<'de> serde::de::Visitor<'de> for List {
        type Value = Vec<String>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a list of text, or text with its entries separated by commas")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(text.split(',').map(str::trim).filter(|entry| !entry.is_empty()).map(str::to_owned).collect())
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
            let mut list = Vec::new();
            while let Some(entry) = entries.next_element()? {
                list.push(entry);
            }
            Ok(list)
        }
    }
    deserializer.deserialize_any(List).map(Some)
}

/// [`list`] for a setting that has a default.
pub(crate) fn list_or_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(list(deserializer)?.unwrap_or_default())
}

/// A listen address, refused with what to write.
fn address<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim().parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!("'{text}' is not an address; write host:port, for example 127.0.0.1:8080"))
    })
}

/// Where a setting came from, to name it as its user wrote it.
struct Sources<'a> {
    environment: &'a Environment,
    file: Option<&'a Path>,
}

impl Sources<'_> {
    /// Whether the environment set `setting` (its value, or a part of it).
    fn set_by_environment(&self, setting: &str) -> bool {
        !self.environment.variables_of(setting).is_empty()
    }

    /// A setting's error, named by its variable when the environment set it, or with the variables that set a part
    /// of it (`churn (set by STAKEGRAPH_CHURN__THRESHOLD)`).
    fn name(&self, error: ConfigError) -> ConfigError {
        let ConfigError::Invalid { setting, message } = error else { return error };
        match self.environment.variables_of(setting)[..] {
            [] => ConfigError::Invalid { setting, message },
            [variable] if setting_of(variable).as_deref() == Some(setting) => {
                ConfigError::Variable { variable: variable.to_owned(), message }
            }
            ref variables => {
                ConfigError::Variable { variable: format!("{setting} (set by {})", variables.join(", ")), message }
            }
        }
    }

    /// figment's error for a value of the wrong kind: the variable, or the file and the setting, and what is wrong
    /// (never the value of a setting that may hold a key).
    fn explain(&self, error: figment::Error) -> ConfigError {
        let mut path = error.path.clone();
        if let figment::error::Kind::UnknownField(field, _) = &error.kind {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
        }
        let setting = path.join(".");
        let message = match &error.kind {
            _ if SECRET_SETTINGS.iter().any(|secret| setting.starts_with(secret)) => {
                "is not valid text (the value is not printed: it may hold a key)".to_owned()
            }
            figment::error::Kind::UnknownField(field, expected) => {
                format!("`{field}` is not a setting here; write one of {}", expected.join(", "))
            }
            kind => kind.to_string(),
        };
        let variables = self.environment.variables_of(&setting);
        let from_environment = error.metadata.as_ref().is_some_and(|metadata| metadata.name == ENVIRONMENT)
            || (error.metadata.is_none() && !variables.is_empty());
        match self.file {
            Some(path) if !from_environment => {
                ConfigError::Parse { path: path.to_owned(), message: format!("{setting}: {message}") }
            }
            _ => ConfigError::Variable {
                variable: if variables.is_empty() { variable_of(&setting) } else { variables.join(", ") },
                message,
            },
        }
    }
}

/// The process's environment variables that hold text (a variable that is not UTF-8 cannot be a setting).
pub fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(variable, value)| Some((variable.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

impl Config {
    /// Layers defaults, `file`, the environment `variables` (name, value; [`environment`] reads the process's) and
    /// `overrides`.
    pub fn load(
        file: Option<&Path>,
        variables: &[(String, String)],
        overrides: Overrides,
    ) -> Result<Self, ConfigError> {
        let mut figment = figment::Figment::new();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            // Parsed here, not by figment, for the message and the line only: a TOML error's full text quotes the
            // offending line, which may hold a key.
            let table = toml::from_str::<toml::Table>(&text).map_err(|error| {
                let line = error.span().map_or(0, |span| text[..span.start].matches('\n').count() + 1);
                ConfigError::Parse { path: path.to_owned(), message: format!("line {line}: {}", error.message()) }
            })?;
            figment = figment.merge(figment::providers::Serialized::defaults(table));
        }
        let environment = Environment::new(variables);
        // A variable's name is read in lower case, so a segment named in one would not keep its case.
        if let Some(variable) = environment.variables_of("churn.retention_costs").first() {
            if setting_of(variable).as_deref() != Some("churn.retention_costs") {
                return Err(ConfigError::Variable {
                    variable: (*variable).to_owned(),
                    message: "a segment's name keeps its case only inside the value; set them all at once, \
                              e.g. STAKEGRAPH_CHURN__RETENTION_COSTS='{SMB = 500.0, Enterprise = 5000.0}'"
                        .into(),
                });
            }
        }
        let figment = figment.merge(&environment);
        let sources = Sources { environment: &environment, file };
        let parsed: FileConfig = figment.extract_lossy().map_err(|error| sources.explain(error))?;
        let variable = |name: &str| variables.iter().find(|(variable, _)| variable == name).map(|(_, value)| value);

        let mut config = Config::default();
        config.listen = overrides.listen.or(parsed.listen).unwrap_or(config.listen);
        config.db_path = overrides.db.or(parsed.db).unwrap_or(config.db_path);
        config.demo = overrides.demo;
        config.demo_size = parsed.demo_size.unwrap_or(config.demo_size);
        config.limits = parsed.limits.unwrap_or(config.limits);
        config.websocket = parsed.websocket.unwrap_or(config.websocket);
        config.strength = parsed.strength.unwrap_or(config.strength);
        config.churn = parsed.churn.unwrap_or(config.churn);
        config.cors_origins = parsed.cors_origins.unwrap_or(config.cors_origins);
        config.store = overrides.store.or(parsed.store).unwrap_or(config.store);
        config.webhooks = parsed.webhooks.unwrap_or(config.webhooks);
        config.introspection = parsed.introspection.unwrap_or(config.introspection);
        config.metrics = parsed.metrics.unwrap_or(config.metrics);
        if let Some(keys) = parsed.api_keys {
            let setting = if sources.set_by_environment("api_keys") { "STAKEGRAPH_API_KEYS" } else { "api_keys" };
            config.api_keys = ApiKeys::parse_setting(&keys.join(","), setting)?;
        }
        config.jwt = crate::identity::Tokens::new(&parsed.jwt.unwrap_or_default())
            .map_err(|error| ConfigError::Invalid { setting: "jwt", message: error.to_string() })?
            .map(std::sync::Arc::new);
        if let Some(path) = overrides.trusted_documents.or(parsed.trusted_documents) {
            let persisted = crate::api::persisted::Persisted::trusted_from(&path)
                .map_err(|error| ConfigError::Invalid { setting: "trusted_documents", message: error.to_string() })
                .map_err(|error| sources.name(error))?;
            config.trusted_documents = Some(std::sync::Arc::new(persisted));
        }
        if config.store == StoreKind::Falkordb {
            let falkordb = parsed.falkordb.unwrap_or_default();
            config.neo4j_timeout = statement_timeout(falkordb.timeout_seconds, "falkordb.timeout_seconds")
                .map_err(|error| sources.name(error))?;
            let url = overrides.falkordb_url.or(falkordb.url).ok_or(ConfigError::Invalid {
                setting: "falkordb.url",
                message: "the FalkorDB store needs an address: --falkordb-url, FALKORDB_URL or [falkordb] url, \
                          e.g. falkor://127.0.0.1:6379"
                    .into(),
            })?;
            let graph = overrides.falkordb_graph.or(falkordb.graph).unwrap_or_else(|| DEFAULT_FALKORDB_GRAPH.into());
            if graph.is_empty() {
                return Err(sources.name(ConfigError::Invalid {
                    setting: "falkordb.graph",
                    message: format!("the graph needs a name, e.g. {DEFAULT_FALKORDB_GRAPH}"),
                }));
            }
            config.falkordb = Some(FalkorSettings { url, graph });
        }
        if config.store == StoreKind::Neo4j {
            let neo4j = parsed.neo4j.unwrap_or_default();
            config.neo4j_timeout = statement_timeout(neo4j.timeout_seconds, "neo4j.timeout_seconds")
                .map_err(|error| sources.name(error))?;
            let uri = overrides.neo4j_uri.or(neo4j.uri).ok_or(ConfigError::Invalid {
                setting: "neo4j.uri",
                message: "the Neo4j store needs an address: --neo4j-uri, NEO4J_URI or [neo4j] uri, \
                          e.g. bolt://localhost:7687"
                    .into(),
            })?;
            let password_file = overrides.neo4j_password_file.or(neo4j.password_file);
            let password = match (variable("NEO4J_PASSWORD"), password_file) {
                (Some(password), _) => password.clone(),
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|source| ConfigError::Read { path, source })?,
                (None, None) => {
                    return Err(ConfigError::Invalid {
                        setting: "NEO4J_PASSWORD",
                        message: "the Neo4j store needs a password: set NEO4J_PASSWORD, or NEO4J_PASSWORD_FILE \
                                  (--neo4j-password-file) to a file holding it; it is never taken from the \
                                  command line"
                            .into(),
                    })
                }
            };
            let max_connections = neo4j.max_connections.unwrap_or(DEFAULT_NEO4J_CONNECTIONS);
            if max_connections == 0 {
                return Err(sources.name(ConfigError::Invalid {
                    setting: "neo4j.max_connections",
                    message: "must be at least 1".into(),
                }));
            }
            config.neo4j = Some(Neo4jSettings {
                uri,
                user: overrides.neo4j_user.or(neo4j.user).unwrap_or_else(|| "neo4j".into()),
                password,
                database: overrides.neo4j_database.or(neo4j.database).unwrap_or_else(|| "neo4j".into()),
                max_connections,
                connect_timeout: config.neo4j_timeout,
            });
        }
        config.validate().map_err(|error| sources.name(error))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let defaults = limit_floors(&ApiLimits::default(), &WsLimits::default());
        for (floor, default) in limit_floors(&self.limits, &self.websocket).into_iter().zip(defaults) {
            if floor.value < floor.least {
                return Err(ConfigError::Invalid {
                    setting: floor.setting,
                    message: format!(
                        "{} would {}; set it to at least {} (the default is {})",
                        floor.value, floor.breaks, floor.least, default.value
                    ),
                });
            }
        }
        let (limits, websocket) = (&self.limits, &self.websocket);
        for (setting, millis) in [
            ("limits.request_timeout_ms", limits.request_timeout_ms),
            ("limits.analysis_budget_ms", limits.analysis_budget_ms),
            ("limits.header_timeout_ms", limits.header_timeout_ms),
            ("limits.body_timeout_ms", limits.body_timeout_ms),
            ("limits.max_subscriber_lag_seconds", limits.max_subscriber_lag_seconds.saturating_mul(1_000)),
            ("websocket.connection_init_timeout_ms", websocket.connection_init_timeout_ms),
            ("websocket.send_timeout_ms", websocket.send_timeout_ms),
        ] {
            if millis > MAX_TIMEOUT_MS {
                return Err(ConfigError::Invalid {
                    setting,
                    message: format!(
                        "{millis} ms is longer than a day; set it to at most {MAX_TIMEOUT_MS} ms (a day), or \
                         much less"
                    ),
                });
            }
        }
        if self.limits.max_nesting > MAX_NESTING_CEILING {
            return Err(ConfigError::Invalid {
                setting: "limits.max_nesting",
                message: format!(
                    "{} is deeper than the parser can safely follow on a worker's stack; set it to at most \
                     {MAX_NESTING_CEILING} (the default is {})",
                    self.limits.max_nesting,
                    ApiLimits::default().max_nesting
                ),
            });
        }
        if self.websocket.subscriber_nice > 19 {
            return Err(ConfigError::Invalid {
                setting: "websocket.subscriber_nice",
                message: format!(
                    "{} is not a niceness; set it between 0 (subscribers compete with requests for the cores) and \
                     19 (subscribers get the least share); the default is {}",
                    self.websocket.subscriber_nice,
                    WsLimits::default().subscriber_nice
                ),
            });
        }
        if self.limits.analysis_nice > 19 {
            return Err(ConfigError::Invalid {
                setting: "limits.analysis_nice",
                message: format!(
                    "{} is not a niceness; set it between 0 (analyses compete with requests for the cores) and 19 \
                     (analyses get the least share); the default is {}",
                    self.limits.analysis_nice,
                    ApiLimits::default().analysis_nice
                ),
            });
        }
        self.webhooks.check().map_err(|message| ConfigError::Invalid { setting: "webhooks", message })?;
        for origin in &self.cors_origins {
            let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && origin.parse::<axum::http::HeaderValue>().is_ok();
            if !valid {
                return Err(ConfigError::Invalid {
                    setting: "cors_origins",
                    message: format!(
                        "'{origin}' is not an origin; write scheme://host[:port] with no path, e.g. https://dash.example.com"
                    ),
                });
            }
        }
        let strength = &self.strength;
        let weights = &strength.weights;
        let all = [
            weights.intensity,
            weights.recency,
            weights.reciprocity,
            weights.sentiment,
            weights.level,
            weights.trust,
            weights.commitment,
            weights.bonds,
            weights.tenure,
        ];
        if all.iter().chain(&strength.channel_weights).any(|weight| !weight.is_finite() || *weight < 0.0)
            || all.iter().sum::<f64>() <= 0.0
        {
            return Err(ConfigError::Invalid {
                setting: "strength",
                message: "weights must be finite, 0 or more, and not all 0".into(),
            });
        }
        if !(strength.half_life_days > 0.0 && strength.kappa > 0.0) {
            return Err(ConfigError::Invalid {
                setting: "strength",
                message: "half_life_days and kappa must be greater than 0".into(),
            });
        }
        let churn = &self.churn;
        let weights = &churn.weights;
        let all =
            [weights.weakness, weights.decline, weights.falling, weights.silence, weights.complaints, weights.exposure];
        if all.iter().any(|weight| !weight.is_finite() || *weight < 0.0) || all.iter().sum::<f64>() <= 0.0 {
            return Err(ConfigError::Invalid {
                setting: "churn",
                message: "weights must be finite, 0 or more, and not all 0".into(),
            });
        }
        let positive = |value: f64| value.is_finite() && value > 0.0;
        let bounded = (0.0..=1.0).contains(&churn.threshold)
            && positive(churn.horizon_days)
            && positive(churn.full_decline)
            && positive(churn.silence_half_life_days)
            && (1..=3_650).contains(&churn.complaint_days);
        let costs = churn.retention_costs.values().all(|cost| cost.is_finite() && *cost >= 0.0);
        if !bounded || !costs {
            return Err(ConfigError::Invalid {
                setting: "churn",
                message: "threshold must be in [0, 1], horizon_days, full_decline and silence_half_life_days finite \
                          and greater than 0, complaint_days from 1 to 3650, retention_costs finite and 0 or more"
                    .into(),
            });
        }
        Ok(())
    }

    /// Refuses to serve when no caller could be let in: no API key, and no anonymous reads (a demo on loopback).
    pub fn check_serving(&self) -> Result<(), ConfigError> {
        if !self.api_keys.is_empty() || self.anonymous_reads() || self.jwt.is_some() {
            return Ok(());
        }
        let message = if self.demo {
            format!(
                "none is configured, and without a key a demo may be read only on a loopback address, which {} is \
                 not; set STAKEGRAPH_API_KEYS (role:key[,role:key…]), or listen on 127.0.0.1",
                self.listen
            )
        } else {
            "none is configured, so every request would be refused; set STAKEGRAPH_API_KEYS (role:key[,role:key…], \
             e.g. editor:$(openssl rand -hex 24)) or api_keys in the configuration file, or run with --demo for a \
             local trial"
                .to_owned()
        };
        Err(ConfigError::Invalid { setting: "api_keys", message })
    }

    /// Whether callers without a key may read: only a demo served on a loopback address.
    pub fn anonymous_reads(&self) -> bool {
        self.demo && self.listen.ip().is_loopback()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_match() {
        let keys = ApiKeys::parse("viewer:aaaaaaaaaaaaaaaa, editor:bbbbbbbbbbbbbbbb").unwrap();
        assert_eq!(keys.role_of("aaaaaaaaaaaaaaaa"), Some(Role::Viewer));
        assert_eq!(keys.role_of("bbbbbbbbbbbbbbbb"), Some(Role::Editor));
        assert_eq!(keys.role_of("cccccccccccccccc"), None);
        assert!(!format!("{keys:?}").contains("aaaa"), "keys must never be printed");
    }

    #[test]
    fn keys_may_be_configured_as_their_sha256_digest() {
        let computed: String =
            key_digest("aaaaaaaaaaaaaaaa").iter().map(|byte| format!("{byte:02x}")).collect::<String>();
        let keys = ApiKeys::parse(&format!("admin:sha256:{computed}, viewer:cccccccccccccccc")).unwrap();
        assert_eq!(keys.identify("aaaaaaaaaaaaaaaa"), Some((KeyId(0), Role::Admin)));
        assert_eq!(keys.identify("cccccccccccccccc"), Some((KeyId(1), Role::Viewer)));
        assert_eq!(keys.identify(&computed), None, "the digest is not the key");
        let refused = |text: &str| ApiKeys::parse(text).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(refused("editor:sha256:abc").contains("64 hexadecimal digits"));
        assert!(refused(&format!("editor:sha256:{}", "zz".repeat(32))).contains("64 hexadecimal digits"));
        let twice = refused(&format!("viewer:aaaaaaaaaaaaaaaa, admin:sha256:{computed}"));
        assert!(twice.contains("same key"), "a key and its digest are one key: {twice}");
    }

    #[test]
    fn short_or_malformed_keys_are_refused() {
        assert!(ApiKeys::parse("editor:short").is_err());
        assert!(ApiKeys::parse("editorwithoutcolon").is_err());
        assert!(ApiKeys::parse("root:aaaaaaaaaaaaaaaa").is_err());
    }

    /// Environment variables.
    fn variables(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(variable, value)| ((*variable).to_owned(), (*value).to_owned())).collect()
    }

    /// The error of loading a file holding `text`.
    fn file_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stakegraph.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(Some(&file), &[], Overrides::default()).unwrap_err().to_string()
    }

    #[test]
    fn a_limit_that_would_refuse_everything_is_refused_with_its_value_and_a_sensible_one() {
        let cores = ApiLimits::default().max_concurrent_analyses;
        let concurrent = format!("0 would never run an analysis; set it to at least 1 (the default is {cores})");
        for (setting, value, expected) in [
            ("max_page_size", 0, "0 would refuse every page of a list; set it to at least 1 (the default is 100)"),
            ("max_depth", 0, "0 would refuse every query as too deep; set it to at least 1 (the default is 12)"),
            (
                "max_complexity",
                0,
                "0 would refuse every query as too complex; set it to at least 1 (the default is 2000)",
            ),
            (
                "max_nodes",
                0,
                "0 would refuse every query that returns a node; set it to at least 1 (the default is 25000)",
            ),
            (
                "max_batch",
                0,
                "0 would refuse every recordInteractions batch; set it to at least 1 (the default is 1000)",
            ),
            (
                "max_body_bytes",
                1000,
                "1000 would refuse most queries as too large; set it to at least 1024 (the default is 1048576)",
            ),
            ("max_hops", 0, "0 would refuse every influence path and reach; set it to at least 1 (the default is 8)"),
            ("max_analysis_results", 0, "0 would refuse every analysis; set it to at least 1 (the default is 50)"),
            (
                "max_churn_customers",
                0,
                "0 would refuse every portfolio and at-risk ranking with a customer; set it to at least 1 (the default \
                 is 1000)",
            ),
            (
                "analysis_budget_ms",
                0,
                "0 would stop every analysis before it starts; set it to at least 1 (the default is 5000)",
            ),
            (
                "betweenness_samples",
                0,
                "0 would find no broker in a large graph; set it to at least 1 (the default is 32)",
            ),
            (
                "max_subscriber_lag_seconds",
                0,
                "0 would end every live subscription at once; set it to at least 1 (the default is 30)",
            ),
            (
                "max_nesting",
                4,
                "4 would refuse most queries as nested too deeply; set it to at least 8 (the default is 64)",
            ),
            ("max_cost", 0, "0 would refuse every query as too costly; set it to at least 1 (the default is 100000)"),
            ("max_analyses", 0, "0 would refuse every analysis; set it to at least 1 (the default is 3)"),
            ("max_forecasts", 0, "0 would refuse every fallsBelow forecast; set it to at least 1 (the default is 500)"),
            (
                "request_timeout_ms",
                0,
                "0 would stop every request before it starts; set it to at least 1 (the default is 10000)",
            ),
            ("max_concurrent_analyses", 0, concurrent.as_str()),
            (
                "requests_per_second_per_key",
                0,
                "0 would refuse every request; set it to at least 1 (the default is 200)",
            ),
            (
                "analyses_per_minute_per_key",
                0,
                "0 would refuse every analysis; set it to at least 1 (the default is 600)",
            ),
            ("max_connections", 0, "0 would accept no connection; set it to at least 1 (the default is 4096)"),
            (
                "header_timeout_ms",
                0,
                "0 would close every connection before its request; set it to at least 1 (the default is 10000)",
            ),
            ("body_timeout_ms", 0, "0 would refuse every POST body; set it to at least 1 (the default is 30000)"),
        ] {
            let error = file_error(&format!("[limits]\n{setting} = {value}\n"));
            assert_eq!(error, format!("limits.{setting}: {expected}"));
        }
        // Every limit of the table is checked above, once.
        assert_eq!(limit_floors(&ApiLimits::default(), &WsLimits::default()).len(), 27);
        let error = file_error("[limits]\nrequest_timeout_ms = 9223372036854775807\n");
        assert_eq!(
            error,
            "limits.request_timeout_ms: 9223372036854775807 ms is longer than a day; set it to at most 86400000 ms \
             (a day), or much less"
        );
        let error = file_error("[websocket]\nmax_subscriptions_per_key = 0\n");
        assert_eq!(
            error,
            "websocket.max_subscriptions_per_key: 0 would refuse every subscription; set it to at least 1 (the \
             default is 500)"
        );
        let error = file_error("[limits]\nmax_nesting = 1000\n");
        assert_eq!(
            error,
            "limits.max_nesting: 1000 is deeper than the parser can safely follow on a worker's stack; set it to at \
             most 256 (the default is 64)"
        );
        let error = file_error("[limits]\nanalysis_nice = 20\n");
        assert_eq!(
            error,
            "limits.analysis_nice: 20 is not a niceness; set it between 0 (analyses compete with requests for the \
             cores) and 19 (analyses get the least share); the default is 10"
        );
        let error = file_error("[websocket]\nsubscriber_nice = 20\n");
        assert_eq!(
            error,
            "websocket.subscriber_nice: 20 is not a niceness; set it between 0 (subscribers compete with requests \
             for the cores) and 19 (subscribers get the least share); the default is 0"
        );
        // 0 means "always sample" here, which is meaningful.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stakegraph.toml");
        std::fs::write(&file, "[limits]\nbetweenness_exact_below = 0\n").unwrap();
        assert!(Config::load(Some(&file), &[], Overrides::default()).is_ok());
    }

    #[test]
    fn a_key_listed_twice_is_refused_without_printing_it() {
        let key = "0123456789abcdef0123";
        let error = ApiKeys::parse(&format!("viewer:{key}, editor:other-key-0123456789, admin:{key}")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "api_keys: entries 1 (viewer) and 3 (admin) are the same key; a key has one role, so keep only the entry \
             with the role it should have"
        );
        let error = ApiKeys::parse(&format!("editor:{key},editor:{key}")).unwrap_err();
        assert_eq!(error.to_string(), "api_keys: entries 1 and 2 are the same editor key; list each key once");
        let env = variables(&[("STAKEGRAPH_API_KEYS", &format!("viewer:{key},admin:{key}"))]);
        let error = Config::load(None, &env, Overrides::default()).unwrap_err().to_string();
        assert_eq!(
            error,
            "STAKEGRAPH_API_KEYS: entries 1 (viewer) and 2 (admin) are the same key; a key has one role, so keep only \
             the entry with the role it should have"
        );
        assert!(!error.contains(key));
        let error = file_error(&format!("api_keys = [\"editor:{key}\", \"editor:{key}\"]\n"));
        assert_eq!(error, "api_keys: entries 1 and 2 are the same editor key; list each key once");
    }

    #[test]
    fn serving_needs_a_key_unless_a_demo_is_read_on_loopback() {
        let no_keys = Config::default();
        assert_eq!(
            no_keys.check_serving().unwrap_err().to_string(),
            "api_keys: none is configured, so every request would be refused; set STAKEGRAPH_API_KEYS \
             (role:key[,role:key…], e.g. editor:$(openssl rand -hex 24)) or api_keys in the configuration file, or \
             run with --demo for a local trial"
        );
        let public_demo = Config { demo: true, listen: "0.0.0.0:8080".parse().unwrap(), ..Config::default() };
        assert_eq!(
            public_demo.check_serving().unwrap_err().to_string(),
            "api_keys: none is configured, and without a key a demo may be read only on a loopback address, which \
             0.0.0.0:8080 is not; set STAKEGRAPH_API_KEYS (role:key[,role:key…]), or listen on 127.0.0.1"
        );
        assert!(Config { demo: true, ..Config::default() }.check_serving().is_ok());
        let keyed = Config { api_keys: ApiKeys::parse("viewer:aaaaaaaaaaaaaaaa").unwrap(), ..public_demo };
        assert!(keyed.check_serving().is_ok());
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stakegraph.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndb = \"file.db\"\n[limits]\nmax_page_size = 7\n").unwrap();
        let env = variables(&[("STAKEGRAPH_DB", "env.db")]);
        let config = Config::load(Some(&file), &env, Overrides::default()).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.db_path, PathBuf::from("env.db"));
        assert_eq!(config.limits.max_page_size, 7);
        let overrides = Overrides { db: Some("flag.db".into()), demo: true, ..Default::default() };
        let config = Config::load(Some(&file), &env, overrides).unwrap();
        assert_eq!(config.db_path, PathBuf::from("flag.db"));
        assert!(config.anonymous_reads());
    }

    #[test]
    fn every_setting_of_the_file_can_be_set_by_a_variable_and_the_variable_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stakegraph.toml");
        std::fs::write(
            &file,
            "cors_origins = [\"https://file.example\"]\n[limits]\nmax_page_size = 7\nmax_depth = 5\n",
        )
        .unwrap();
        let env = variables(&[
            ("STAKEGRAPH_LIMITS__MAX_DEPTH", "9"),
            ("STAKEGRAPH_STRENGTH__WEIGHTS__TRUST", "0.5"),
            ("STAKEGRAPH_WEBSOCKET__MAX_SUBSCRIPTIONS_PER_KEY", "12"),
            ("STAKEGRAPH_WEBHOOKS__ALLOW_PRIVATE_NETWORKS", "true"),
            ("STAKEGRAPH_WEBHOOK_HOSTS", "hooks.example, 127.0.0.1:9000"),
            ("STAKEGRAPH_CORS_ORIGINS", "https://a.example,https://b.example"),
            ("STAKEGRAPH_STORE", "SQLite"),
            ("STAKEGRAPH_DB", "0123"),
            ("STAKEGRAPH_JWT_SECRET", "01234567890123456789012345678901234"),
            ("STAKEGRAPH_JWT_ISSUER", "https://id.example"),
            ("STAKEGRAPH_JWT_AUDIENCE", "1234567890"),
            ("STAKEGRAPH_DEMO_SIZE", "250"),
            // The command line's and the benchmarks' variables are not settings.
            ("STAKEGRAPH_LOG_FORMAT", "json"),
            ("STAKEGRAPH_BENCH_SIZE", "whatever"),
            ("PATH", "/usr/bin"),
        ]);
        let config = Config::load(Some(&file), &env, Overrides::default()).unwrap();
        assert_eq!((config.limits.max_page_size, config.limits.max_depth), (7, 9), "a section is merged");
        assert_eq!(config.strength.weights.trust, 0.5);
        assert_eq!(config.websocket.max_subscriptions_per_key, 12);
        assert!(config.webhooks.allow_private_networks);
        assert_eq!(config.webhooks.allowed_hosts, ["hooks.example", "127.0.0.1:9000"]);
        assert_eq!(config.cors_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(config.store, StoreKind::Sqlite);
        assert_eq!(config.db_path, PathBuf::from("0123"), "a value that looks like a number stays the text it is");
        assert!(config.jwt.is_some(), "a secret of digits is a secret");
        assert_eq!(config.demo_size, 250);
        let weights = "[1, 1, 0.8, 0.6, 0.5, 0.5, 0.4, 0.3, 0.2, 0.7]";
        let env = variables(&[("STAKEGRAPH_STRENGTH__CHANNEL_WEIGHTS", weights)]);
        let config = Config::load(None, &env, Overrides::default()).unwrap();
        assert_eq!(config.strength.channel_weights, [1.0, 1.0, 0.8, 0.6, 0.5, 0.5, 0.4, 0.3, 0.2, 0.7]);
        let env = variables(&[("STAKEGRAPH_CHURN__RETENTION_COSTS", "{SMB = 500.0, Enterprise = 5000}")]);
        let costs = Config::load(None, &env, Overrides::default()).unwrap().churn.retention_costs;
        assert_eq!(costs, [("Enterprise".to_owned(), 5000.0), ("SMB".to_owned(), 500.0)].into());
        let env = variables(&[("STAKEGRAPH_CHURN__RETENTION_COSTS__SMB", "500")]);
        let refused = Config::load(None, &env, Overrides::default()).unwrap_err().to_string();
        assert!(refused.starts_with("STAKEGRAPH_CHURN__RETENTION_COSTS__SMB: a segment's name keeps its case"));
        // The file's lists and the flags.
        let config = Config::load(Some(&file), &[], Overrides { store: Some(StoreKind::Sqlite), ..Default::default() });
        assert_eq!(config.unwrap().cors_origins, ["https://file.example"]);
    }

    #[test]
    fn a_wrong_variable_is_refused_by_its_name_with_what_to_write() {
        let refused = |pairs: &[(&str, &str)]| {
            Config::load(None, &variables(pairs), Overrides::default()).unwrap_err().to_string()
        };
        assert_eq!(
            refused(&[("STAKEGRAPH_LIMITS__MAX_DEPTH", "0")]),
            "STAKEGRAPH_LIMITS__MAX_DEPTH: 0 would refuse every query as too deep; set it to at least 1 (the default \
             is 12)"
        );
        let deep = refused(&[("STAKEGRAPH_LIMITS__MAX_DEPTH", "deep")]);
        assert!(deep.starts_with("STAKEGRAPH_LIMITS__MAX_DEPTH: invalid type: found string \"deep\""), "{deep}");
        let typo = refused(&[("STAKEGRAPH_LIMITS__MAX_DEPHT", "3")]);
        assert!(typo.starts_with("STAKEGRAPH_LIMITS__MAX_DEPHT: `max_depht` is not a setting here; write one of"));
        assert!(typo.contains(", max_depth, "), "the names it could be are listed: {typo}");
        let section = refused(&[("STAKEGRAPH_LIMTS__MAX_DEPTH", "3")]);
        assert!(section.starts_with("STAKEGRAPH_LIMTS__MAX_DEPTH: `limts` is not a setting here"), "{section}");
        assert_eq!(
            refused(&[("STAKEGRAPH_CHURN__THRESHOLD", "2")]),
            "churn (set by STAKEGRAPH_CHURN__THRESHOLD): threshold must be in [0, 1], horizon_days, full_decline and \
             silence_half_life_days finite and greater than 0, complaint_days from 1 to 3650, retention_costs finite \
             and 0 or more"
        );
        assert_eq!(
            refused(&[("STAKEGRAPH_LISTEN", "nowhere")]),
            "STAKEGRAPH_LISTEN: 'nowhere' is not an address; write host:port, for example 127.0.0.1:8080"
        );
        assert_eq!(
            refused(&[("STAKEGRAPH_INTROSPECTION", "nobody")]),
            "STAKEGRAPH_INTROSPECTION: 'nobody' is not who may introspect; write everyone, editors or admins"
        );
        assert_eq!(
            refused(&[("STAKEGRAPH_STORE", "neo4j"), ("NEO4J_URI", "bolt://x:7687"), ("NEO4J_TIMEOUT_SECONDS", "-1")]),
            "NEO4J_TIMEOUT_SECONDS: must be a number of seconds greater than 0, e.g. 5"
        );
        let secret = refused(&[("STAKEGRAPH_JWT_SECRET", "short-secret-7c1f")]);
        assert!(secret.starts_with("jwt: ") && !secret.contains("7c1f"), "{secret}");
    }

    #[test]
    fn a_wrong_value_in_the_file_names_the_file_and_the_setting_and_never_quotes_a_key() {
        let error = file_error("[limits]\nmax_depth = \"deep\"\n");
        assert!(error.contains("is not valid: limits.max_depth: invalid type: found string \"deep\""), "{error}");
        let error = file_error("[jwt]\nhs256_secret = 314159265358979\n");
        assert!(error.contains("jwt.hs256_secret: is not valid text") && !error.contains("314159"), "{error}");
        let error = file_error("api_keys = [\"editor:0123456789abcdef\", 42424242]\n");
        assert!(
            error.contains("api_keys") && !error.contains("0123456789abcdef") && !error.contains("4242"),
            "{error}"
        );
        let error = file_error("cors_origins = 5\n");
        assert!(error.ends_with("cors_origins: invalid type: found signed int `5`, expected a list of text, or text with its entries separated by commas"), "{error}");
        let error = file_error("store = \"mongodb\"\n");
        assert!(error.contains("store: 'mongodb' is not a store; write sqlite, neo4j or falkordb"), "{error}");
        let error = file_error("api_keys = [\"editor:0123456789abcdef\"\n");
        assert!(error.contains("line 2: invalid array") && !error.contains("0123456789abcdef"), "{error}");
    }

    #[test]
    fn the_falkordb_store_takes_its_address_from_the_flag_the_environment_or_the_file_and_needs_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stakegraph.toml");
        std::fs::write(&file, "store = \"falkordb\"\n[falkordb]\nurl = \"falkor://file:6379\"\ngraph = \"g\"\n")
            .unwrap();
        let config = Config::load(Some(&file), &[], Overrides::default()).unwrap();
        assert_eq!(config.store, StoreKind::Falkordb);
        assert_eq!(config.falkordb, Some(FalkorSettings { url: "falkor://file:6379".into(), graph: "g".into() }));
        let env = variables(&[("FALKORDB_URL", "redis://user:secret@env:6379"), ("FALKORDB_TIMEOUT_SECONDS", "2.5")]);
        let config = Config::load(Some(&file), &env, Overrides::default()).unwrap();
        let settings = config.falkordb.clone().unwrap();
        assert_eq!((settings.url.as_str(), settings.graph.as_str()), ("redis://user:secret@env:6379", "g"));
        assert_eq!(config.neo4j_timeout, Duration::from_secs_f64(2.5));
        assert!(!format!("{settings:?}").contains("secret"), "a password in the URL is never printed");
        let overrides = Overrides { falkordb_url: Some("falkor://flag:6379".into()), ..Default::default() };
        assert_eq!(Config::load(Some(&file), &env, overrides).unwrap().falkordb.unwrap().url, "falkor://flag:6379");

        let overrides = Overrides { store: Some(StoreKind::Falkordb), ..Default::default() };
        let refused = Config::load(None, &[], overrides.clone()).unwrap_err().to_string();
        assert!(refused.contains("--falkordb-url") && refused.contains("falkor://127.0.0.1:6379"), "{refused}");
        let env = variables(&[("STAKEGRAPH_STORE", "mongodb")]);
        let refused = Config::load(None, &env, Overrides::default()).unwrap_err().to_string();
        assert_eq!(refused, "STAKEGRAPH_STORE: 'mongodb' is not a store; write sqlite, neo4j or falkordb");
    }

    #[test]
    fn the_readme_strength_section_is_the_default_model() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme.find("[strength]").expect("README documents [strength]");
        let section = &readme[start..readme[start..].find("```").map(|end| start + end).unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stakegraph.toml");
        std::fs::write(&file, section).unwrap();
        let config = Config::load(Some(&file), &[], Overrides::default()).unwrap();
        assert_eq!(config.strength, StrengthModel::default());
        std::fs::write(&file, "[strength]\nkappa = 0\n").unwrap();
        assert!(Config::load(Some(&file), &[], Overrides::default()).is_err());
    }

    #[test]
    fn the_readme_churn_section_is_the_default_model() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme.find("\n[churn]").expect("README documents [churn]") + 1;
        let section = &readme[start..readme[start..].find("```").map(|end| start + end).unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stakegraph.toml");
        std::fs::write(&file, section).unwrap();
        let config = Config::load(Some(&file), &[], Overrides::default()).unwrap();
        assert_eq!(config.churn, ChurnModel::default());
        for refused in
            ["complaint_days = 0", "horizon_days = inf", "threshold = 1.5", "retention_costs = { SMB = -1.0 }"]
        {
            std::fs::write(&file, format!("[churn]\n{refused}\n")).unwrap();
            assert!(Config::load(Some(&file), &[], Overrides::default()).is_err(), "{refused}");
        }
    }

    #[test]
    fn unknown_file_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stakegraph.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let error = Config::load(Some(&file), &[], Overrides::default()).unwrap_err();
        assert!(error.to_string().contains("lisen"), "{error}");
    }
}
