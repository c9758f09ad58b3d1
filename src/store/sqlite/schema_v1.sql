-- Stakegraph embedded store, schema version 1.
-- A stakeholder's full record is kept as JSON; the columns beside it are derived from the same record in the
-- same statement and exist only to filter, sort and join.
CREATE TABLE stakeholder (
    id          INTEGER PRIMARY KEY,
    key         TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    status      TEXT,
    markets     INTEGER NOT NULL,
    power       REAL    NOT NULL,
    interest    REAL    NOT NULL,
    private     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    archived_at INTEGER,
    record      TEXT    NOT NULL
);
-- Listings leave archived stakeholders out by default; `archived_at` sits in each listing index right after the
-- equality columns, so `archived_at IS NULL` is an index constraint and counting a kind never reads the table.
-- (A partial index would not do: SQLite does not treat its WHERE column as covered, and scans instead.)
CREATE INDEX stakeholder_by_kind ON stakeholder (kind, archived_at, id);
CREATE INDEX stakeholder_by_kind_name ON stakeholder (kind, archived_at, name, id);
CREATE INDEX stakeholder_by_name ON stakeholder (archived_at, name, id);
CREATE INDEX stakeholder_by_created ON stakeholder (archived_at, created_at, id);
CREATE INDEX stakeholder_by_power ON stakeholder (archived_at, power, id);
CREATE INDEX stakeholder_by_interest ON stakeholder (archived_at, interest, id);
CREATE INDEX stakeholder_by_status ON stakeholder (status, archived_at, id);

CREATE TABLE relationship (
    id          INTEGER PRIMARY KEY,
    from_id     INTEGER NOT NULL REFERENCES stakeholder (id),
    to_id       INTEGER NOT NULL REFERENCES stakeholder (id),
    type        TEXT    NOT NULL,
    level       INTEGER NOT NULL CHECK (level BETWEEN 1 AND 5),
    bonds       INTEGER NOT NULL,
    trust       REAL CHECK (trust BETWEEN 0 AND 1),
    commitment  REAL CHECK (commitment BETWEEN 0 AND 1),
    since       INTEGER NOT NULL,
    basis       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (from_id, to_id, type)
);
CREATE INDEX relationship_by_to ON relationship (to_id);

CREATE TABLE interaction (
    id              INTEGER PRIMARY KEY,
    relationship_id INTEGER NOT NULL REFERENCES relationship (id),
    at              INTEGER NOT NULL,
    channel         TEXT    NOT NULL,
    direction       TEXT    NOT NULL,
    sentiment       REAL    NOT NULL CHECK (sentiment BETWEEN -1 AND 1),
    amount          REAL,
    product_line    TEXT,
    note            TEXT
);
CREATE INDEX interaction_by_relationship ON interaction (relationship_id, at DESC, id DESC);

-- The transactional outbox: AUTOINCREMENT guarantees a sequence number is never reused.
CREATE TABLE change_log (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    stakeholders    TEXT    NOT NULL,
    relationship_id INTEGER,
    payload         TEXT    NOT NULL
);
