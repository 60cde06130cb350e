-- 005: parameterised backfills. A run records the canonical values of its
-- declared parameters (e.g. {"cutoff":"2026-08-01"}; {} for a backfill
-- without parameters), and run once means once per run signature, purpose
-- AND parameter values: the same values after completion are refused, new
-- values (approved) run again, and a resume continues only the run of the
-- same values. jsonb equality ignores key order and spacing.

ALTER TABLE backfill.runs ADD COLUMN params jsonb NOT NULL DEFAULT '{}';

DROP INDEX backfill.runs_completed_once;
DROP INDEX backfill.runs_one_unfinished;
CREATE UNIQUE INDEX runs_completed_once ON backfill.runs (run_signature, purpose, params) WHERE status = 'completed';
CREATE UNIQUE INDEX runs_one_unfinished ON backfill.runs (run_signature, purpose, params)
    WHERE status IN ('running', 'failed', 'interrupted', 'partial');

-- The parameter values an approval's signed statement pins, for listing;
-- the runtime trusts only the statement itself.
ALTER TABLE backfill.approvals ADD COLUMN params jsonb NOT NULL DEFAULT '{}';

CREATE OR REPLACE FUNCTION backfill.approval_logged() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO backfill.audit_events (kind, payload) VALUES ('approval', jsonb_build_object(
        'approval_id', NEW.id, 'backfill', NEW.backfill, 'digest', NEW.digest, 'approver', NEW.approver,
        'environment', NEW.environment, 'purpose', NEW.purpose, 'reason', NEW.reason, 'expires_at', NEW.expires_at,
        'params', NEW.params));
    RETURN NULL;
END $$;
