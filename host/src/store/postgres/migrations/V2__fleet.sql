-- What a fleet of nodes shares besides records: plugin files pushed by
-- operators, the rollout decisions about each plugin, and what each node
-- reports it holds and serves.

CREATE TABLE plugin_files (
    file      text COLLATE "C" PRIMARY KEY,  -- NAME.wasm or NAME@VERSION.wasm
    sha256    text NOT NULL,
    wasm      bytea NOT NULL,
    signature bytea,                          -- the .sig file, if signed
    pushed_at_ms bigint NOT NULL
);

-- Every change to a decision takes the next revision, so a node asks only
-- whether the largest moved.
CREATE SEQUENCE decision_revisions;
CREATE TABLE plugin_decisions (
    plugin    text COLLATE "C" PRIMARY KEY,
    decisions text NOT NULL,                  -- JSON: current, candidate, rolled back
    revision  bigint NOT NULL
);

CREATE TABLE node_reports (
    node      text COLLATE "C" PRIMARY KEY,
    report    text NOT NULL,                  -- JSON: versions held and served
    at_ms     bigint NOT NULL
);
