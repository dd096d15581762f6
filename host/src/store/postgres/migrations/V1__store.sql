-- droid's store on PostgreSQL, in the schema named by `store.schema`.
-- Keys compare byte by byte (COLLATE "C"), as in the embedded store, so an
-- export pages in the same order whatever the database's locale.
-- Provider versions are u64, kept in bigint by their bits: droid compares
-- them, never SQL.

CREATE TABLE records (
    record_type     text COLLATE "C" NOT NULL,
    tenant          text COLLATE "C" NOT NULL,
    key             text COLLATE "C" NOT NULL,
    version         bigint NOT NULL,
    body            text,            -- NULL: deleted (a tombstone)
    seq             bigint NOT NULL,
    committed_at_ms bigint NOT NULL,
    PRIMARY KEY (record_type, tenant, key)
);

-- The change log. `seq` is handed out under the lock on `log`'s one row,
-- held to the end of the writing transaction, so the log grows only in
-- commit order and without gaps (see ARCHITECTURE.md).
CREATE TABLE changes (
    seq             bigint PRIMARY KEY,
    record_type     text NOT NULL,
    tenant          text NOT NULL,
    key             text NOT NULL,
    version         bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('upsert', 'delete', 'invalidate')),
    body            text,
    source          text NOT NULL,
    event_id        text NOT NULL,
    occurred_at_ms  bigint NOT NULL,
    committed_at_ms bigint NOT NULL
);

CREATE TABLE log (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_seq  bigint NOT NULL,
    first_seq bigint NOT NULL
);
INSERT INTO log (last_seq, first_seq) VALUES (0, 1);

-- Every event id seen, per source: what makes ingestion idempotent.
CREATE TABLE events (
    source   text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (source, event_id)
);

CREATE TABLE dead_letters (
    source   text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    attempts integer NOT NULL,
    letter   text NOT NULL,          -- the dead letter, JSON
    PRIMARY KEY (source, event_id)
);

CREATE TABLE snapshots (
    id       text COLLATE "C" PRIMARY KEY,
    snapshot text NOT NULL           -- the batch, JSON
);

CREATE TABLE staged (
    snapshot_id text COLLATE "C" NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    position    bigint NOT NULL,
    event       text NOT NULL,       -- the event, JSON
    PRIMARY KEY (snapshot_id, position)
);
