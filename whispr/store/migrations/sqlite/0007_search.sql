-- Full-text search of messages (docs/storage.md, "Search"): an FTS5 index
-- whose content is the messages table itself (external content), kept in step
-- by triggers on every insert, update and delete of a message row, whoever
-- makes it. Tombstones and end-to-end encrypted messages (metadata e2e:
-- ciphertext has no words) are not indexed; a row leaves the index with the
-- values it was indexed with, as external-content tables require.
-- unicode61 without diacritics removal and without stemming: the tokens
-- PostgreSQL's 'simple' configuration makes (SQLite has no Snowball stemmers).
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content = 'messages', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN NOT new.deleted AND json_type(new.metadata, '$.e2e') IS NOT 'true'
BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN NOT old.deleted AND json_type(old.metadata, '$.e2e') IS NOT 'true'
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
    VALUES ('delete', old.rowid, old.content);
END;

-- One trigger, its statements in this order: the old entry leaves before the new one
-- comes (two triggers would run in an order SQLite does not promise).
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, deleted, metadata ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
    SELECT 'delete', old.rowid, old.content
    WHERE NOT old.deleted AND json_type(old.metadata, '$.e2e') IS NOT 'true';
    INSERT INTO messages_fts (rowid, content)
    SELECT new.rowid, new.content
    WHERE NOT new.deleted AND json_type(new.metadata, '$.e2e') IS NOT 'true';
END;

-- Messages written before this migration.
INSERT INTO messages_fts (rowid, content)
SELECT rowid, content FROM messages
WHERE NOT deleted AND json_type(metadata, '$.e2e') IS NOT 'true';
