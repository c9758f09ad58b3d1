//! The embedded default backend: SQLite (bundled) in WAL mode, one writer connection and a pool of readers.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction that also appends to `change_log`; with `synchronous=FULL`
//! an acknowledged write survives `kill -9` and power loss.

mod rows;
mod write;

use super::{
    topic_names, GraphCounts, GraphScan, GraphStore, InteractionCursor, InteractionPage, NodeRow, PageDirection,
    StakeholderPage, StakeholderQuery, StakeholderSort, StoreError, StoreResult, StoredWebhook,
};
use crate::domain::strength::StrengthModel;
use crate::domain::webhook::Webhook;
use crate::domain::{
    Applied, ChangeEvent, Command, Interaction, InteractionId, MarketSet, Program, Relationship, RelationshipId,
    Stakeholder, StakeholderId, TopicSet, WebhookId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use r2d2_sqlite::SqliteConnectionManager;
use rows::{internal, CHANGE_COLUMNS, INTERACTION_COLUMNS, PROGRAM_COLUMNS, RELATIONSHIP_COLUMNS, STAKEHOLDER_COLUMNS};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
];

/// The schema version this binary writes (`PRAGMA user_version`); a file with a higher one is refused.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// `PRAGMA application_id` of a Stakegraph database ("Stkg"): what tells one of ours from another application's
/// SQLite file. Files written before it was set are recognised by their version and [`OWN_TABLES`].
const APPLICATION_ID: i32 = 0x5374_6B67;

/// Tables every Stakegraph schema has held since version 1.
const OWN_TABLES: [&str; 4] = ["stakeholder", "relationship", "interaction", "change_log"];

/// Tables named in a refusal before the rest are only counted.
const TABLES_NAMED: usize = 5;

/// Reader connections kept open.
const READERS: u32 = 4;

/// The SQLite graph store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// The model the stored decayed sums follow.
    model: Arc<StrengthModel>,
}

/// Pages of the writer's cache (negative: KiB): the B-tree pages a batch of random updates walks stay in memory.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// Pages the write-ahead log may hold before the commit that passes it folds the log into the database file
/// (SQLite's default is 1,000). Folding less often lets the pages that every commit dirties (the B-tree's inner
/// pages, the ends of the append-only tables) be written back once for many commits, and syncs the database file
/// less often: a batch of 1,000 interactions on random relationships dirties about 2,000 pages, so with the
/// default every such commit would also checkpoint. 16,384 pages is a log of up to 64 MiB (at 4 KiB pages).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    rusqlite::vtab::array::load_module(connection)
}

/// Why a file cannot be opened as a Stakegraph database. A refusal leaves the file as it was: nothing is written
/// to it before it is known to be Stakegraph's.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file is another application's, or not a SQLite database at all.
    #[error("{} is not a Stakegraph database: it is {what}. Stakegraph left it untouched; choose another file with --db", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        what: String,
    },
    /// The file was written by a newer Stakegraph.
    #[error(
        "{} is a Stakegraph database of schema version {found}, newer than this stakegraph ({}) knows (up to {known}). \
         Stakegraph left it untouched; upgrade stakegraph, or run the version that wrote it",
        path.display(),
        env!("CARGO_PKG_VERSION")
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: usize,
        /// The newest this binary knows.
        known: usize,
    },
    /// The file could not be opened or brought up to date.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OpenError> for StoreError {
    /// For callers that treat any failure to open as the store being unavailable.
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Store(error) => error,
            refused => StoreError::Unavailable(refused.to_string()),
        }
    }
}

/// What an existing file holds, read without writing to it.
struct Found {
    application_id: i32,
    version: usize,
    /// Its tables and views, by name.
    tables: Vec<String>,
}

