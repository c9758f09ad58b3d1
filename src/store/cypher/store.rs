//! [`CypherStore`]: the [`GraphStore`] over a [`CypherConnection`].

use super::rows;
use super::statements as cypher;
use super::value::{map, Value};
pub use super::write::Counter;
use super::write::{Lookups, Prepared};
use super::{CypherConnection, Dialect, Rows, Statement};
use crate::domain::strength::StrengthModel;
use crate::domain::webhook::Webhook;
use crate::domain::{
    Applied, ChangeEvent, Command, Interaction, InteractionId, Program, Relationship, RelationshipId, RelationshipType,
    Stakeholder, StakeholderId, TopicSet, WebhookId,
};
use crate::store::{
    batch, topic_names, GraphCounts, GraphScan, GraphStore, InteractionCursor, InteractionPage, PageDirection,
    StakeholderPage, StakeholderQuery, StakeholderSort, StoreError, StoreResult, StoredWebhook,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// Rows per page of the projection scan: no response holds the whole graph.
const SCAN_PAGE: i64 = 10_000;

/// How often a batch is read and applied again when other writers keep committing first.
const WRITE_ATTEMPTS: usize = 20;
/// What a write statement may take beyond the store timeout, per record it writes: the timeout is there to fail
/// fast on a database that does not answer, not to refuse a large batch (`serve --demo` writes 3,000 stakeholders
/// in one statement; FalkorDB took about a millisecond per record on this machine).
const WRITE_ALLOWANCE_PER_ROW: Duration = Duration::from_millis(2);

/// A graph store on a Cypher engine. Cheap to clone.
#[derive(Clone)]
pub struct CypherStore {
    connection: Arc<dyn CypherConnection>,
    /// The model the stored decayed sums follow.
    model: Arc<StrengthModel>,
    /// How long one statement may take before the call fails as unavailable.
    timeout: Duration,
    /// Writes of this process go one at a time; other processes are caught by the write guard.
    writer: Arc<Mutex<()>>,
    /// Set once the schema and the counter exist (retried on every call until it succeeds).
    ready: Arc<OnceCell<()>>,
}

impl CypherStore {
    /// A store over `connection` keeping decayed sums for `model`; each statement may take up to `timeout`.
    /// Nothing is sent yet: the schema is created on first use, so the store can be built while the database
    /// is down.
    pub fn new(connection: Arc<dyn CypherConnection>, model: StrengthModel, timeout: Duration) -> Self {
        Self {
            connection,
            model: Arc::new(model),
            timeout,
            writer: Arc::new(Mutex::new(())),
            ready: Arc::new(OnceCell::new()),
        }
    }

    /// The last change-log sequence number and the last id of each record kind, as the counter node holds them.
    pub async fn position(&self) -> StoreResult<Counter> {
        self.ready().await?;
        self.counter().await
    }

    /// Writes records copied from `source` (named on the counter, so that a resumed copy can tell its own
    /// target) as they are (ids, sums and sequence numbers kept) in one guarded statement, moving the counter up
    /// to the largest of each. Writing the same records again leaves
    /// one of each. `relationships` holds those to write (`written`) and the relationships of `interactions`.
    pub async fn copy(
        &self,
        source: &str,
        stakeholders: Vec<Stakeholder>,
        relationships: Vec<Relationship>,
        written: &BTreeSet<RelationshipId>,
        interactions: Vec<Interaction>,
        events: Vec<ChangeEvent>,
    ) -> StoreResult<()> {
        self.ready().await?;
        let _writing = self.writer.lock().await;
        let mut counter = self.counter().await?;
        counter.migration = Some(source.to_owned());
        let prepared = Prepared::copy(counter, stakeholders, relationships, written, interactions, events);
        if self.write(&prepared).await?.is_empty() {
            return Err(StoreError::Unavailable(
                "another writer changed the graph during the copy; run it again".into(),
            ));
        }
        Ok(())
    }

    /// Writes programmes copied from `source` as they are (ids kept) in one guarded statement, like [`copy`]
    /// (writing the same ones again leaves one of each).
    ///
    /// [`copy`]: CypherStore::copy
    pub async fn copy_programs(&self, source: &str, programs: Vec<Program>) -> StoreResult<()> {
        self.ready().await?;
        let _writing = self.writer.lock().await;
        let mut counter = self.counter().await?;
        counter.migration = Some(source.to_owned());
        let prepared = Prepared::copy_programs(counter, programs);
        if self.write(&prepared).await?.is_empty() {
            return Err(StoreError::Unavailable(
                "another writer changed the graph during the copy; run it again".into(),
            ));
        }
        Ok(())
    }

    /// Where the store connects, for logs.
    pub fn describe(&self) -> String {
        self.connection.describe()
    }

    /// Runs one statement within the timeout, without preparing the schema first.
    async fn send(&self, statement: &Statement) -> StoreResult<Rows> {
        self.send_within(statement, self.timeout).await
    }

    /// Runs one statement within `timeout`.
    async fn send_within(&self, statement: &Statement, timeout: Duration) -> StoreResult<Rows> {
        let started = std::time::Instant::now();
        match tokio::time::timeout(timeout, self.connection.run(statement)).await {
            Ok(result) => {
                tracing::debug!(elapsed = ?started.elapsed(), statement = %statement.text.chars().take(80).collect::<String>(), "statement");
                result
            }
            Err(_) => Err(self.too_slow(timeout)),
        }
    }

    /// Runs the statement of a prepared write, allowing it [`WRITE_ALLOWANCE_PER_ROW`] per record beyond the
    /// timeout.
    async fn write(&self, prepared: &Prepared) -> StoreResult<Rows> {
        let allowance = WRITE_ALLOWANCE_PER_ROW.saturating_mul(u32::try_from(prepared.rows()).unwrap_or(u32::MAX));
        self.send_within(&prepared.statement()?, self.timeout.saturating_add(allowance)).await
    }

    /// Prepares the schema unless that has been done, waiting at most the timeout. The preparation runs as a
    /// task of its own, so a caller that stops waiting does not cancel it (recomputing the sums of a large graph
    /// may take longer than one request may wait).
    async fn ready(&self) -> StoreResult<()> {
        if self.ready.initialized() {
            return Ok(());
        }
        let store = self.clone();
        let preparing =
            tokio::spawn(async move { store.ready.get_or_try_init(|| store.prepare_schema()).await.map(|_| ()) });
        match tokio::time::timeout(self.timeout, preparing).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(StoreError::Internal(format!("preparing the graph database failed: {panic}"))),
            Err(_) => Err(self.too_slow(self.timeout)),
        }
    }

    fn too_slow(&self, waited: Duration) -> StoreError {
        StoreError::Unavailable(format!(
            "{} did not answer within {:.1} s (the store timeout)",
            self.connection.describe(),
            waited.as_secs_f64()
        ))
    }

    /// Runs one statement once the schema is in place.
    async fn run(&self, statement: Statement) -> StoreResult<Rows> {
        self.ready().await?;
        self.send(&statement).await
    }

    /// Creates the constraints, indexes and counter node when missing (idempotent).
    async fn prepare_schema(&self) -> StoreResult<()> {
        let ddl = match self.connection.dialect() {
            Dialect::Neo4j => &*cypher::NEO4J_SCHEMA,
            Dialect::FalkorDb => &*cypher::FALKORDB_SCHEMA,
        };
        for text in ddl {
            match self.send(&Statement::new(text.clone(), &[])).await {
                Ok(_) => {}
                // FalkorDB has no `IF NOT EXISTS`: an index that exists is the state wanted.
                Err(StoreError::Internal(message))
                    if self.connection.dialect() == Dialect::FalkorDb && message.contains("already indexed") => {}
                Err(error) => return Err(error),
            }
        }
        let fingerprint = self.model.sums_fingerprint();
        let rows = self
            .send(
                &Statement::new(cypher::INIT_COUNTER, cypher::INIT_COUNTER_COLUMNS)
                    .param("sums_model", fingerprint.as_str()),
            )
            .await?;
        let stored = rows.first().map(|row| row[0].opt_text().map(|text| text.map(str::to_owned))).transpose()?;
        if stored.flatten().as_deref() != Some(fingerprint.as_str()) {
            self.recompute_sums(&fingerprint).await?;
        }
        tracing::info!(database = %self.connection.describe(), "graph database schema ready");
        Ok(())
    }

    /// Recomputes every relationship's decayed sums from its interactions (after a change of half-life or
    /// channel weights), one page of relationships per guarded write.
    async fn recompute_sums(&self, fingerprint: &str) -> StoreResult<()> {
        let _writing = self.writer.lock().await;
        let mut relationships = 0;
        for rel_type in RelationshipType::ALL {
            let mut after = 0;
            loop {
                // The counter first: the guard then proves that nothing read below changed before the write.
                let counter = self.counter().await?;
                let page = self.scan_relationships(*rel_type, after).await?;
                let Some(last) = page.last() else { break };
                after = last.id.0;
                let ids: Vec<RelationshipId> = page.iter().map(|relationship| relationship.id).collect();
                let histories = self.histories(&ids).await?;
                let mut prepared = Prepared::new(counter, &Lookups::default(), Vec::new(), Vec::new(), page.clone());
                for mut relationship in page {
                    relationship.sums = Default::default();
                    for interaction in histories.get(&relationship.id).into_iter().flatten() {
                        relationship.sums.add(
                            &self.model,
                            interaction.at,
                            interaction.channel,
                            interaction.direction,
                            interaction.sentiment.get(),
                        );
                    }
                    batch::BatchTarget::put_sums(&mut prepared, relationship.id, &relationship.sums)?;
                    relationships += 1;
                }
                if self.write(&prepared).await?.is_empty() {
                    return Err(StoreError::Unavailable(
                        "another writer changed the graph while its decayed sums were recomputed; start again".into(),
                    ));
                }
            }
        }
        self.send(
            &Statement::new(cypher::SET_SUMS_MODEL, cypher::WRITE_COLUMNS).param("sums_model", fingerprint.to_owned()),
        )
        .await?;
        if relationships > 0 {
            tracing::info!(relationships, "recomputed decayed sums for a new half-life or channel weights");
        }
        Ok(())
    }

    async fn counter(&self) -> StoreResult<Counter> {
        let rows = self.send(&Statement::new(cypher::READ_COUNTER, cypher::COUNTER_COLUMNS)).await?;
        rows.first()
            .map(|row| Counter::from_row(row))
            .unwrap_or_else(|| Err(StoreError::Internal("the counter node is missing".into())))
    }

    async fn relationships_by_ids(&self, ids: &[RelationshipId]) -> StoreResult<Vec<Relationship>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let statement =
            Statement::new(cypher::RELATIONSHIPS_BY_ID.as_str(), cypher::RELATIONSHIP_COLUMNS).param("ids", ids);
        self.send(&statement).await?.iter().map(|row| rows::relationship(row)).collect()
    }

    /// Every row of `text` (a statement paged by `$after`, an id, and `$limit`), [`SCAN_PAGE`] rows per
    /// statement, mapped by `row`; `id` is where the next page starts after an item.
    async fn scan_pages<T>(
        &self,
        text: &'static str,
        columns: &'static [&'static str],
        row: impl Fn(&[Value]) -> StoreResult<T>,
        id: impl Fn(&T) -> i64,
    ) -> StoreResult<Vec<T>> {
        let mut items: Vec<T> = Vec::new();
        loop {
            let after = items.last().map_or(0, &id);
            let statement = Statement::new(text, columns).param("after", after).param("limit", SCAN_PAGE);
            let page = self.run(statement).await?;
            for found in &page {
                items.push(row(found)?);
            }
            if page.len() as i64 != SCAN_PAGE {
                return Ok(items);
            }
        }
    }

    async fn scan_relationships(&self, rel_type: RelationshipType, after: i64) -> StoreResult<Vec<Relationship>> {
        let statement = Statement::new(cypher::scan_relationships(rel_type), cypher::RELATIONSHIP_COLUMNS)
            .param("after", after)
            .param("limit", SCAN_PAGE);
        self.send(&statement).await?.iter().map(|row| rows::relationship(row)).collect()
    }

    async fn histories(&self, ids: &[RelationshipId]) -> StoreResult<HashMap<RelationshipId, Vec<Interaction>>> {
        let mut histories: HashMap<RelationshipId, Vec<Interaction>> = ids.iter().map(|id| (*id, Vec::new())).collect();
        if ids.is_empty() {
            return Ok(histories);
        }
        let statement = Statement::new(cypher::INTERACTION_HISTORIES.as_str(), cypher::INTERACTION_COLUMNS)
            .param("ids", ids.iter().map(|id| id.0).collect::<Vec<_>>());
        for row in self.send(&statement).await? {
            let interaction = rows::interaction(&row)?;
            if let Some(history) = histories.get_mut(&interaction.relationship) {
                history.push(interaction);
            }
        }
        for history in histories.values_mut() {
            history.sort_by_key(|interaction| (interaction.at, interaction.id));
        }
        Ok(histories)
    }

    /// Reads what `commands` need at the current counter and applies them in memory.
    async fn prepare(&self, commands: &[Command], at: DateTime<Utc>) -> StoreResult<(Prepared, Applied)> {
        // The counter first: the guard then proves that nothing read below changed before the write.
        let counter = self.counter().await?;
        let mut lookups = Lookups::of(commands);
        let ids: Vec<RelationshipId> = lookups.relationships.iter().copied().collect();
        let mut relationships = self.relationships_by_ids(&ids).await?;
        for relationship in &relationships {
            lookups.stakeholders.extend([relationship.from, relationship.to]);
        }
        let mut key_owners = Vec::new();
        if !lookups.keys.is_empty() {
            let keys: Vec<String> = lookups.keys.iter().cloned().collect();
            let statement = Statement::new(cypher::KEY_OWNERS, cypher::KEY_OWNER_COLUMNS).param("keys", keys);
            for row in self.run(statement).await? {
                key_owners.push((row[0].text()?.to_owned(), StakeholderId(row[1].int()?)));
            }
        }
        // An upsert by key changes the key's owner, and a relationship by key joins the keys' owners: read them
        // with the rest (a key no one had yet belongs to a stakeholder the batch creates).
        lookups.stakeholders.extend(key_owners.iter().map(|(_, id)| *id));
        let owner: std::collections::HashMap<&str, StakeholderId> =
            key_owners.iter().map(|(key, id)| (key.as_str(), *id)).collect();
        for (from, to, rel_type) in &lookups.by_key {
            if let (Some(from), Some(to)) = (owner.get(from.as_str()), owner.get(to.as_str())) {
                lookups.ends.insert((*from, *to, *rel_type));
            }
        }
        if !lookups.ends.is_empty() {
            let ends: Vec<Value> = lookups
                .ends
                .iter()
                .map(|(from, to, rel_type)| {
                    map([("from", from.0.into()), ("to", to.0.into()), ("type", rel_type.as_str().into())])
                })
                .collect();
            let statement = Statement::new(cypher::RELATIONSHIPS_BETWEEN.as_str(), cypher::RELATIONSHIP_COLUMNS)
                .param("ends", Value::List(ends));
            for row in self.run(statement).await? {
                relationships.push(rows::relationship(&row)?);
            }
        }
        let stakeholder_ids: Vec<StakeholderId> = lookups.stakeholders.iter().copied().collect();
        let stakeholders = self.stakeholders_by_id(&stakeholder_ids).await?;
        let mut prepared = Prepared::new(counter, &lookups, stakeholders, key_owners, relationships);
        if lookups.programs {
            prepared = prepared.with_programs(self.programs().await?);
        }
        if !lookups.interaction_keys.is_empty() {
            let keys: Vec<String> = lookups.interaction_keys.iter().cloned().collect();
            let statement =
                Statement::new(cypher::INTERACTIONS_BY_KEY.as_str(), cypher::INTERACTION_COLUMNS).param("keys", keys);
            let found =
                self.run(statement).await?.iter().map(|row| rows::interaction(row)).collect::<StoreResult<_>>()?;
            prepared = prepared.with_interactions(&lookups, found);
        }
        let applied = batch::apply(&mut prepared, &self.model, commands.to_vec(), at)?;
        Ok((prepared, applied))
    }
}

