-- Stakegraph embedded store, schema version 6: webhooks. Each row is one webhook's record (its URL, filter, secret,
-- cursor in the change log and latest delivery attempts) as versioned JSON: bookkeeping beside the graph, written
-- by the webhook deliverer, never in the change log.
CREATE TABLE webhook (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT    NOT NULL
);
