-- A group's description (the PostgreSQL edition, migration 0010, says more).
ALTER TABLE conversations ADD COLUMN description TEXT;
