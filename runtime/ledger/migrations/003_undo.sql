-- 003: before-images of reversible runs, and the rows a revert left alone.

CREATE TABLE backfill.undo (
    seq    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES backfill.runs (id),
    batch  bigint NOT NULL,
    key    jsonb NOT NULL,
    before jsonb NOT NULL, -- field name -> value before the run
    after  jsonb NOT NULL  -- field name -> value the run wrote
);
CREATE INDEX undo_run ON backfill.undo (run_id, seq);

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
