//! Every statement the Cypher backend sends, in one place. All of them are openCypher that both Neo4j 5 and
//! FalkorDB 4 accept, except the schema DDL in [`NEO4J_SCHEMA`] and [`FALKORDB_SCHEMA`]: Neo4j spells uniqueness
//! constraints `CREATE CONSTRAINT … REQUIRE … IS UNIQUE` and takes `IF NOT EXISTS`, FalkorDB has neither (its
//! constraints are a separate command, and its `CREATE INDEX` fails when the index exists, which the backend
//! tolerates).
//!
//! Labels and relationship types cannot be parameters in Cypher, so the statements that need one per kind or per
//! relationship type are generated once from the domain's vocabularies; values are always `$parameters`.

use crate::domain::{RelationshipType, StakeholderKind};
use std::sync::LazyLock;

/// The label a stakeholder of `kind` carries besides `:Stakeholder`.
pub fn kind_label(kind: StakeholderKind) -> &'static str {
    match kind {
        StakeholderKind::Customer => "Customer",
        StakeholderKind::Supplier => "Supplier",
        StakeholderKind::Distributor => "Distributor",
        StakeholderKind::Employee => "Employee",
        StakeholderKind::Media => "Media",
        StakeholderKind::Government => "Government",
    }
}

/// The write statement's parameter holding the stakeholders of `kind` to write.
pub fn stakeholders_param(kind: StakeholderKind) -> &'static str {
    match kind {
        StakeholderKind::Customer => "stakeholders_customer",
        StakeholderKind::Supplier => "stakeholders_supplier",
        StakeholderKind::Distributor => "stakeholders_distributor",
        StakeholderKind::Employee => "stakeholders_employee",
        StakeholderKind::Media => "stakeholders_media",
        StakeholderKind::Government => "stakeholders_government",
    }
}

/// The write statement's parameter holding the relationships of `rel_type` to write.
pub fn relationships_param(rel_type: RelationshipType) -> &'static str {
    match rel_type {
        RelationshipType::BuysFrom => "relationships_buys_from",
        RelationshipType::Supplies => "relationships_supplies",
        RelationshipType::DistributesFor => "relationships_distributes_for",
        RelationshipType::Employs => "relationships_employs",
        RelationshipType::Manages => "relationships_manages",
        RelationshipType::Refers => "relationships_refers",
        RelationshipType::Covers => "relationships_covers",
        RelationshipType::Regulates => "relationships_regulates",
        RelationshipType::PartnersWith => "relationships_partners_with",
        RelationshipType::Knows => "relationships_knows",
        RelationshipType::Influences => "relationships_influences",
    }
}

/// Schema DDL only Neo4j accepts: uniqueness constraints (each backed by an index) and the other indexes,
/// all idempotent.
pub static NEO4J_SCHEMA: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut statements: Vec<String> = [
        "CREATE CONSTRAINT stakeholder_id IF NOT EXISTS FOR (s:Stakeholder) REQUIRE s.id IS UNIQUE",
        "CREATE CONSTRAINT stakeholder_key IF NOT EXISTS FOR (s:Stakeholder) REQUIRE s.key IS UNIQUE",
        "CREATE CONSTRAINT interaction_id IF NOT EXISTS FOR (i:Interaction) REQUIRE i.id IS UNIQUE",
        "CREATE CONSTRAINT interaction_key IF NOT EXISTS FOR (i:Interaction) REQUIRE i.key IS UNIQUE",
        "CREATE CONSTRAINT change_event_seq IF NOT EXISTS FOR (e:ChangeEvent) REQUIRE e.seq IS UNIQUE",
        "CREATE CONSTRAINT counter_name IF NOT EXISTS FOR (c:StakegraphCounter) REQUIRE c.name IS UNIQUE",
        "CREATE CONSTRAINT program_id IF NOT EXISTS FOR (p:Program) REQUIRE p.id IS UNIQUE",
        "CREATE CONSTRAINT program_key IF NOT EXISTS FOR (p:Program) REQUIRE p.key IS UNIQUE",
        "CREATE INDEX interaction_relationship IF NOT EXISTS FOR (i:Interaction) ON (i.relationship_id)",
    ]
    .map(str::to_owned)
    .into();
    for rel_type in RelationshipType::ALL {
        let name = rel_type.as_str();
        statements.push(format!(
            "CREATE INDEX rel_{}_id IF NOT EXISTS FOR ()-[r:{name}]-() ON (r.id)",
            name.to_ascii_lowercase()
        ));
    }
    statements
});

