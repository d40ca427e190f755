-- The store judges end-to-end sends against the members they were encrypted for.
--
-- conversations.member_version counts the changes of a conversation's member set: a
-- trigger bumps it in the transaction of every row added to or removed from members, by
-- whichever node, code path or statement, and the bump takes the conversation's row lock
-- that append_messages takes first. An end-to-end send (actors/e2e/) carries the version
-- of the members its envelopes were checked against (member_version in the batch's JSON;
-- plain sends leave it out); append_messages writes it only if that is still the
-- conversation's version under the lock, and answers seq -1 otherwise (nothing written,
-- no seq used), so the sender checks the devices again against the new members. A member
-- added through another node's actor that this node has not heard of yet cannot receive
-- a message without an envelope. See docs/e2e.md and docs/storage.md.
-- The SQLite edition is migration 0012.
ALTER TABLE conversations ADD COLUMN member_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION bump_member_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET member_version = member_version + 1
    WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.conversation_id
                    ELSE NEW.conversation_id END;
    RETURN NULL;
END
$$;

CREATE TRIGGER members_change_version AFTER INSERT OR DELETE ON members
FOR EACH ROW EXECUTE FUNCTION bump_member_version();

-- As in 0005_member_checked_appends.sql, with the version check: a message refused is
-- answered seq 0 when its sender is not a member, -1 when its member_version is stale.
CREATE OR REPLACE FUNCTION append_messages(p_batch json) RETURNS TABLE (r_ord bigint, r_seq bigint)
LANGUAGE plpgsql VOLATILE
-- Planning the insert (16 partitions, the client id probe) costs more than
-- running it for a small batch, and the plan does not depend on the batch.
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    -- One lock order for every writer (ids ascending), as the batch statement
    -- for given seqs uses, so that concurrent batches do not deadlock.
    PERFORM 1 FROM conversations
    WHERE id = ANY (ARRAY(SELECT b.conversation_id
                          FROM json_to_recordset(p_batch) AS b(conversation_id text)))
    ORDER BY id FOR UPDATE;
    RETURN QUERY
    WITH input AS (
        SELECT * FROM ROWS FROM (json_to_recordset(p_batch)
            AS (conversation_id text, id text, client_id text, sender_id text, kind text,
                content text, attachments jsonb, reply_to bigint,
                created_at double precision, metadata jsonb, trusted_sender boolean,
                member_version bigint))
            WITH ORDINALITY AS t(conversation_id, id, client_id, sender_id, kind, content,
                attachments, reply_to, created_at, metadata, trusted_sender, member_version,
                ord)
    ), unstored AS (
        -- Per row, index probes that touch one partition each (a join here
        -- could be planned as a scan of all messages): the stored client id,
        -- and (below) the sender's membership; the conversation's version
        -- only for a message that carries one.
        SELECT i.* FROM input i
        WHERE (SELECT 1 FROM messages m
               WHERE m.conversation_id = i.conversation_id
                 AND m.sender_id = i.sender_id AND m.client_id = i.client_id
               LIMIT 1) IS NULL
    ), checked AS (
        SELECT u.*, CASE
            WHEN u.trusted_sender IS NOT TRUE
                 AND (SELECT 1 FROM members mb
                      WHERE mb.conversation_id = u.conversation_id
                        AND mb.user_id = u.sender_id) IS NULL THEN 0
            WHEN u.member_version IS NOT NULL
                 AND u.member_version IS DISTINCT FROM
                     (SELECT c.member_version FROM conversations c
                      WHERE c.id = u.conversation_id) THEN -1
            END AS refused
        FROM unstored u
    ), fresh AS (
        SELECT a.*, (SELECT c.last_seq FROM conversations c WHERE c.id = a.conversation_id)
                + row_number() OVER (PARTITION BY a.conversation_id ORDER BY a.ord) AS seq
        FROM checked a WHERE a.refused IS NULL
    ), written AS (
        INSERT INTO messages (conversation_id, seq, id, client_id, sender_id, kind,
            content, attachments, reply_to, created_at, metadata)
        SELECT conversation_id, seq, id, client_id, sender_id, kind, COALESCE(content, ''),
            COALESCE(attachments, '[]'), reply_to, created_at, COALESCE(metadata, '{}')
        FROM fresh
        RETURNING conversation_id, seq, created_at
    ), bumped AS (
        UPDATE conversations c
        SET last_seq = w.seq,
            last_message_at = GREATEST(COALESCE(c.last_message_at, 0), w.at)
        FROM (SELECT conversation_id, max(seq) AS seq, max(created_at) AS at
              FROM written GROUP BY conversation_id) w
        WHERE c.id = w.conversation_id
    )
    SELECT f.ord, f.seq FROM fresh f
    UNION ALL  -- refused: nothing stored, no seq used
    SELECT c.ord, c.refused FROM checked c WHERE c.refused IS NOT NULL;
END
$$;
