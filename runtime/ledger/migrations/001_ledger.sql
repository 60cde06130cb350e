-- 001: the ledger. Everything lives in schema backfill of the target database.

CREATE SCHEMA backfill;

-- Settings of this ledger; 'environment' names what this database is.
CREATE TABLE backfill.settings (
    key    text PRIMARY KEY,
    value  text NOT NULL,
    set_by text NOT NULL DEFAULT session_user,
    set_at timestamptz NOT NULL DEFAULT now()
);

-- Approver keys, each registered with the database login of its owner.
CREATE TABLE backfill.approvers (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.@-]{0,62}$'),
    login      text NOT NULL,
    public_key text NOT NULL,
    key_id     text NOT NULL UNIQUE,
    added_by   text NOT NULL DEFAULT session_user,
    added_at   timestamptz NOT NULL DEFAULT now(),
    revoked_by text,
    revoked_at timestamptz
);

-- Signed approvals of a binary digest; append-only.
CREATE TABLE backfill.approvals (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    backfill      text NOT NULL,
    digest        text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    run_signature text NOT NULL,
    environment   text NOT NULL,
    purpose       text NOT NULL,
    approver      text NOT NULL REFERENCES backfill.approvers (name),
    reason        text NOT NULL,
    expires_at    timestamptz NOT NULL,
    statement     text NOT NULL,
    signature     text NOT NULL,
    submitted_by  text NOT NULL DEFAULT session_user,
    submitted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approvals_digest ON backfill.approvals (digest);

-- One row per execution attempt; a resumed run keeps its row.
CREATE TABLE backfill.runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    backfill      text NOT NULL,
    digest        text NOT NULL,
    run_signature text NOT NULL,
    purpose       text NOT NULL DEFAULT 'execute',
    status        text NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'refused', 'interrupted', 'partial', 'cancelled', 'failed_validation')),
    stop_reason   text,
    message       text,
    parameters    jsonb NOT NULL DEFAULT '{}',
    os_user       text NOT NULL,
    db_user       text NOT NULL DEFAULT session_user,
    client_host   text NOT NULL,
    code_version  text NOT NULL,
    source_commit text NOT NULL,
    environment   text,
    approval_ids  bigint[] NOT NULL DEFAULT '{}',
    matched       bigint,
    scanned       bigint NOT NULL DEFAULT 0,
    changed       bigint NOT NULL DEFAULT 0,
    batches       bigint NOT NULL DEFAULT 0,
    cursor        jsonb,
    resumes       integer NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
-- Run once, enforced by the database: one completed run per signature, and
-- at most one unfinished run to resume.
CREATE UNIQUE INDEX runs_completed_once ON backfill.runs (run_signature, purpose) WHERE status = 'completed';
CREATE UNIQUE INDEX runs_one_unfinished ON backfill.runs (run_signature, purpose)
    WHERE status IN ('running', 'failed', 'interrupted', 'partial');

-- Dry-run reports, as the binary printed them.
CREATE TABLE backfill.dry_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    backfill      text NOT NULL,
    digest        text NOT NULL,
    run_signature text NOT NULL,
    report        jsonb NOT NULL,
    created_by    text NOT NULL DEFAULT session_user,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The audit log: append-only and hash-chained. seq, at, actor, prev_hash and
-- hash are set by the trigger below, never by the writer.
CREATE TABLE backfill.audit_events (
    seq       bigint PRIMARY KEY,
    at        timestamptz NOT NULL,
    run_id    bigint,
    kind      text NOT NULL,
    actor     text NOT NULL,
    payload   jsonb NOT NULL DEFAULT '{}',
    prev_hash text NOT NULL,
    hash      text NOT NULL
);

-- The hash of one event. backfill audit verify recomputes it in Go from the
-- same fields; the format must never change.
CREATE FUNCTION backfill.audit_hash(seq bigint, at timestamptz, run_id bigint, kind text, actor text, payload jsonb, prev_hash text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws(E'\n', 'backfill-audit/v1', seq::text,
        (extract(epoch FROM at) * 1000000)::bigint::text, coalesce(run_id::text, ''),
        kind, actor, payload::text, prev_hash), 'UTF8')), 'hex')
$$;

CREATE FUNCTION backfill.audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    last_seq  bigint;
    last_hash text;
BEGIN
    -- Serialise appends so that seq order is chain order.
    PERFORM pg_advisory_xact_lock(7305811741290601);
    SELECT e.seq, e.hash INTO last_seq, last_hash FROM backfill.audit_events e ORDER BY e.seq DESC LIMIT 1;
    NEW.seq := coalesce(last_seq, 0) + 1;
    NEW.prev_hash := coalesce(last_hash, repeat('0', 64));
    NEW.at := clock_timestamp();
    NEW.actor := session_user;
    NEW.payload := coalesce(NEW.payload, '{}');
    NEW.hash := backfill.audit_hash(NEW.seq, NEW.at, NEW.run_id, NEW.kind, NEW.actor, NEW.payload, NEW.prev_hash);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_chain BEFORE INSERT ON backfill.audit_events FOR EACH ROW EXECUTE FUNCTION backfill.audit_chain();

