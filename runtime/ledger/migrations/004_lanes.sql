-- 004: parallel lanes of one run, cheaper before-images.

-- A run may write its scope in lanes: disjoint key ranges, each with its own
-- checkpoint, committed by separate connections. Lane n covers the keys
-- after "after" (null: from the start) up to and including "until" (null:
-- to the end). The ranges are fixed when the run starts, so a resume
-- continues every lane from its own cursor. A run without rows here has
-- one lane, and its checkpoint is backfill.runs.cursor.
CREATE TABLE backfill.lanes (
    run_id bigint  NOT NULL REFERENCES backfill.runs (id),
    lane   integer NOT NULL CHECK (lane >= 0),
    after  jsonb,
    until  jsonb,
    cursor jsonb,
    done   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, lane)
);

ALTER TABLE backfill.batches ADD COLUMN lane integer NOT NULL DEFAULT 0;

-- Images are written once and read back only by a revert: keep the text the
-- runtime sent (json, validated) instead of parsing it into jsonb.
ALTER TABLE backfill.undo ALTER COLUMN items TYPE json USING items::json;
ALTER TABLE backfill.undo ALTER COLUMN items SET STORAGE EXTERNAL;

REVOKE ALL ON backfill.lanes FROM PUBLIC;
GRANT SELECT ON backfill.lanes TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT INSERT, UPDATE ON backfill.lanes TO backfill_runner;