/// The conditions of a listing (without its cursor) and their parameters.
fn listing_filter(query: &StakeholderQuery) -> (Vec<String>, Vec<(&'static str, Value)>) {
    let filter = &query.filter;
    let mut conditions = Vec::new();
    let mut params: Vec<(&'static str, Value)> = Vec::new();
    if !filter.include_archived {
        conditions.push("s.archived_at IS NULL".to_owned());
    }
    if !filter.kinds.is_empty() {
        conditions.push("s.kind IN $kinds".to_owned());
        params.push(("kinds", filter.kinds.iter().map(|kind| kind.as_str()).collect::<Vec<_>>().into()));
    }
    if !filter.markets.is_empty() {
        conditions.push("any(market IN s.market_names WHERE market IN $markets)".to_owned());
        params.push(("markets", filter.markets.iter().map(|market| market.as_str()).collect::<Vec<_>>().into()));
    }
    if !filter.statuses.is_empty() {
        conditions.push("s.status IN $statuses".to_owned());
        params.push(("statuses", filter.statuses.iter().map(|status| status.as_str()).collect::<Vec<_>>().into()));
    }
    if !filter.mendelow.is_empty() {
        let any: Vec<String> =
            filter.mendelow.iter().map(|quadrant| crate::store::mendelow_condition(*quadrant, "s.")).collect();
        conditions.push(format!("({})", any.join(" OR ")));
    }
    if let Some(search) = filter.search.as_deref() {
        conditions.push("(toLower(s.name) CONTAINS $search OR toLower(s.key) CONTAINS $search)".to_owned());
        params.push(("search", search.to_lowercase().into()));
    }
    if filter.exclude_private {
        conditions.push("s.private = false".to_owned());
    }
    (conditions, params)
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

#[async_trait]
impl GraphStore for CypherStore {
    async fn stakeholders_by_id(&self, ids: &[StakeholderId]) -> StoreResult<Vec<Stakeholder>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let statement = Statement::new(cypher::STAKEHOLDERS_BY_ID, cypher::RECORD_COLUMNS).param("ids", ids);
        self.run(statement).await?.iter().map(|row| rows::stakeholder(row)).collect()
    }

    async fn stakeholder_by_key(&self, key: &str) -> StoreResult<Option<Stakeholder>> {
        let statement = Statement::new(cypher::STAKEHOLDER_BY_KEY, cypher::RECORD_COLUMNS).param("key", key);
        self.run(statement).await?.first().map(|row| rows::stakeholder(row)).transpose()
    }

    async fn list_stakeholders(&self, query: &StakeholderQuery) -> StoreResult<StakeholderPage> {
        query.check_cursor(self).await?;
        let (mut conditions, params) = listing_filter(query);
        let total_count = if query.with_total {
            let text = format!("MATCH (s:Stakeholder) {} RETURN count(s) AS count", where_clause(&conditions));
            let mut statement = Statement::new(text, cypher::COUNT_COLUMNS);
            statement.params.extend(params.iter().cloned());
            let rows = self.run(statement).await?;
            Some(rows.first().map(|row| row[0].int()).transpose()?.unwrap_or(0) as u64)
        } else {
            None
        };
        let order = query.order;
        let property = order.field.field();
        let (compare, direction) = if order.descending { ("<", "DESC") } else { (">", "ASC") };
        let mut text = String::new();
        let mut statement_params = params;
        if let Some(cursor) = &query.after {
            // The cursor's sort value is read again from the store: a cursor never carries it.
            text.push_str("MATCH (c:Stakeholder) WHERE c.id = $after ");
            statement_params.push(("after", cursor.id.0.into()));
            conditions.push(if order.field == StakeholderSort::Id {
                format!("s.id {compare} c.id")
            } else {
                format!(
                    "(s.{property} {compare} c.{property} OR (s.{property} = c.{property} AND s.id {compare} c.id))"
                )
            });
        }
        let order_clause = if order.field == StakeholderSort::Id {
            format!("s.id {direction}")
        } else {
            format!("s.{property} {direction}, s.id {direction}")
        };
        text.push_str(&format!(
            "MATCH (s:Stakeholder) {} WITH s ORDER BY {order_clause} LIMIT $limit RETURN s.record AS record",
            where_clause(&conditions)
        ));
        statement_params.push(("limit", (query.first as i64 + 1).into()));
        let mut statement = Statement::new(text, cypher::RECORD_COLUMNS);
        statement.params = statement_params;
        let stakeholders: Vec<Stakeholder> =
            self.run(statement).await?.iter().map(|row| rows::stakeholder(row)).collect::<StoreResult<_>>()?;
        Ok(StakeholderPage::of(query, stakeholders, total_count))
    }

    async fn relationships_by_id(&self, ids: &[RelationshipId]) -> StoreResult<Vec<Relationship>> {
        self.ready().await?;
        self.relationships_by_ids(ids).await
    }

    async fn relationships_of(&self, ids: &[StakeholderId]) -> StoreResult<HashMap<StakeholderId, Vec<Relationship>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let statement = Statement::new(cypher::RELATIONSHIPS_OF.as_str(), cypher::RELATIONSHIP_COLUMNS)
            .param("ids", ids.iter().map(|id| id.0).collect::<Vec<_>>());
        let mut relationships: Vec<Relationship> =
            self.run(statement).await?.iter().map(|row| rows::relationship(row)).collect::<StoreResult<_>>()?;
        relationships.sort_by_key(|relationship| relationship.id);
        relationships.dedup_by_key(|relationship| relationship.id);
        Ok(crate::store::by_end(ids, relationships))
    }

    async fn interaction_pages(
        &self,
        relationships: &[RelationshipId],
        count: usize,
        cursor: Option<InteractionCursor>,
        direction: PageDirection,
        topics: TopicSet,
    ) -> StoreResult<HashMap<RelationshipId, InteractionPage>> {
        let mut pages: HashMap<RelationshipId, InteractionPage> =
            relationships.iter().map(|id| (*id, InteractionPage::default())).collect();
        if relationships.is_empty() {
            return Ok(pages);
        }
        let ids: Vec<i64> = relationships.iter().map(|id| id.0).collect();
        let topics: Vec<String> = topic_names(topics).into_iter().map(str::to_owned).collect();
        let counts = Statement::new(cypher::INTERACTION_COUNTS, cypher::INTERACTION_COUNT_COLUMNS)
            .param("ids", ids.clone())
            .param("topics", topics.clone());
        for row in self.run(counts).await? {
            if let Some(page) = pages.get_mut(&RelationshipId(row[0].int()?)) {
                page.total_count = row[1].int()? as u64;
            }
        }
        let text = match direction {
            PageDirection::Forward => cypher::INTERACTION_PAGES.as_str(),
            PageDirection::Backward => cypher::INTERACTION_PAGES_BACKWARD.as_str(),
        };
        let (cursor_at, cursor_id) = cursor.map_or((None, None), |cursor| (Some(cursor.at_ms), Some(cursor.id.0)));
        let statement = Statement::new(text, cypher::INTERACTION_COLUMNS)
            .param("ids", ids)
            .param("cursor_at", cursor_at)
            .param("cursor_id", cursor_id)
            .param("take", count as i64 + 1)
            .param("topics", topics);
        let mut nearest: Vec<Interaction> =
            self.run(statement).await?.iter().map(|row| rows::interaction(row)).collect::<StoreResult<_>>()?;
        // Nearest the cursor first, the one past the page last.
        match direction {
            PageDirection::Forward => {
                nearest.sort_by_key(|interaction| std::cmp::Reverse((interaction.at, interaction.id)))
            }
            PageDirection::Backward => nearest.sort_by_key(|interaction| (interaction.at, interaction.id)),
        }
        for interaction in nearest {
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
    }

    async fn interaction_histories(
        &self,
        relationships: &[RelationshipId],
    ) -> StoreResult<HashMap<RelationshipId, Vec<Interaction>>> {
        self.ready().await?;
        self.histories(relationships).await
    }

    async fn interactions_by_id(&self, ids: &[InteractionId]) -> StoreResult<Vec<Interaction>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let statement = Statement::new(cypher::INTERACTIONS_BY_ID.as_str(), cypher::INTERACTION_COLUMNS)
            .param("ids", ids.iter().map(|id| id.0).collect::<Vec<_>>());
        self.run(statement).await?.iter().map(|row| rows::interaction(row)).collect()
    }

    async fn apply(&self, commands: Vec<Command>, at: DateTime<Utc>) -> StoreResult<Applied> {
        self.ready().await?;
        let _writing =
            tokio::time::timeout(self.timeout, self.writer.lock()).await.map_err(|_| self.too_slow(self.timeout))?;
        for _ in 0..WRITE_ATTEMPTS {
            let (prepared, applied) = self.prepare(&commands, at).await?;
            if prepared.is_empty() {
                return Ok(applied);
            }
            if !self.write(&prepared).await?.is_empty() {
                return Ok(applied);
            }
            tracing::debug!("another writer committed first; reading the batch's rows again");
        }
        Err(StoreError::Unavailable(format!(
            "other writers committed first {WRITE_ATTEMPTS} times in a row; try the write again"
        )))
    }

    async fn programs(&self) -> StoreResult<Vec<Program>> {
        let statement = Statement::new(cypher::PROGRAMS, cypher::PROGRAM_COLUMNS);
        self.run(statement).await?.iter().map(|row| rows::program(row)).collect()
    }

    async fn changes_after(&self, after: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        let statement = Statement::new(cypher::CHANGES_AFTER, cypher::CHANGE_COLUMNS)
            .param("after", after)
            .param("limit", limit as i64);
        self.run(statement).await?.iter().map(|row| rows::change_event(row)).collect()
    }

    async fn changes_before(&self, before: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        let statement = Statement::new(cypher::CHANGES_BEFORE, cypher::CHANGE_COLUMNS)
            .param("before", before)
            .param("limit", limit as i64);
        let mut latest: Vec<ChangeEvent> =
            self.run(statement).await?.iter().map(|row| rows::change_event(row)).collect::<StoreResult<_>>()?;
        latest.reverse();
        Ok(latest)
    }

    /// Pages through the graph ([`SCAN_PAGE`] rows per statement). The position is read first; a Cypher engine
    /// has no snapshot reads across statements, so the rows may also hold changes committed during the scan,
    /// which the engine applies again from the log (re-reading current rows, so applying twice is harmless).
    async fn graph_scan(&self) -> StoreResult<GraphScan> {
        self.ready().await?;
        let seq = self.counter().await?.seq;
        let stakeholders = self
            .scan_pages(cypher::SCAN_STAKEHOLDERS, cypher::SCAN_STAKEHOLDER_COLUMNS, rows::node_row, |row| row.id.0)
            .await?;
        let archived = self
            .scan_pages(
                cypher::SCAN_ARCHIVED,
                cypher::SCAN_ARCHIVED_COLUMNS,
                |row| Ok(StakeholderId(row[0].int()?)),
                |id| id.0,
            )
            .await?;
        let mut relationships = Vec::new();
        for rel_type in RelationshipType::ALL {
            let mut after = 0;
            loop {
                let page = self.scan_relationships(*rel_type, after).await?;
                let full = page.len() as i64 == SCAN_PAGE;
                after = page.last().map_or(after, |relationship| relationship.id.0);
                relationships.extend(page);
                if !full {
                    break;
                }
            }
        }
        relationships.sort_by_key(|relationship| relationship.id);
        Ok(GraphScan { seq, stakeholders, relationships, archived })
    }

    async fn counts(&self) -> StoreResult<GraphCounts> {
        let mut counts = [0u64; 4];
        for (count, text) in counts.iter_mut().zip(cypher::COUNTS) {
            let rows = self.run(Statement::new(text, cypher::COUNT_COLUMNS)).await?;
            *count = rows.first().map(|row| row[0].int()).transpose()?.unwrap_or(0) as u64;
        }
        let [stakeholders, relationships, interactions, changes] = counts;
        Ok(GraphCounts { stakeholders, relationships, interactions, changes })
    }

    async fn public_counts(&self) -> StoreResult<GraphCounts> {
        let all = self.counts().await?;
        let mut hidden = [0u64; 3];
        for (count, text) in hidden.iter_mut().zip(cypher::PRIVATE_COUNTS) {
            let rows = self.run(Statement::new(text, cypher::COUNT_COLUMNS)).await?;
            *count = rows.first().map(|row| row[0].int()).transpose()?.unwrap_or(0) as u64;
        }
        let [stakeholders, relationships, interactions] = hidden;
        Ok(GraphCounts {
            stakeholders: all.stakeholders.saturating_sub(stakeholders),
            relationships: all.relationships.saturating_sub(relationships),
            interactions: all.interactions.saturating_sub(interactions),
            changes: all.changes,
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(Statement::new(cypher::PING, cypher::PING_COLUMNS)).await.map(|_| ())
    }

    /// Nothing to do: the server keeps its own files.
    async fn webhooks(&self) -> StoreResult<Vec<Webhook>> {
        let rows = self.run(Statement::new(cypher::WEBHOOKS, cypher::WEBHOOK_COLUMNS)).await?;
        rows.iter()
            .map(|row| {
                let mut webhook = StoredWebhook::read(row[1].text()?)?;
                webhook.id = WebhookId(row[0].int()?);
                Ok(webhook)
            })
            .collect()
    }

    async fn create_webhook(&self, mut webhook: Webhook) -> StoreResult<Webhook> {
        let statement = Statement::new(cypher::CREATE_WEBHOOK, cypher::WEBHOOK_ID_COLUMNS)
            .param("record", StoredWebhook::write(&webhook)?);
        let rows = self.run(statement).await?;
        let id = rows.first().ok_or_else(|| StoreError::Internal("the counter node is missing".into()))?[0].int()?;
        webhook.id = WebhookId(id);
        // The record names its id too.
        self.save_webhook(&webhook).await?;
        Ok(webhook)
    }

    async fn save_webhook(&self, webhook: &Webhook) -> StoreResult<bool> {
        let statement = Statement::new(cypher::SAVE_WEBHOOK, cypher::WEBHOOK_ID_COLUMNS)
            .param("id", webhook.id.0)
            .param("record", StoredWebhook::write(webhook)?);
        Ok(!self.run(statement).await?.is_empty())
    }

    async fn delete_webhook(&self, id: WebhookId) -> StoreResult<bool> {
        let statement = Statement::new(cypher::DELETE_WEBHOOK, cypher::WEBHOOK_ID_COLUMNS).param("id", id.0);
        Ok(!self.run(statement).await?.is_empty())
    }

    async fn checkpoint(&self) -> StoreResult<()> {
        Ok(())
    }
}