impl Found {
    /// Reads `path` on a read-only connection (a missing or empty file is a new database).
    fn read(path: &Path) -> Result<Self, OpenError> {
        let empty = Found { application_id: 0, version: 0, tables: Vec::new() };
        if std::fs::metadata(path).map_or(true, |metadata| metadata.len() == 0) {
            return Ok(empty);
        }
        let failed = |error: rusqlite::Error| match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => {
                OpenError::Foreign { path: path.to_owned(), what: "not a SQLite database".into() }
            }
            _ => StoreError::Unavailable(format!("cannot open {}: {error}", path.display())).into(),
        };
        let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
        let pragma = |name: &str| connection.pragma_query_value(None, name, |row| row.get::<_, i64>(0));
        let application_id = pragma("application_id").map_err(failed)? as i32;
        let version = pragma("user_version").map_err(failed)?.max(0) as usize;
        let mut statement = connection
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' \
                 ORDER BY name",
            )
            .map_err(failed)?;
        let tables = statement
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(failed)?;
        Ok(Found { application_id, version, tables })
    }

    /// Refuses a file that is not Stakegraph's or is newer than this binary; accepts a new one and one of ours.
    fn check(&self, path: &Path) -> Result<(), OpenError> {
        let ours = self.application_id == APPLICATION_ID
            || (self.application_id == 0
                && self.version > 0
                && OWN_TABLES.iter().all(|own| self.tables.iter().any(|table| table == own)));
        let new = self.application_id == 0 && self.version == 0 && self.tables.is_empty();
        if ours {
            if self.version > SCHEMA_VERSION {
                return Err(OpenError::Newer { path: path.to_owned(), found: self.version, known: SCHEMA_VERSION });
            }
            return Ok(());
        }
        if new {
            return Ok(());
        }
        let what = if self.application_id != 0 {
            format!("the SQLite database of another application (application_id {:#010x})", self.application_id)
        } else if self.tables.is_empty() {
            format!("a SQLite database of another application (user_version {}, no tables)", self.version)
        } else {
            let mut named = self.tables.iter().take(TABLES_NAMED).cloned().collect::<Vec<_>>().join(", ");
            if self.tables.len() > TABLES_NAMED {
                named.push_str(&format!(" and {} more", self.tables.len() - TABLES_NAMED));
            }
            format!("a SQLite database holding other tables ({named})")
        };
        Err(OpenError::Foreign { path: path.to_owned(), what })
    }
}

