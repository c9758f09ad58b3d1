//! Persisted documents: a request may name its document by hash instead of sending its text.
//!
//! - **Automatic persisted queries** (Apollo's protocol): `extensions.persistedQuery = {version: 1, sha256Hash}`.
//!   With the hash alone, the document is taken from a bounded cache, or the request fails with
//!   `PersistedQueryNotFound` (code `PERSISTED_QUERY_NOT_FOUND`), and the client sends the hash with the text,
//!   which is checked against the hash and run, and kept once the policy admits it. The cache holds at most
//!   `limits.persisted_query_cache_bytes` (each document charged its text and [`ENTRY_BYTES`]; least recently used
//!   out first), one cache for callers who see private stakeholders and one for those who do not; 0 turns automatic
//!   persisting off (`PERSISTED_QUERY_NOT_SUPPORTED`, on which Apollo's link stops sending hashes).
//! - **Trusted documents** (production): a manifest of allowed operations, `{"<sha256 hex>": "<document>"}` as Relay
//!   (`persistConfig` with SHA256) and GraphQL Codegen's client preset write it (`stakegraph trusted-documents`
//!   writes one from `queries/`). Only its documents run: named by hash (`extensions.persistedQuery`, or
//!   `documentId` as `sha256:<hex>` or `<hex>`) or sent as text whose hash is in it; anything else is refused with
//!   `PERSISTED_QUERY_NOT_IN_LIST`, and nothing is persisted automatically.
//!
//! The protocol runs in front of the request policy (the resolved text is then priced like any other), rather than
//! as async-graphql's `ApolloPersistedQueries` extension: any extension puts a hook around every field's
//! resolution (see `policy`).

use async_graphql::{ErrorExtensionValues, Request, ServerError, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The hash of `text` as the protocols spell it: SHA-256, lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An error with `code`.
fn coded(message: impl Into<String>, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", Value::from(code));
    error.extensions = Some(extensions);
    error
}

/// A trusted-documents manifest that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read the trusted documents {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a manifest.
    #[error(
        "the trusted documents {path} are not a JSON object of SHA-256 hashes to documents ({why}); write them with \
         `stakegraph trusted-documents`, or with Relay's persistConfig (algorithm SHA256) or GraphQL Codegen's \
         persisted documents"
    )]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A directory without operations.
    #[error("{path} holds no .graphql file; give the directory of the operations the clients send")]
    NoOperations {
        /// The directory.
        path: std::path::PathBuf,
    },
}

/// The documents a request may name by hash, and (with trusted documents) the only ones that run.
pub struct Persisted {
    /// Documents persisted automatically, least recently used first out, with their total length.
    cache: Mutex<(lru::LruCache<String, Arc<str>>, usize)>,
    /// Most document text the cache holds, in bytes (0: no automatic persisting).
    budget: usize,
    /// The trusted documents, when only they may run.
    trusted: Option<HashMap<String, Arc<str>>>,
}

impl std::fmt::Debug for Persisted {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.trusted {
            Some(trusted) => write!(formatter, "Persisted {{ trusted documents: {} }}", trusted.len()),
            None => write!(formatter, "Persisted {{ cache budget: {} bytes }}", self.budget),
        }
    }
}

impl Persisted {
    /// Automatic persisted queries with a cache of `budget` bytes of document text, and no trusted documents.
    pub fn new(budget: usize) -> Self {
        Self { cache: Mutex::new((lru::LruCache::unbounded(), 0)), budget, trusted: None }
    }

    /// Only the documents of `manifest` run (hash → text; each hash is checked against its text).
    pub fn trusted(manifest: HashMap<String, String>) -> Result<Self, String> {
        let mut trusted = HashMap::with_capacity(manifest.len());
        for (hash, text) in manifest {
            let hash = hash.strip_prefix("sha256:").unwrap_or(&hash).to_ascii_lowercase();
            let actual = sha256_hex(&text);
            if hash != actual {
                return Err(format!(
                    "the document listed as {hash} has the SHA-256 hash {actual}; list each document under the hash \
                     of its exact text"
                ));
            }
            trusted.insert(hash, Arc::from(text));
        }
        Ok(Self { trusted: Some(trusted), ..Self::new(0) })
    }