/// Schema DDL for FalkorDB: exact-match indexes (it has no `IF NOT EXISTS`; an existing index is an error the
/// backend ignores). Uniqueness is kept by the write guard instead of constraints.
pub static FALKORDB_SCHEMA: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut statements: Vec<String> = [
        "CREATE INDEX FOR (s:Stakeholder) ON (s.id)",
        "CREATE INDEX FOR (s:Stakeholder) ON (s.key)",
        "CREATE INDEX FOR (i:Interaction) ON (i.id)",
        "CREATE INDEX FOR (i:Interaction) ON (i.relationship_id)",
        "CREATE INDEX FOR (i:Interaction) ON (i.key)",
        "CREATE INDEX FOR (e:ChangeEvent) ON (e.seq)",
        "CREATE INDEX FOR (c:StakegraphCounter) ON (c.name)",
        "CREATE INDEX FOR (p:Program) ON (p.id)",
    ]
    .map(str::to_owned)
    .into();
    for rel_type in RelationshipType::ALL {
        statements.push(format!("CREATE INDEX FOR ()-[r:{}]-() ON (r.id)", rel_type.as_str()));
    }
    statements
});

/// Creates the counter node when it is missing; returns the model fingerprint the stored sums follow.
pub const INIT_COUNTER: &str = "MERGE (c:StakegraphCounter {name: 'stakegraph'})
     ON CREATE SET c.version = 0, c.seq = 0, c.stakeholder = 0, c.relationship = 0, c.interaction = 0,
                   c.sums_model = $sums_model
     RETURN c.sums_model AS sums_model";
/// Columns of [`INIT_COUNTER`].
pub const INIT_COUNTER_COLUMNS: &[&str] = &["sums_model"];

/// Records the model fingerprint the stored sums follow.
pub const SET_SUMS_MODEL: &str =
    "MATCH (c:StakegraphCounter {name: 'stakegraph'}) SET c.sums_model = $sums_model RETURN c.seq AS seq";

/// The counter's version (bumped by every write), the last change-log sequence number, the last id of each record
/// kind, and the source of a copy made into this graph.
pub const READ_COUNTER: &str = "MATCH (c:StakegraphCounter {name: 'stakegraph'})
     RETURN coalesce(c.version, 0) AS version, c.seq AS seq, c.stakeholder AS stakeholder,
            c.relationship AS relationship, c.interaction AS interaction, c.migration AS migration";
/// Columns of [`READ_COUNTER`].
pub const COUNTER_COLUMNS: &[&str] = &["version", "seq", "stakeholder", "relationship", "interaction", "migration"];

/// Stakeholders' records by id (`$ids`).
pub const STAKEHOLDERS_BY_ID: &str = "MATCH (s:Stakeholder) WHERE s.id IN $ids RETURN s.record AS record";
/// The stakeholder record with key `$key`.
pub const STAKEHOLDER_BY_KEY: &str = "MATCH (s:Stakeholder) WHERE s.key = $key RETURN s.record AS record";
/// Columns of the stakeholder-record statements.
pub const RECORD_COLUMNS: &[&str] = &["record"];

/// The stakeholders using any of the keys `$keys`.
pub const KEY_OWNERS: &str = "MATCH (s:Stakeholder) WHERE s.key IN $keys RETURN s.key AS key, s.id AS id";
/// Columns of [`KEY_OWNERS`].
pub const KEY_OWNER_COLUMNS: &[&str] = &["key", "id"];

