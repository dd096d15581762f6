-- Which store this is: backups of another (a store rebuilt after its disk
-- was lost numbers its log anew) are never continued with this one's log.
ALTER TABLE log ADD COLUMN instance text NOT NULL
    DEFAULT md5(random()::text || clock_timestamp()::text);

-- An erased tenant leaves a marker in the change log.
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('upsert', 'delete', 'invalidate', 'erase'));

-- Recovery: its operations (restores, erasure proposals) and the audit log
-- of destructive and recovery operations. Kept in the schema every node
-- shares (`store.schema`).

CREATE TABLE operations (
    id        text COLLATE "C" PRIMARY KEY,
    body      text NOT NULL,                 -- JSON: what it is and where it stands
    revision  bigint NOT NULL,               -- 1 when recorded, one more per change
    directory_revision bigint NOT NULL       -- an operation may fence writes
);

CREATE TABLE audit (
    id     bigserial PRIMARY KEY,
    at_ms  bigint NOT NULL,
    entry  text NOT NULL                     -- JSON: who, what, outcome
);

-- Append-only: an entry is never changed or removed.
CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();