    /// Reads a manifest file for [`Persisted::trusted`].
    pub fn trusted_from(path: &std::path::Path) -> Result<Self, ManifestError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
        let invalid = |why: String| ManifestError::Invalid { path: path.to_owned(), why };
        let manifest: HashMap<String, String> =
            serde_json::from_str(&text).map_err(|error| invalid(error.to_string()))?;
        if manifest.is_empty() {
            return Err(invalid("it lists no document, so every request would be refused".into()));
        }
        Self::trusted(manifest).map_err(invalid)
    }

    /// Whether only trusted documents run.
    pub fn is_trusted_only(&self) -> bool {
        self.trusted.is_some()
    }

    /// Gives `request` the text of the document it names by hash, or refuses it; a document sent with its hash is
    /// marked to be kept once the policy admits it ([`Persisted::keep_admitted`]). A request without a hash is left
    /// as it is, unless only trusted documents run and its text is not one of them. Callers who see private
    /// stakeholders and callers who do not have caches of their own (`sees_private`), so that whether a document
    /// was run lately tells neither about the other's.
    pub fn resolve(&self, request: &mut Request, sees_private: bool) -> Result<(), ServerError> {
        let hash = match request.extensions.remove("persistedQuery") {
            Some(value) => Some(persisted_query_hash(value)?),
            None => None,
        };
        match (&self.trusted, hash) {
            (Some(trusted), hash) => {
                let hash = hash.unwrap_or_else(|| sha256_hex(&request.query));
                let Some(text) = trusted.get(&hash) else {
                    return Err(coded(
                        "this server runs trusted documents only, and this one is not among them; add the operation \
                         to the trusted documents (`stakegraph trusted-documents`) and deploy them",
                        "PERSISTED_QUERY_NOT_IN_LIST",
                    ));
                };
                if request.query != **text {
                    request.query = text.to_string();
                }
                Ok(())
            }
            (None, None) => Ok(()),
            (None, Some(_)) if self.budget == 0 => {
                if request.query.is_empty() {
                    // Apollo's link turns persisting off on this answer instead of sending every query twice.
                    return Err(coded("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED"));
                }
                Ok(())
            }
            (None, Some(hash)) if request.query.is_empty() => {
                let found = self.lock().0.get(&partitioned(&hash, sees_private)).cloned();
                match found {
                    Some(text) => {
                        request.query = text.to_string();
                        Ok(())
                    }
                    None => Err(coded("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")),
                }
            }
            (None, Some(hash)) => {
                let actual = sha256_hex(&request.query);
                if hash != actual {
                    return Err(coded(
                        format!(
                            "persistedQuery.sha256Hash is {hash}, but the query's SHA-256 hash is {actual}; send the \
                             hash of the exact query text"
                        ),
                        "BAD_USER_INPUT",
                    ));
                }
                request.data.insert(Keep(partitioned(&hash, sees_private)));
                Ok(())
            }
        }
    }

    /// Keeps the document of an admitted `request` that [`Persisted::resolve`] marked, making room within the budget
    /// (each document is charged its text and [`ENTRY_BYTES`]; one larger than the whole budget is not kept). Only
    /// admitted documents are kept: one that does not parse or is over a limit never takes a place.
    pub fn keep_admitted(&self, request: &Request) {
        let Some(Keep(hash)) = request.data.get(&std::any::TypeId::of::<Keep>()).and_then(|data| data.downcast_ref())
        else {
            return;
        };
        let charge = request.query.len() + ENTRY_BYTES;
        if charge > self.budget {
            return;
        }
        let mut cache = self.lock();
        let (entries, bytes) = &mut *cache;
        if let Some(previous) = entries.put(hash.clone(), Arc::from(request.query.as_str())) {
            *bytes -= previous.len() + ENTRY_BYTES;
        }
        *bytes += charge;
        while *bytes > self.budget {
            let Some((_, evicted)) = entries.pop_lru() else { break };
            *bytes -= evicted.len() + ENTRY_BYTES;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (lru::LruCache<String, Arc<str>>, usize)> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The documents kept and their total length, in bytes.
    pub fn cached(&self) -> (usize, usize) {
        let cache = self.lock();
        (cache.0.len(), cache.1)
    }
}

/// What each kept document costs beside its text: its key (a partition and 64 hex digits) and the cache's
/// bookkeeping, counted against `limits.persisted_query_cache_bytes` so that many tiny documents stay within it.
pub const ENTRY_BYTES: usize = 256;

/// A document to keep under this cache key once the policy admits its request.
struct Keep(String);

/// The cache key of `hash` for callers who see private stakeholders or not.
fn partitioned(hash: &str, sees_private: bool) -> String {
    format!("{}:{hash}", if sees_private { "full" } else { "masked" })
}

/// The hash of an `extensions.persistedQuery` value (version 1), lowercase.
fn persisted_query_hash(value: Value) -> Result<String, ServerError> {
    let invalid = |why: &str| {
        coded(
            format!("extensions.persistedQuery {why}; send {{\"version\": 1, \"sha256Hash\": \"<64 hex digits>\"}}"),
            "BAD_USER_INPUT",
        )
    };
    let Value::Object(fields) = value else { return Err(invalid("is not an object")) };
    match fields.get("version") {
        Some(Value::Number(version)) if version.as_u64() == Some(1) => {}
        _ => return Err(invalid("has no version 1 (the only version of the protocol)")),
    }
    match fields.get("sha256Hash") {
        Some(Value::String(hash)) if hash.len() == 64 && hash.bytes().all(|byte| byte.is_ascii_hexdigit()) => {
            Ok(hash.to_ascii_lowercase())
        }
        _ => Err(invalid("has no sha256Hash of 64 hex digits")),
    }
}

/// The trusted-documents manifest of every `.graphql` file in `dir`: each file's text under its SHA-256 hash, in
/// hash order.
pub fn manifest_of(dir: &std::path::Path) -> Result<std::collections::BTreeMap<String, String>, ManifestError> {
    let read = |source| ManifestError::Read { path: dir.to_owned(), source };
    let mut manifest = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.extension().and_then(|extension| extension.to_str()) != Some("graphql") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|source| ManifestError::Read { path: path.clone(), source })?;
        manifest.insert(sha256_hex(&text), text);
    }
    if manifest.is_empty() {
        return Err(ManifestError::NoOperations { path: dir.to_owned() });
    }
    Ok(manifest)
}

