-- Full-text search of messages (docs/storage.md, "Search").
--
-- Each message row carries the text search configuration of its conversation
-- (search_config: 'simple', 'english', 'french', ...; the conversation's
-- settings ->> 'search_language', validated by actors/search.py) and a
-- generated tsvector of its content under that configuration. Being a
-- generated column, the vector follows every change of the row whoever makes
-- it: an edit recomputes it, a tombstone (deleted) or an end-to-end encrypted
-- message (metadata e2e true: ciphertext has no words) has none, and a deleted row
-- takes its index entries with it, so no code path can leave the index behind
-- the messages.
ALTER TABLE messages ADD COLUMN search_config regconfig NOT NULL DEFAULT 'simple';
ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    CASE WHEN deleted OR metadata -> 'e2e' = 'true'::jsonb THEN NULL
         ELSE to_tsvector(search_config, content) END
) STORED;

-- btree_gin lets one GIN index hold the conversation and the words: a search
-- in a user's conversations intersects both inside the index instead of
-- reading every message of every conversation that has the word.
-- In schema public: an extension is one per database, and a schema that holds it (a test
-- schema, dropped) would take every index built on it along.
CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA public;
CREATE INDEX messages_search ON messages USING gin (conversation_id, search_vector);

-- A message takes its conversation's language when it is written: one
-- statement per insert statement (a batch), not a lookup per row, and it
-- writes only the rows of conversations searched in another language than
-- 'simple' (the column's default), so the common case costs a join of the
-- batch with its conversations. A batch of sends holds its conversations'
-- rows locked (append_messages), so a language change and a batch are
-- ordered.
CREATE FUNCTION messages_search_config() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM written w JOIN conversations c ON c.id = w.conversation_id
               WHERE COALESCE(c.settings ->> 'search_language', 'simple') <> 'simple') THEN
        UPDATE messages m
        SET search_config = (c.settings ->> 'search_language')::regconfig
        FROM written w JOIN conversations c ON c.id = w.conversation_id
        WHERE m.conversation_id = w.conversation_id AND m.seq = w.seq
          AND COALESCE(c.settings ->> 'search_language', 'simple') <> 'simple';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_search_config AFTER INSERT ON messages
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION messages_search_config();

-- A conversation whose language changes has its messages indexed again in
-- the new one (the generated vector follows search_config).
CREATE FUNCTION conversations_search_language() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE messages SET search_config =
        COALESCE((NEW.settings ->> 'search_language')::regconfig, 'simple')
    WHERE conversation_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER conversations_search_language AFTER UPDATE OF settings ON conversations
    FOR EACH ROW
    WHEN ((OLD.settings ->> 'search_language') IS DISTINCT FROM (NEW.settings ->> 'search_language'))
    EXECUTE FUNCTION conversations_search_language();