/// What the relationship statements return about `(a)-[r]->(b)`.
const RELATIONSHIP_RETURN: &str = "RETURN r.id AS id, a.id AS from_id, b.id AS to_id, type(r) AS type,
     r.level AS level, r.bonds AS bonds, r.trust AS trust, r.commitment AS commitment, r.since AS since,
     r.basis AS basis, r.created_at AS created_at, r.updated_at AS updated_at, r.sum_weighted AS sum_weighted,
     r.sum_inbound AS sum_inbound, r.sum_outbound AS sum_outbound, r.sum_sentiment AS sum_sentiment,
     r.last_at AS last_at";
/// Columns of the relationship statements.
pub const RELATIONSHIP_COLUMNS: &[&str] = &[
    "id",
    "from_id",
    "to_id",
    "type",
    "level",
    "bonds",
    "trust",
    "commitment",
    "since",
    "basis",
    "created_at",
    "updated_at",
    "sum_weighted",
    "sum_inbound",
    "sum_outbound",
    "sum_sentiment",
    "last_at",
];

/// Relationships by id (`$ids`): one indexed lookup per relationship type, since an index covers one type. The
/// ends carry no label: with `:Stakeholder` on them FalkorDB scans every stakeholder and looks the ids up in the
/// index once for each (6.3 s instead of 10 ms for 2,700 ids on the 3,000-stakeholder demo graph); every end of a
/// relationship is a stakeholder anyway.
pub static RELATIONSHIPS_BY_ID: LazyLock<String> = LazyLock::new(|| {
    RelationshipType::ALL
        .iter()
        .map(|rel_type| format!("MATCH (a)-[r:{}]->(b) WHERE r.id IN $ids {RELATIONSHIP_RETURN}", rel_type.as_str()))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
});

/// Relationships by ends and type (`$ends`: a list of `{from, to, type}`).
pub static RELATIONSHIPS_BETWEEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UNWIND $ends AS e MATCH (a:Stakeholder)-[r]->(b:Stakeholder)
         WHERE a.id = e.from AND b.id = e.to AND type(r) = e.type {RELATIONSHIP_RETURN}"
    )
});

/// Every relationship starting or ending at one of `$ids`.
pub static RELATIONSHIPS_OF: LazyLock<String> = LazyLock::new(|| {
    format!(
        "MATCH (a:Stakeholder)-[r]->(b:Stakeholder) WHERE a.id IN $ids {RELATIONSHIP_RETURN}
         UNION MATCH (a:Stakeholder)-[r]->(b:Stakeholder) WHERE b.id IN $ids {RELATIONSHIP_RETURN}"
    )
});

/// One page (`$limit` rows after id `$after`, in id order) of the relationships of one type, for the scan (the ends
/// unlabelled, as in [`RELATIONSHIPS_BY_ID`], so that the relationship index is all FalkorDB reads).
pub fn scan_relationships(rel_type: RelationshipType) -> String {
    format!(
        "MATCH (a)-[r:{}]->(b) WHERE r.id > $after
         WITH a, r, b ORDER BY r.id LIMIT $limit {RELATIONSHIP_RETURN}",
        rel_type.as_str()
    )
}

/// One page (`$limit` rows after id `$after`) of the live stakeholders, for the scan.
pub const SCAN_STAKEHOLDERS: &str = "MATCH (s:Stakeholder) WHERE s.id > $after AND s.archived_at IS NULL
     WITH s ORDER BY s.id LIMIT $limit
     RETURN s.id AS id, s.kind AS kind, s.markets AS markets, s.private AS private";
/// A page of archived stakeholders' ids, after `$after`.
pub const SCAN_ARCHIVED: &str = "MATCH (s:Stakeholder) WHERE s.id > $after AND s.archived_at IS NOT NULL
     WITH s ORDER BY s.id LIMIT $limit RETURN s.id AS id";
