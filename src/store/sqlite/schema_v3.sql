-- Stakegraph embedded store, schema version 3: what an interaction was about (ORDER, RETURN, COMPLAINT, INQUIRY,
-- SERVICE, PROMOTION), NULL when not recorded (every interaction written before).
ALTER TABLE interaction ADD COLUMN topic TEXT;
