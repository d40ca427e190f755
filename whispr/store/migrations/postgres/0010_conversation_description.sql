-- A group's description, set by its owner and admins (update_conversation), beside its
-- title and avatar. Nullable: conversations made before this migration have none.
ALTER TABLE conversations ADD COLUMN description text;
