-- Stakegraph embedded store, schema version 4: relationship-marketing programmes (frequency programmes, customer
-- clubs, customisation programmes). A customer's memberships are kept in its record, like its lifecycle.
CREATE TABLE program (
    id         INTEGER PRIMARY KEY,
    key        TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    markets    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
