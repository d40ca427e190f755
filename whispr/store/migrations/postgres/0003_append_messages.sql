-- Sends sequenced by the database: append_messages gives each message of a
-- batch the next seq of its conversation, in batch order, under the
-- conversation's row lock. See whispr/store/postgres.py and docs/storage.md.
-- The batch comes as one JSON array of messages (what msgspec encodes in one
-- call, leaving out fields at their defaults), cheaper to send than eleven
-- arrays built element by element.
--
-- A plpgsql function so that the lock comes first and the insert runs in a
-- statement of its own: in READ COMMITTED each statement of a volatile
-- function takes a fresh snapshot, so once the locks are held the check for
-- client ids already stored sees every committed send of these conversations,
-- and the seqs it hands out follow the last one committed. Messages whose
-- client id is stored are skipped without using a seq (the caller looks up
-- the original), so seqs stay gap-free. The INSERT has no ON CONFLICT: under
-- the locks nothing can conflict, and if something ever did the statement
-- fails as a whole rather than leaving a hole.
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
                created_at double precision, metadata jsonb))
            WITH ORDINALITY AS t(conversation_id, id, client_id, sender_id, kind, content,
                attachments, reply_to, created_at, metadata, ord)
    ), fresh AS (
        -- Per row, two index probes that touch one partition each (a join
        -- here could be planned as a scan of all messages): the stored
        -- client id, and the conversation's last seq.
        SELECT i.*, (SELECT c.last_seq FROM conversations c WHERE c.id = i.conversation_id)
                + row_number() OVER (PARTITION BY i.conversation_id ORDER BY i.ord) AS seq
        FROM input i
        WHERE (SELECT 1 FROM messages m
               WHERE m.conversation_id = i.conversation_id
                 AND m.sender_id = i.sender_id AND m.client_id = i.client_id
               LIMIT 1) IS NULL
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
    SELECT f.ord, f.seq FROM fresh f;
END
$$;
