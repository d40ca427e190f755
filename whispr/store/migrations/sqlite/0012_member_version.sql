-- conversations.member_version counts the changes of a conversation's member set, bumped
-- by these triggers in the statement that adds or removes a member, whatever the path. An
-- end-to-end send carries the version its envelopes were checked against and is written
-- only if it is still the conversation's (whispr/store/sqlite.py, _append). See the
-- PostgreSQL edition, migration 0016, and docs/storage.md.
ALTER TABLE conversations ADD COLUMN member_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER members_added_version AFTER INSERT ON members
BEGIN
    UPDATE conversations SET member_version = member_version + 1
    WHERE id = NEW.conversation_id;
END;

CREATE TRIGGER members_removed_version AFTER DELETE ON members
BEGIN
    UPDATE conversations SET member_version = member_version + 1
    WHERE id = OLD.conversation_id;
END;