/// The hash a request's top-level `documentId` names (`sha256:<hex>` or `<hex>`), as an `extensions.persistedQuery`
/// value, so that [`Persisted::resolve`] reads both alike.
pub fn document_id(id: &str) -> Value {
    let hash = id.strip_prefix("sha256:").unwrap_or(id);
    let mut fields = async_graphql::indexmap::IndexMap::new();
    fields.insert(async_graphql::Name::new("version"), Value::from(1));
    fields.insert(async_graphql::Name::new("sha256Hash"), Value::from(hash));
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(hash: &str, query: &str) -> Request {
        let mut request = Request::new(query);
        request.extensions.insert("persistedQuery".into(), document_id(hash));
        request
    }

    // The example of Apollo's documentation, with its hash.
    const QUERY: &str = "{__typename}";

    /// Resolves `request` as a viewer, and keeps it as the policy would once admitted.
    fn run(persisted: &Persisted, request: &mut Request) -> Result<(), ServerError> {
        persisted.resolve(request, false)?;
        persisted.keep_admitted(request);
        Ok(())
    }

    #[test]
    fn apollo_s_flow_hash_only_then_hash_and_text_then_hash_only() {
        let persisted = Persisted::new(1 << 20);
        let hash = sha256_hex(QUERY);
        assert_eq!(hash, "ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38");
        let error = run(&persisted, &mut named(&hash, "")).unwrap_err();
        assert_eq!(error.message, "PersistedQueryNotFound");
        let mut registered = named(&hash, QUERY);
        run(&persisted, &mut registered).unwrap();
        assert!(registered.extensions.is_empty(), "the extension is taken out of the request");
        let mut again = named(&hash, "");
        run(&persisted, &mut again).unwrap();
        assert_eq!(again.query, QUERY);
        let mut editor = named(&hash, "");
        let missed = persisted.resolve(&mut editor, true).unwrap_err();
        assert_eq!(missed.message, "PersistedQueryNotFound", "an editor's cache is its own");
        let wrong = run(&persisted, &mut named(&"0".repeat(64), QUERY)).unwrap_err();
        assert!(wrong.message.contains("send the hash of the exact query text"), "{}", wrong.message);
        let malformed = run(&persisted, &mut named("xyz", "")).unwrap_err();
        assert!(malformed.message.contains("64 hex digits"), "{}", malformed.message);
        let unadmitted = "{ a: __typename }";
        persisted.resolve(&mut named(&sha256_hex(unadmitted), unadmitted), false).unwrap();
        assert!(run(&persisted, &mut named(&sha256_hex(unadmitted), "")).is_err(), "kept only once admitted");
        let off = Persisted::new(0).resolve(&mut named(&hash, ""), false).unwrap_err();
        assert_eq!(off.message, "PersistedQueryNotSupported", "Apollo's link stops persisting on this");
    }

    #[test]
    fn the_cache_keeps_at_most_its_budget_least_recently_used_out_first() {
        let documents = ["{ a: __typename }", "{ b: __typename }", "{ c: __typename }"];
        let persisted = Persisted::new(2 * (17 + ENTRY_BYTES) + 10);
        for text in &documents[..2] {
            run(&persisted, &mut named(&sha256_hex(text), text)).unwrap();
        }
        assert_eq!(persisted.cached(), (2, 2 * (17 + ENTRY_BYTES)));
        run(&persisted, &mut named(&sha256_hex(documents[0]), "")).unwrap();
        run(&persisted, &mut named(&sha256_hex(documents[2]), documents[2])).unwrap();
        assert_eq!(persisted.cached(), (2, 2 * (17 + ENTRY_BYTES)), "the least recently used one went");
        assert!(run(&persisted, &mut named(&sha256_hex(documents[1]), "")).is_err());
        assert!(run(&persisted, &mut named(&sha256_hex(documents[0]), "")).is_ok());
        let big = format!("{{ {} }}", "__typename ".repeat(100));
        run(&persisted, &mut named(&sha256_hex(&big), &big)).unwrap();
        assert_eq!(persisted.cached(), (2, 2 * (17 + ENTRY_BYTES)), "a document over the whole budget runs, not kept");
        // Tiny documents are charged their bookkeeping: the budget bounds their number too.
        let small = Persisted::new(100 * ENTRY_BYTES);
        for n in 0..1_000 {
            let text = format!("{{a{n}}}");
            run(&small, &mut named(&sha256_hex(&text), &text)).unwrap();
        }
        assert!(small.cached().0 < 100, "{:?}", small.cached());
    }

    #[test]
    fn trusted_documents_run_and_nothing_else_does() {
        let manifest = HashMap::from([(sha256_hex(QUERY), QUERY.to_owned())]);
        let trusted = Persisted::trusted(manifest).unwrap();
        let mut by_hash = named(&sha256_hex(QUERY), "");
        run(&trusted, &mut by_hash).unwrap();
        assert_eq!(by_hash.query, QUERY);
        run(&trusted, &mut Request::new(QUERY)).unwrap();
        let other = "{ a: __typename }";
        for mut request in [Request::new(other), named(&sha256_hex(other), other), named(&sha256_hex(other), "")] {
            let refused = run(&trusted, &mut request).unwrap_err();
            let code = refused.extensions.as_ref().and_then(|extensions| extensions.get("code").cloned());
            assert_eq!(code, Some(Value::from("PERSISTED_QUERY_NOT_IN_LIST")));
        }
        let lying = HashMap::from([(sha256_hex(other), QUERY.to_owned())]);
        assert!(Persisted::trusted(lying).unwrap_err().contains("has the SHA-256 hash"));
    }
}
