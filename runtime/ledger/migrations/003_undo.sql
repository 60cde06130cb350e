-- 003: before-images of reversible runs, and the rows a revert left alone.

-- One row per batch of a reversible run: items is a JSON array of
-- {"key": ..., "before": {field: value}, "after": {field: value}}, one per
-- row the batch changed.
CREATE TABLE backfill.undo (
    run_id bigint NOT NULL REFERENCES backfill.runs (id),
    batch  bigint NOT NULL,
    items  jsonb NOT NULL,
    PRIMARY KEY (run_id, batch)
);
-- Stored out of line uncompressed: compressing every batch's images costs
-- the server more time than the space it saves is worth here.
ALTER TABLE backfill.undo ALTER COLUMN items SET STORAGE EXTERNAL;

CREATE TABLE backfill.revert_skipped (
    run_id  bigint NOT NULL REFERENCES backfill.runs (id), -- the revert run
    key     jsonb NOT NULL,
    why     text NOT NULL,
    current jsonb,
    PRIMARY KEY (run_id, key)
);

REVOKE ALL ON backfill.undo, backfill.revert_skipped FROM PUBLIC;
GRANT SELECT ON backfill.undo, backfill.revert_skipped TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT INSERT ON backfill.undo, backfill.revert_skipped TO backfill_runner;