CREATE FUNCTION backfill.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'backfill.% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON backfill.audit_events FOR EACH ROW EXECUTE FUNCTION backfill.append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON backfill.audit_events FOR EACH STATEMENT EXECUTE FUNCTION backfill.append_only();
CREATE TRIGGER approvals_append_only BEFORE UPDATE OR DELETE ON backfill.approvals FOR EACH ROW EXECUTE FUNCTION backfill.append_only();
CREATE TRIGGER approvals_no_truncate BEFORE TRUNCATE ON backfill.approvals FOR EACH STATEMENT EXECUTE FUNCTION backfill.append_only();

-- An approval is submitted by the login its key is registered to, and is
-- logged in the audit chain in the same transaction.
CREATE FUNCTION backfill.approval_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owner   text;
    revoked timestamptz;
BEGIN
    SELECT a.login, a.revoked_at INTO owner, revoked FROM backfill.approvers a WHERE a.name = NEW.approver;
    IF owner IS NULL THEN
        RAISE EXCEPTION 'approver % is not registered', NEW.approver USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF revoked IS NOT NULL THEN
        RAISE EXCEPTION 'approver % was revoked at %', NEW.approver, revoked USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF owner <> session_user THEN
        RAISE EXCEPTION 'approvals of % must be submitted by login %, not %', NEW.approver, owner, session_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.submitted_by := session_user;
    NEW.submitted_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER approval_insert BEFORE INSERT ON backfill.approvals FOR EACH ROW EXECUTE FUNCTION backfill.approval_insert();

CREATE FUNCTION backfill.approval_logged() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO backfill.audit_events (kind, payload) VALUES ('approval', jsonb_build_object(
        'approval_id', NEW.id, 'backfill', NEW.backfill, 'digest', NEW.digest, 'approver', NEW.approver,
        'environment', NEW.environment, 'purpose', NEW.purpose, 'reason', NEW.reason, 'expires_at', NEW.expires_at));
    RETURN NULL;
END $$;
CREATE TRIGGER approval_logged AFTER INSERT ON backfill.approvals FOR EACH ROW EXECUTE FUNCTION backfill.approval_logged();

-- Approver keys: added and revoked, never edited or deleted; both logged.
CREATE FUNCTION backfill.approver_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'approvers are never deleted; revoke % instead', OLD.name USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.added_by := session_user;
        NEW.added_at := now();
        NEW.revoked_by := NULL;
        NEW.revoked_at := NULL;
        INSERT INTO backfill.audit_events (kind, payload) VALUES ('approver_added',
            jsonb_build_object('approver', NEW.name, 'login', NEW.login, 'key_id', NEW.key_id));
        RETURN NEW;
    END IF;
    IF (NEW.name, NEW.login, NEW.public_key, NEW.key_id, NEW.added_by, NEW.added_at)
        IS DISTINCT FROM (OLD.name, OLD.login, OLD.public_key, OLD.key_id, OLD.added_by, OLD.added_at)
        OR OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL THEN
        RAISE EXCEPTION 'an approver can only be revoked, once' USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.revoked_by := session_user;
    NEW.revoked_at := now();
    INSERT INTO backfill.audit_events (kind, payload) VALUES ('approver_revoked',
        jsonb_build_object('approver', NEW.name, 'key_id', NEW.key_id));
    RETURN NEW;
END $$;
CREATE TRIGGER approver_change BEFORE INSERT OR UPDATE OR DELETE ON backfill.approvers FOR EACH ROW EXECUTE FUNCTION backfill.approver_change();

-- Roles: group roles (NOLOGIN) that logins are granted.
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['backfill_runner', 'backfill_approver', 'backfill_observer', 'backfill_admin'] LOOP
        -- Roles are cluster-wide: another database's ledger may have made
        -- them, and then an owner without CREATEROLE can init this one.
        CONTINUE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = r);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently
        END;
    END LOOP;
END $$;

REVOKE ALL ON SCHEMA backfill FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA backfill FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA backfill FROM PUBLIC;
GRANT USAGE ON SCHEMA backfill TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA backfill TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT EXECUTE ON FUNCTION backfill.audit_hash(bigint, timestamptz, bigint, text, text, jsonb, text) TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT INSERT, UPDATE ON backfill.runs TO backfill_runner;
GRANT INSERT ON backfill.dry_runs TO backfill_runner;
GRANT INSERT ON backfill.audit_events TO backfill_runner;
GRANT INSERT ON backfill.approvals TO backfill_approver;
GRANT INSERT ON backfill.approvers TO backfill_admin;
GRANT UPDATE (revoked_at, revoked_by) ON backfill.approvers TO backfill_admin;
