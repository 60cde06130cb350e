-- 002: per-batch progress rows and operator control of running runs.

CREATE TABLE backfill.batches (
    run_id      bigint NOT NULL REFERENCES backfill.runs (id),
    batch       bigint NOT NULL,
    cursor      jsonb NOT NULL,
    scanned     integer NOT NULL,
    intended    integer NOT NULL,
    changed     bigint NOT NULL,
    size        integer NOT NULL,
    attempts    integer NOT NULL,
    duration_ms double precision NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, batch)
);

-- pause, resume and cancel requests, honoured between batches; a paused
-- run keeps status running and waits.
ALTER TABLE backfill.runs ADD COLUMN control text NOT NULL DEFAULT 'run' CHECK (control IN ('run', 'pause', 'cancel'));
ALTER TABLE backfill.runs ADD COLUMN control_by text;

REVOKE ALL ON backfill.batches FROM PUBLIC;
GRANT SELECT ON backfill.batches TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT INSERT ON backfill.batches TO backfill_runner;