/// Brings the schema up to date and marks the file as Stakegraph's, in one transaction; a file stamped by a newer
/// Stakegraph meanwhile is refused.
fn migrate(connection: &mut Connection, path: &Path) -> Result<(), OpenError> {
    let failed =
        |error: rusqlite::Error| StoreError::Unavailable(format!("cannot migrate {}: {error}", path.display()));
    let pragma =
        |connection: &Connection, name: &str| connection.pragma_query_value(None, name, |row| row.get::<_, i64>(0));
    let (version, application_id) =
        (pragma(connection, "user_version").map_err(failed)?, pragma(connection, "application_id").map_err(failed)?);
    if version == SCHEMA_VERSION as i64 && application_id == i64::from(APPLICATION_ID) {
        return Ok(());
    }
    let tx = connection.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(failed)?;
    // Read again under the lock: another process may have migrated the file since.
    let done = pragma(&tx, "user_version").map_err(failed)?.max(0) as usize;
    if done > SCHEMA_VERSION {
        return Err(OpenError::Newer { path: path.to_owned(), found: done, known: SCHEMA_VERSION });
    }
    for migration in &MIGRATIONS[done..] {
        tx.execute_batch(migration).map_err(failed)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(failed)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(())
}

/// Recomputes the stored decayed sums when they were kept for another model (or not at all).
fn align_sums(connection: &mut Connection, model: &StrengthModel) -> StoreResult<()> {
    let fingerprint = model.sums_fingerprint();
    let stored: Option<String> = connection
        .query_row("SELECT value FROM meta WHERE key = 'sums_model'", [], |row| row.get(0))
        .optional()
        .map_err(internal)?;
    if stored.as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(internal)?;
    let relationships = write::recompute_sums(&tx, model)?;
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('sums_model', ?1)", [&fingerprint])
        .map_err(internal)?;
    tx.commit().map_err(internal)?;
    if stored.is_some() {
        tracing::info!(relationships, elapsed = ?started.elapsed(), "recomputed decayed sums for a new half-life or channel weights");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to date, keeping decayed
    /// sums for the default strength model.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, StrengthModel::default())
    }

    /// Like [`SqliteStore::open`], keeping decayed sums for `model`: when the store's sums were computed with
    /// another half-life or other channel weights, they are recomputed from the history first.
    ///
    /// A file that holds tables but is not Stakegraph's, or that a newer Stakegraph wrote, is refused before
    /// anything is written to it.
    pub fn open_with(path: impl AsRef<Path>, model: StrengthModel) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        Found::read(&path)?.check(&path)?;
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Unavailable(format!("cannot create the directory {}: {error}", parent.display()))
            })?;
        }
        let open_error =
            |error: rusqlite::Error| StoreError::Unavailable(format!("cannot open {}: {error}", path.display()));
        let mut writer = Connection::open(&path).map_err(open_error)?;
        writer.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
        writer.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
        writer.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(open_error)?;
        writer.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES).map_err(open_error)?;
        configure(&writer).map_err(open_error)?;
        migrate(&mut writer, &path)?;
        align_sums(&mut writer, &model)?;
        // Refreshes the planner's statistics where they are missing or stale (cheap when nothing changed).
        writer.execute_batch("PRAGMA optimize = 0x10002").map_err(open_error)?;
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI)
            .with_init(|connection: &mut Connection| configure(connection));
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .build(manager)
            .map_err(|error| StoreError::Unavailable(format!("cannot open readers on {}: {error}", path.display())))?;
        Ok(Self { path, writer: Arc::new(Mutex::new(writer)), readers, model: Arc::new(model) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` on a pooled reader connection, off the async worker threads.
    async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let connection = readers.get().map_err(|error| StoreError::Unavailable(error.to_string()))?;
            read(&connection).map_err(internal)
        })
        .await
        .map_err(internal)?
    }
}

impl SqliteStore {
    /// Runs `write` in a transaction on the writer connection, off the async worker threads (for what is not graph
    /// data: graph changes go through [`GraphStore::apply`]).
    async fn write<T, F>(&self, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = writer.lock().map_err(|_| StoreError::Internal("writer lock poisoned".into()))?;
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(internal)?;
            let done = write(&tx).map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(done)
        })
        .await
        .map_err(internal)?
    }
}

/// A store error as a SQLite one, inside a transaction closure.
fn to_sqlite(error: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(error))
}

fn scan_graph(connection: &Connection) -> rusqlite::Result<GraphScan> {
    let seq = connection.query_row("SELECT COALESCE(MAX(seq), 0) FROM change_log", [], |row| row.get(0))?;
    let mut statement = connection
        .prepare("SELECT id, kind, markets, private FROM stakeholder WHERE archived_at IS NULL ORDER BY id")?;
    let stakeholders = statement
        .query_map([], |row| {
            Ok(NodeRow {
                id: StakeholderId(row.get(0)?),
                kind: rows::parse_text(row, 1)?,
                markets: MarketSet::from_bits(row.get(2)?),
                private: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut statement = connection.prepare(&format!("SELECT {RELATIONSHIP_COLUMNS} FROM relationship ORDER BY id"))?;
    let relationships = statement.query_map([], rows::relationship)?.collect::<rusqlite::Result<Vec<_>>>()?;
    let mut statement = connection.prepare("SELECT id FROM stakeholder WHERE archived_at IS NOT NULL ORDER BY id")?;
    let archived = statement.query_map([], |row| row.get(0).map(StakeholderId))?.collect::<rusqlite::Result<_>>()?;
    Ok(GraphScan { seq, stakeholders, relationships, archived })
}

/// `items` as the parameter `rarray(?)` reads (ids, keys).
fn array_of<T: Into<Value>>(items: impl IntoIterator<Item = T>) -> Rc<Vec<Value>> {
    Rc::new(items.into_iter().map(Into::into).collect())
}

/// Escapes LIKE wildcards so that a search matches the text literally.
fn like_pattern(search: &str) -> String {
    let escaped = search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// The WHERE clause (without cursor) and its parameters for a listing.
fn filter_clause(query: &StakeholderQuery) -> (Vec<String>, Vec<Value>) {
    let filter = &query.filter;
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let bind = |values: &mut Vec<Value>, value: Value| {
        values.push(value);
        format!("?{}", values.len())
    };
    if !filter.include_archived {
        conditions.push("archived_at IS NULL".to_owned());
    }
    if !filter.kinds.is_empty() {
        let list: Vec<String> = filter.kinds.iter().map(|kind| format!("'{}'", kind.as_str())).collect();
        conditions.push(format!("kind IN ({})", list.join(", ")));
    }
    if !filter.markets.is_empty() {
        let slot = bind(&mut values, Value::Integer(i64::from(filter.markets.bits())));
        conditions.push(format!("(markets & {slot}) != 0"));
    }
    if !filter.statuses.is_empty() {
        let list: Vec<String> = filter.statuses.iter().map(|status| format!("'{}'", status.as_str())).collect();
        conditions.push(format!("status IN ({})", list.join(", ")));
    }
    if !filter.mendelow.is_empty() {
        let any: Vec<String> =
            filter.mendelow.iter().map(|quadrant| super::mendelow_condition(*quadrant, "")).collect();
        conditions.push(format!("({})", any.join(" OR ")));
    }
    if let Some(search) = filter.search.as_deref() {
        let slot = bind(&mut values, Value::Text(like_pattern(search)));
        conditions.push(format!("(name LIKE {slot} ESCAPE '\\' OR key LIKE {slot} ESCAPE '\\')"));
    }
    if filter.exclude_private {
        conditions.push("private = 0".to_owned());
    }
    (conditions, values)
}

fn list_stakeholders(connection: &Connection, query: &StakeholderQuery) -> rusqlite::Result<StakeholderPage> {
    let (mut conditions, mut values) = filter_clause(query);
    let total_count = if query.with_total {
        let where_clause =
            if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!("SELECT COUNT(*) FROM stakeholder {where_clause}");
        Some(connection.query_row(&sql, rusqlite::params_from_iter(values.iter()), |row| row.get::<_, i64>(0))? as u64)
    } else {
        None
    };
    let order = query.order;
    let column = order.field.field();
    let (compare, direction) = if order.descending { ("<", "DESC") } else { (">", "ASC") };
    if let Some(cursor) = &query.after {
        values.push(Value::Integer(cursor.id.0));
        let id_slot = values.len();
        conditions.push(if order.field == StakeholderSort::Id {
            format!("id {compare} ?{id_slot}")
        } else {
            let value = format!("(SELECT {column} FROM stakeholder WHERE id = ?{id_slot})");
            format!("({column} {compare} {value} OR ({column} = {value} AND id {compare} ?{id_slot}))")
        });
    }
    values.push(Value::Integer(query.first as i64 + 1));
    let limit_slot = values.len();
    let where_clause =
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let order_clause = if order.field == StakeholderSort::Id {
        format!("id {direction}")
    } else {
        format!("{column} {direction}, id {direction}")
    };
    let sql = format!(
        "SELECT {STAKEHOLDER_COLUMNS} FROM stakeholder {where_clause} ORDER BY {order_clause} LIMIT ?{limit_slot}"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let stakeholders: Vec<Stakeholder> = statement
        .query_map(rusqlite::params_from_iter(values.iter()), rows::stakeholder)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(StakeholderPage::of(query, stakeholders, total_count))
}

#[async_trait]
impl GraphStore for SqliteStore {
    async fn stakeholders_by_id(&self, ids: &[StakeholderId]) -> StoreResult<Vec<Stakeholder>> {
        let ids = ids.iter().map(|id| id.0).collect::<Vec<_>>();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!("SELECT {STAKEHOLDER_COLUMNS} FROM stakeholder WHERE id IN rarray(?1)"))?;
            let rows = statement.query_map([array_of(ids)], rows::stakeholder)?;
            rows.collect()
        })
        .await
    }

    async fn stakeholder_by_key(&self, key: &str) -> StoreResult<Option<Stakeholder>> {
        let key = key.to_owned();
        self.read(move |connection| {
            use rusqlite::OptionalExtension;
            connection
                .prepare_cached(&format!("SELECT {STAKEHOLDER_COLUMNS} FROM stakeholder WHERE key = ?1"))?
                .query_row([key], rows::stakeholder)
                .optional()
        })
        .await
    }

    async fn list_stakeholders(&self, query: &StakeholderQuery) -> StoreResult<StakeholderPage> {
        query.check_cursor(self).await?;
        let query = query.clone();
        self.read(move |connection| list_stakeholders(connection, &query)).await
    }

    async fn relationships_by_id(&self, ids: &[RelationshipId]) -> StoreResult<Vec<Relationship>> {
        let ids = ids.iter().map(|id| id.0).collect::<Vec<_>>();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!("SELECT {RELATIONSHIP_COLUMNS} FROM relationship WHERE id IN rarray(?1)"))?;
            let rows = statement.query_map([array_of(ids)], rows::relationship)?;
            rows.collect()
        })
        .await
    }

    async fn relationships_of(&self, ids: &[StakeholderId]) -> StoreResult<HashMap<StakeholderId, Vec<Relationship>>> {
        let wanted = ids.to_vec();
        self.read(move |connection| {
            let ids = array_of(wanted.iter().map(|id| id.0));
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {RELATIONSHIP_COLUMNS} FROM relationship WHERE from_id IN rarray(?1)
                 UNION
                 SELECT {RELATIONSHIP_COLUMNS} FROM relationship WHERE to_id IN rarray(?1)
                 ORDER BY id"
            ))?;
            let relationships =
                statement.query_map([ids], rows::relationship)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(super::by_end(&wanted, relationships))
        })
        .await
    }

    async fn interaction_pages(
        &self,
        relationships: &[RelationshipId],
        count: usize,
        cursor: Option<InteractionCursor>,
        direction: PageDirection,
        topics: TopicSet,
    ) -> StoreResult<HashMap<RelationshipId, InteractionPage>> {
        let wanted = relationships.to_vec();
        // The topics' stored names, from the closed vocabulary (never the caller's text).
        let about = match topics.is_empty() {
            true => String::new(),
            false => {
                let names: Vec<String> = topic_names(topics).iter().map(|name| format!("'{name}'")).collect();
                format!(" AND topic IN ({})", names.join(", "))
            }
        };
        // Read from the cursor outward: older rows newest first, or newer rows oldest first.
        let (compare, order) = match direction {
            PageDirection::Forward => ("<", "DESC"),
            PageDirection::Backward => (">", "ASC"),
        };
        self.read(move |connection| {
            let ids = array_of(wanted.iter().map(|id| id.0));
            let mut pages: HashMap<RelationshipId, InteractionPage> =
                wanted.iter().map(|id| (*id, InteractionPage::default())).collect();
            let mut counts = connection.prepare_cached(&format!(
                "SELECT relationship_id, COUNT(*) FROM interaction WHERE relationship_id IN rarray(?1){about}
                 GROUP BY relationship_id"
            ))?;
            for row in counts.query_map([ids.clone()], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))? {
                let (relationship, count) = row?;
                if let Some(page) = pages.get_mut(&RelationshipId(relationship)) {
                    page.total_count = count as u64;
                }
            }
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {INTERACTION_COLUMNS} FROM (
                    SELECT *, ROW_NUMBER() OVER (PARTITION BY relationship_id ORDER BY at {order}, id {order}) AS position
                    FROM interaction
                    WHERE relationship_id IN rarray(?1)
                      AND (?2 IS NULL OR at {compare} ?2 OR (at = ?2 AND id {compare} ?3)){about}
                 ) WHERE position <= ?4 ORDER BY relationship_id, at {order}, id {order}"
            ))?;
            let (cursor_at, cursor_id) = cursor.map_or((None, None), |cursor| (Some(cursor.at_ms), Some(cursor.id.0)));
            let rows = statement
                .query_map(rusqlite::params![ids, cursor_at, cursor_id, count as i64 + 1], rows::interaction)?;
            for interaction in rows {
                let interaction = interaction?;
                if let Some(page) = pages.get_mut(&interaction.relationship) {
                    if page.items.len() < count {
                        page.items.push(interaction);
                    } else {
                        page.has_more = true;
                    }
                }
            }
            if direction == PageDirection::Backward {
                pages.values_mut().for_each(|page| page.items.reverse());
            }
            Ok(pages)
        })
        .await
    }

    async fn interaction_histories(
        &self,
        relationships: &[RelationshipId],
    ) -> StoreResult<HashMap<RelationshipId, Vec<Interaction>>> {
        let wanted = relationships.to_vec();
        self.read(move |connection| {
            let mut histories: HashMap<RelationshipId, Vec<Interaction>> =
                wanted.iter().map(|id| (*id, Vec::new())).collect();
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {INTERACTION_COLUMNS} FROM interaction WHERE relationship_id IN rarray(?1)
                 ORDER BY relationship_id, at, id"
            ))?;
            for interaction in statement.query_map([array_of(wanted.iter().map(|id| id.0))], rows::interaction)? {
                let interaction = interaction?;
                if let Some(history) = histories.get_mut(&interaction.relationship) {
                    history.push(interaction);
                }
            }
            Ok(histories)
        })
        .await
    }

    async fn interactions_by_id(&self, ids: &[InteractionId]) -> StoreResult<Vec<Interaction>> {
        let ids = ids.iter().map(|id| id.0).collect::<Vec<_>>();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!("SELECT {INTERACTION_COLUMNS} FROM interaction WHERE id IN rarray(?1)"))?;
            let rows = statement.query_map([array_of(ids)], rows::interaction)?;
            rows.collect()
        })
        .await
    }

    async fn apply(&self, commands: Vec<Command>, at: DateTime<Utc>) -> StoreResult<Applied> {
        let (writer, model) = (self.writer.clone(), self.model.clone());
        tokio::task::spawn_blocking(move || {
            let mut connection = writer.lock().map_err(|_| StoreError::Internal("writer lock poisoned".into()))?;
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(internal)?;
            let applied = write::apply(&tx, &model, commands, at)?;
            tx.commit().map_err(internal)?;
            Ok(applied)
        })
        .await
        .map_err(internal)?
    }

    async fn programs(&self) -> StoreResult<Vec<Program>> {
        self.read(|connection| {
            let mut statement =
                connection.prepare_cached(&format!("SELECT {PROGRAM_COLUMNS} FROM program ORDER BY id"))?;
            let rows = statement.query_map([], rows::program)?;
            rows.collect()
        })
        .await
    }

    async fn changes_after(&self, after: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM change_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let rows = statement.query_map(rusqlite::params![after, limit as i64], rows::change_event)?;
            rows.collect()
        })
        .await
    }

    async fn changes_before(&self, before: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM change_log WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2"
            ))?;
            let rows = statement.query_map(rusqlite::params![before, limit as i64], rows::change_event)?;
            let mut latest: Vec<ChangeEvent> = rows.collect::<rusqlite::Result<_>>()?;
            latest.reverse();
            Ok(latest)
        })
        .await
    }

    async fn graph_scan(&self) -> StoreResult<GraphScan> {
        self.read(|connection| {
            // One read transaction: the rows and the sequence number are of the same committed state.
            connection.execute_batch("BEGIN")?;
            let scan = scan_graph(connection);
            connection.execute_batch("COMMIT")?;
            scan
        })
        .await
    }

    async fn counts(&self) -> StoreResult<GraphCounts> {
        self.read(|connection| {
            let count = |table: &str| -> rusqlite::Result<u64> {
                connection
                    .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get::<_, i64>(0))
                    .map(|n| n as u64)
            };
            Ok(GraphCounts {
                stakeholders: count("stakeholder")?,
                relationships: count("relationship")?,
                interactions: count("interaction")?,
                changes: count("change_log")?,
            })
        })
        .await
    }

    async fn public_counts(&self) -> StoreResult<GraphCounts> {
        // Everything minus what touches a private stakeholder: the subtrahends read through the indexes from the
        // (few) private stakeholders, not the whole graph.
        let all = self.counts().await?;
        self.read(move |connection| {
            let count = |sql: &str| -> rusqlite::Result<u64> {
                connection.query_row(sql, [], |row| row.get::<_, i64>(0)).map(|n| n as u64)
            };
            const HIDDEN_RELATIONSHIPS: &str = "SELECT id FROM relationship
                 WHERE from_id IN (SELECT id FROM stakeholder WHERE private = 1)
                 UNION SELECT id FROM relationship WHERE to_id IN (SELECT id FROM stakeholder WHERE private = 1)";
            let private = count("SELECT COUNT(*) FROM stakeholder WHERE private = 1")?;
            let hidden_relationships = count(&format!("SELECT COUNT(*) FROM ({HIDDEN_RELATIONSHIPS})"))?;
            let hidden_interactions =
                count(&format!("SELECT COUNT(*) FROM interaction WHERE relationship_id IN ({HIDDEN_RELATIONSHIPS})"))?;
            Ok(GraphCounts {
                stakeholders: all.stakeholders.saturating_sub(private),
                relationships: all.relationships.saturating_sub(hidden_relationships),
                interactions: all.interactions.saturating_sub(hidden_interactions),
                changes: all.changes,
            })
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|connection| connection.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn webhooks(&self) -> StoreResult<Vec<Webhook>> {
        let records = self
            .read(|connection| {
                let mut statement = connection.prepare_cached("SELECT record FROM webhook ORDER BY id")?;
                let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        records.iter().map(|record| StoredWebhook::read(record)).collect()
    }

    async fn create_webhook(&self, mut webhook: Webhook) -> StoreResult<Webhook> {
        self.write(move |tx| {
            tx.execute("INSERT INTO webhook (record) VALUES ('{}')", [])?;
            webhook.id = WebhookId(tx.last_insert_rowid());
            let record = StoredWebhook::write(&webhook).map_err(to_sqlite)?;
            tx.execute("UPDATE webhook SET record = ?1 WHERE id = ?2", params![record, webhook.id.0])?;
            Ok(webhook)
        })
        .await
    }

    async fn save_webhook(&self, webhook: &Webhook) -> StoreResult<bool> {
        let (id, record) = (webhook.id.0, StoredWebhook::write(webhook)?);
        self.write(move |tx| Ok(tx.execute("UPDATE webhook SET record = ?1 WHERE id = ?2", params![record, id])? == 1))
            .await
    }

    async fn delete_webhook(&self, id: WebhookId) -> StoreResult<bool> {
        self.write(move |tx| Ok(tx.execute("DELETE FROM webhook WHERE id = ?1", [id.0])? == 1)).await
    }

    async fn checkpoint(&self) -> StoreResult<()> {
        let (writer, path) = (self.writer.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let connection = writer.lock().map_err(|_| StoreError::Internal("writer lock poisoned".into()))?;
            // TRUNCATE waits for readers (the busy timeout), copies every committed page into the database file,
            // syncs it and empties the log; `busy` says a reader kept it from finishing.
            let busy: i64 =
                connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0)).map_err(internal)?;
            match busy {
                0 => Ok(()),
                _ => Err(StoreError::Unavailable(format!(
                    "could not fold the write-ahead log into {}: a reader held it past the busy timeout",
                    path.display()
                ))),
            }
        })
        .await
        .map_err(internal)?
    }
}
