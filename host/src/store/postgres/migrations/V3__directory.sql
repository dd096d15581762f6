-- The tenant directory: which realm each tenant's data lives in, and the
-- realm migrations under way. Kept in the schema every node shares
-- (`store.schema`); a realm's own schema has these tables empty.

-- Every change to a pin or a migration takes the next revision, so a node
-- asks only whether the largest moved.
CREATE SEQUENCE directory_revisions;

CREATE TABLE pins (
    tenant       text COLLATE "C" PRIMARY KEY,
    realm        text NOT NULL,
    pinned_at_ms bigint NOT NULL,
    revision     bigint NOT NULL
);

CREATE TABLE migrations (
    id        text COLLATE "C" PRIMARY KEY,
    tenant    text COLLATE "C" NOT NULL,
    body      text NOT NULL,                 -- JSON: window, target, state, progress
    revision  bigint NOT NULL,               -- 1 when recorded, one more per change
    directory_revision bigint NOT NULL
);

-- A migration's commit rewrites the tenant's changes without their values.
CREATE INDEX changes_by_tenant ON changes (tenant);
