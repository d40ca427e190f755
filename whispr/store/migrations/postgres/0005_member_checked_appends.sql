-- Membership is checked where a send is written. append_messages (see
-- 0003_append_messages.sql) now writes a message only if its sender is a
-- member when the batch's insert runs, unless the message says its sender is
-- the system or a sibling service (trusted_sender). The insert runs in a
-- statement of its own after the conversations' row locks are taken, and
-- remove_member takes the same lock, so a removal and a batch are ordered:
-- once a removal has committed, no message of the removed member is written,
-- whatever a node's cache of the members still says. A refused message comes
-- back with seq 0 and takes no seq (seqs stay gap-free).
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
                created_at double precision, metadata jsonb, trusted_sender boolean))
            WITH ORDINALITY AS t(conversation_id, id, client_id, sender_id, kind, content,
                attachments, reply_to, created_at, metadata, trusted_sender, ord)
    ), unstored AS (
        -- Per row, two index probes that touch one partition each (a join
        -- here could be planned as a scan of all messages): the stored
        -- client id, and (below) the sender's membership.
        SELECT i.* FROM input i
        WHERE (SELECT 1 FROM messages m
               WHERE m.conversation_id = i.conversation_id
                 AND m.sender_id = i.sender_id AND m.client_id = i.client_id
               LIMIT 1) IS NULL
    ), allowed AS (
        SELECT u.* FROM unstored u
        WHERE u.trusted_sender IS TRUE
           OR (SELECT 1 FROM members mb
               WHERE mb.conversation_id = u.conversation_id AND mb.user_id = u.sender_id)
              IS NOT NULL
    ), fresh AS (
        SELECT a.*, (SELECT c.last_seq FROM conversations c WHERE c.id = a.conversation_id)
                + row_number() OVER (PARTITION BY a.conversation_id ORDER BY a.ord) AS seq
        FROM allowed a
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
    UNION ALL  -- not a member when written: seq 0, nothing stored
    SELECT u.ord, 0 FROM unstored u
    WHERE NOT EXISTS (SELECT 1 FROM allowed a WHERE a.ord = u.ord);
END
$$;