/// Columns of [`SCAN_ARCHIVED`].
pub const SCAN_ARCHIVED_COLUMNS: &[&str] = &["id"];
/// Columns of [`SCAN_STAKEHOLDERS`].
pub const SCAN_STAKEHOLDER_COLUMNS: &[&str] = &["id", "kind", "markets", "private"];

/// What the interaction statements return about `i`.
const INTERACTION_RETURN: &str = "RETURN i.id AS id, i.relationship_id AS relationship_id, i.at AS at,
     i.channel AS channel, i.direction AS direction, i.sentiment AS sentiment, i.amount AS amount,
     i.product_line AS product_line, i.note AS note, i.topic AS topic, i.key AS key";
/// Columns of the interaction statements.
pub const INTERACTION_COLUMNS: &[&str] = &[
    "id",
    "relationship_id",
    "at",
    "channel",
    "direction",
    "sentiment",
    "amount",
    "product_line",
    "note",
    "topic",
    "key",
];

/// Interactions by key (`$keys`).
pub static INTERACTIONS_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("MATCH (i:Interaction) WHERE i.key IN $keys {INTERACTION_RETURN}"));

/// Interactions by id (`$ids`).
pub static INTERACTIONS_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("MATCH (i:Interaction) WHERE i.id IN $ids {INTERACTION_RETURN}"));

/// Every interaction of the relationships `$ids`, oldest first.
pub static INTERACTION_HISTORIES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "MATCH (i:Interaction) WHERE i.relationship_id IN $ids
         WITH i ORDER BY i.relationship_id, i.at, i.id {INTERACTION_RETURN}"
    )
});

/// The newest `$take` interactions of each relationship in `$ids` older than (`$cursor_at`, `$cursor_id`)
/// when those are not null, with one of `$topics` when that is not empty: a page read forward.
pub static INTERACTION_PAGES: LazyLock<String> = LazyLock::new(|| interaction_pages("<", "DESC"));

/// The oldest `$take` interactions of each relationship in `$ids` newer than (`$cursor_at`, `$cursor_id`) when
/// those are not null, with one of `$topics` when that is not empty: a page read backward.
pub static INTERACTION_PAGES_BACKWARD: LazyLock<String> = LazyLock::new(|| interaction_pages(">", "ASC"));

fn interaction_pages(compare: &str, order: &str) -> String {
    format!(
        "MATCH (i:Interaction) WHERE i.relationship_id IN $ids
           AND ($cursor_at IS NULL OR i.at {compare} $cursor_at OR (i.at = $cursor_at AND i.id {compare} $cursor_id))
           AND (size($topics) = 0 OR i.topic IN $topics)
         WITH i ORDER BY i.at {order}, i.id {order}
         WITH i.relationship_id AS relationship, collect(i) AS nearest
         UNWIND nearest[0..$take] AS i {INTERACTION_RETURN}"
    )
}

/// How many interactions each relationship in `$ids` has (with one of `$topics`, when that is not empty).
pub const INTERACTION_COUNTS: &str = "MATCH (i:Interaction) WHERE i.relationship_id IN $ids
     AND (size($topics) = 0 OR i.topic IN $topics)
     RETURN i.relationship_id AS relationship_id, count(i) AS count";
/// Columns of [`INTERACTION_COUNTS`].
pub const INTERACTION_COUNT_COLUMNS: &[&str] = &["relationship_id", "count"];

/// Every programme, in id order (a graph keeps at most a thousand).
pub const PROGRAMS: &str = "MATCH (p:Program) WITH p ORDER BY p.id
     RETURN p.id AS id, p.key AS key, p.name AS name, p.kind AS kind, p.markets AS markets,
            p.created_at AS created_at";
/// Columns of [`PROGRAMS`].
pub const PROGRAM_COLUMNS: &[&str] = &["id", "key", "name", "kind", "markets", "created_at"];

