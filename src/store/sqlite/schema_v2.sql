-- Stakegraph embedded store, schema version 2: each relationship keeps the decayed sums of its interactions
-- (docs/models.md, "Relationship strength"), so that strength at the present is O(1) and the engine's projection loads without reading the
-- interaction history. `last_at` is both the last interaction and the time the sums are referred to; NULL when the
-- relationship has no interaction. The sums depend on the half-life and channel weights: `meta.sums_model` records
-- the ones they were computed with, and opening the store with others recomputes them from the history.
ALTER TABLE relationship ADD COLUMN sum_weighted  REAL NOT NULL DEFAULT 0;
ALTER TABLE relationship ADD COLUMN sum_inbound   REAL NOT NULL DEFAULT 0;
ALTER TABLE relationship ADD COLUMN sum_outbound  REAL NOT NULL DEFAULT 0;
ALTER TABLE relationship ADD COLUMN sum_sentiment REAL NOT NULL DEFAULT 0;
ALTER TABLE relationship ADD COLUMN last_at       INTEGER;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
