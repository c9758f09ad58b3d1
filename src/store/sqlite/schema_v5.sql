-- Stakegraph embedded store, schema version 5: an interaction's key, the recorder's own identifier for it (a mail's
-- Message-ID, a CRM activity id), unique when given: recording it again is recognised and changes nothing. NULL
-- for an interaction recorded without one (every interaction written before).
ALTER TABLE interaction ADD COLUMN key TEXT;
CREATE UNIQUE INDEX interaction_by_key ON interaction (key) WHERE key IS NOT NULL;