/// Change-log entries after `$after`, oldest first, at most `$limit`.
pub const CHANGES_AFTER: &str = "MATCH (e:ChangeEvent) WHERE e.seq > $after
     WITH e ORDER BY e.seq LIMIT $limit
     RETURN e.seq AS seq, e.at AS at, e.kind AS kind, e.stakeholders AS stakeholders,
            e.relationship_id AS relationship_id, e.payload AS payload";
/// Up to `$limit` change-log entries before position `$before`, the latest of them (the caller puts them oldest
/// first).
pub const CHANGES_BEFORE: &str = "MATCH (e:ChangeEvent) WHERE e.seq < $before
     WITH e ORDER BY e.seq DESC LIMIT $limit
     RETURN e.seq AS seq, e.at AS at, e.kind AS kind, e.stakeholders AS stakeholders,
            e.relationship_id AS relationship_id, e.payload AS payload";
/// Columns of [`CHANGES_AFTER`] and [`CHANGES_BEFORE`].
pub const CHANGE_COLUMNS: &[&str] = &["seq", "at", "kind", "stakeholders", "relationship_id", "payload"];

/// How many stakeholders (archived included), relationships, interactions and change-log entries there are.
pub const COUNTS: [&str; 4] = [
    "MATCH (s:Stakeholder) RETURN count(s) AS count",
    "MATCH (:Stakeholder)-[r]->(:Stakeholder) RETURN count(r) AS count",
    "MATCH (i:Interaction) RETURN count(i) AS count",
    "MATCH (e:ChangeEvent) RETURN count(e) AS count",
];
/// How many private stakeholders there are, relationships with a private end, and interactions on those (what
/// a caller who may not see private stakeholders does not count).
pub const PRIVATE_COUNTS: [&str; 3] = [
    "MATCH (s:Stakeholder) WHERE s.private = true RETURN count(s) AS count",
    "MATCH (a:Stakeholder)-[r]->(b:Stakeholder) WHERE a.private = true OR b.private = true RETURN count(r) AS count",
    "MATCH (i:Interaction)-[:BETWEEN]->(s:Stakeholder) WHERE s.private = true RETURN count(DISTINCT i) AS count",
];
/// Columns of the [`COUNTS`] and [`PRIVATE_COUNTS`] statements.
pub const COUNT_COLUMNS: &[&str] = &["count"];

/// Whether the database answers.
pub const PING: &str = "RETURN 1 AS one";
/// Columns of [`PING`].
pub const PING_COLUMNS: &[&str] = &["one"];

/// The one statement that writes a whole batch: it takes the counter's write lock, goes on only when the
/// counter still holds the version the batch was prepared at (`$expected`; every write bumps it, whether or not
/// it appends change events), then writes the counter (`$counter`), the stakeholders (one list per kind), the
/// relationships (one list per type), the interactions, the programmes and the change events. Every record is `MERGE`d on its id, so writing one twice (a resumed migration) leaves
/// one. Returns one row when it wrote, none when the guard failed.
pub static WRITE_BATCH: LazyLock<String> = LazyLock::new(|| {
    let mut text = String::from(
        "MATCH (c:StakegraphCounter {name: 'stakegraph'})
         SET c.lock = true
         WITH c WHERE coalesce(c.version, 0) = $expected
         SET c.version = $expected + 1, c.seq = $counter.seq, c.stakeholder = $counter.stakeholder,
             c.relationship = $counter.relationship, c.interaction = $counter.interaction,
             c.migration = coalesce($counter.migration, c.migration)",
    );
    for kind in StakeholderKind::ALL {
        text.push_str(&format!(
            "\nFOREACH (s IN ${} | MERGE (n:Stakeholder:{} {{id: s.id}}) SET n += s.props)",
            stakeholders_param(*kind),
            kind_label(*kind)
        ));
    }
    for rel_type in RelationshipType::ALL {
        text.push_str(&format!(
            "\nFOREACH (r IN ${} | MERGE (a:Stakeholder {{id: r.from}}) MERGE (b:Stakeholder {{id: r.to}})
               MERGE (a)-[x:{} {{id: r.id}}]->(b) SET x += r.props)",
            relationships_param(*rel_type),
            rel_type.as_str()
        ));
    }
    text.push_str(
        "\nFOREACH (i IN $interactions | MERGE (a:Stakeholder {id: i.from}) MERGE (b:Stakeholder {id: i.to})
           MERGE (n:Interaction {id: i.id}) SET n += i.props MERGE (n)-[:BETWEEN]->(a) MERGE (n)-[:BETWEEN]->(b))
         FOREACH (p IN $programs | MERGE (n:Program {id: p.id}) SET n += p.props)
         FOREACH (e IN $events | MERGE (x:ChangeEvent {seq: e.seq}) SET x += e.props)
         RETURN c.seq AS seq",
    );
    text
});
/// Columns of [`WRITE_BATCH`] (and [`SET_SUMS_MODEL`]).
pub const WRITE_COLUMNS: &[&str] = &["seq"];

/// Every webhook's id and stored record, by id.
pub const WEBHOOKS: &str = "MATCH (w:Webhook) RETURN w.id AS id, w.record AS record ORDER BY w.id";
/// Registers a webhook (`$record`) under the counter's next webhook id.
pub const CREATE_WEBHOOK: &str = "MATCH (c:StakegraphCounter {name: 'stakegraph'})
     SET c.webhook = coalesce(c.webhook, 0) + 1
     CREATE (w:Webhook {id: c.webhook, record: $record})
     RETURN w.id AS id";
/// Saves the record (`$record`) of webhook `$id`: a row when it exists.
pub const SAVE_WEBHOOK: &str = "MATCH (w:Webhook {id: $id}) SET w.record = $record RETURN w.id AS id";
/// Deletes webhook `$id`: a row when it existed.
pub const DELETE_WEBHOOK: &str = "MATCH (w:Webhook {id: $id}) WITH w, w.id AS id DELETE w RETURN id";
/// Columns of [`WEBHOOKS`].
pub const WEBHOOK_COLUMNS: &[&str] = &["id", "record"];
/// Columns of [`CREATE_WEBHOOK`], [`SAVE_WEBHOOK`] and [`DELETE_WEBHOOK`].
pub const WEBHOOK_ID_COLUMNS: &[&str] = &["id"];

/// Every statement with a fixed text that the backend sends to FalkorDB (listings are composed per filter and
/// are not listed): the tests check that each one ran.
pub fn catalog() -> Vec<String> {
    let mut all: Vec<String> = FALKORDB_SCHEMA.clone();
    all.extend(
        [
            INIT_COUNTER,
            SET_SUMS_MODEL,
            READ_COUNTER,
            STAKEHOLDERS_BY_ID,
            STAKEHOLDER_BY_KEY,
            KEY_OWNERS,
            SCAN_STAKEHOLDERS,
            SCAN_ARCHIVED,
            INTERACTION_COUNTS,
            CHANGES_AFTER,
            CHANGES_BEFORE,
            PROGRAMS,
            PING,
            WEBHOOKS,
            CREATE_WEBHOOK,
            SAVE_WEBHOOK,
            DELETE_WEBHOOK,
        ]
        .map(str::to_owned),
    );
    all.extend(COUNTS.map(str::to_owned));
    all.extend(PRIVATE_COUNTS.map(str::to_owned));
    for text in [
        &RELATIONSHIPS_BY_ID,
        &RELATIONSHIPS_BETWEEN,
        &RELATIONSHIPS_OF,
        &INTERACTIONS_BY_ID,
        &INTERACTIONS_BY_KEY,
        &INTERACTION_HISTORIES,
        &INTERACTION_PAGES,
        &INTERACTION_PAGES_BACKWARD,
        &WRITE_BATCH,
    ] {
        all.push(String::clone(text));
    }
    all.extend(RelationshipType::ALL.iter().map(|rel_type| scan_relationships(*rel_type)));
    all
}
