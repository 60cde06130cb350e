-- 006: the database is the enforcement point.
--
-- Before this migration every guardrail ran in the backfill binary, and the
-- runner login held the writes: INSERT/UPDATE on the ledger's tables and
-- UPDATE on the target tables. From here on:
--
--   * backfill_owner (NOLOGIN) owns schema backfill, its tables and
--     functions; no login may act as it (`backfill ledger check`), so neither
--     the login that ran `ledger init` nor the database owner can disable a
--     trigger or rewrite an event. Only a superuser can.
--   * backfill_writer (NOLOGIN) is the one role the DBA grants the target
--     tables' writes to. It owns backfill.prepare and the functions of
--     schema backfill_exec that prepare makes, one per statement, which run
--     a statement only when it is one the run's approvals name (by sha256),
--     inside a run that is running, held by the calling session, not paused
--     or cancelled.
--   * runner, approver, observer and admin hold SELECT on the ledger and
--     EXECUTE on the functions of their role; every change is a function
--     call that checks the state machine and writes its own audit events.
--
-- Custom SQLSTATEs (class BF) let the binary tell its refusals apart:
--   BF001 not approved          BF002 already done (run once)
--   BF003 held by a live session BF004 not held by this session
--   BF005 statement not approved BF006 paused
--   BF007 final (cancelled, completed, ...) BF008 checkpoint would go back
--   BF009 revert and run conflict BF010 malformed statement or argument

DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'ledger version 6 must be installed by a superuser: it gives the ledger to the NOLOGIN role backfill_owner, which no login (not the database owner, not the login running init) may act as'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Run bin/backfill ledger init as a superuser (docs/operating.md, section 2.1).';
    END IF;
END $$;

DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['backfill_owner', 'backfill_writer'] LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = r);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by another database's init
        END;
    END LOOP;
END $$;
-- The owner tells a live run's session from a dead one in pg_stat_activity,
-- which hides other logins' backend_start without this.
GRANT pg_read_all_stats TO backfill_owner;

-- The schema the approved SQL's unqualified names resolve in, pinned in
-- every function that runs it (a runner's temp table or search_path cannot
-- redirect it): set by the DBA with
--   UPDATE backfill.settings SET value = 'app' WHERE key = 'search_path'
-- as a superuser (docs/operating.md, section 2.3).
INSERT INTO backfill.settings (key, value) VALUES ('search_path', 'public') ON CONFLICT (key) DO NOTHING;
-- The fewest approvals any run needs, whatever its manifest says.
INSERT INTO backfill.settings (key, value) VALUES ('min_approvals', '1') ON CONFLICT (key) DO NOTHING;

-- Nobody but the functions below writes the ledger.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA backfill
    FROM PUBLIC, backfill_runner, backfill_approver, backfill_observer, backfill_admin;
REVOKE UPDATE (revoked_at, revoked_by) ON backfill.approvers FROM backfill_admin;

-- What the database derives from an approval's statement: the sha256 of
-- every SQL text the approved binary runs ([{name, role, sha256}], sorted by
-- name) and when it was issued. NULL in approvals made before version 6,
-- which therefore never count.
ALTER TABLE backfill.approvals ADD COLUMN statements jsonb;
ALTER TABLE backfill.approvals ADD COLUMN issued_at timestamptz;

-- The statements a run may execute, as the binary submitted them and the
-- approvals named them.
-- The keys of each batch's images, as text: a revert of the batch writes
-- only these (NULL in images kept before version 6: read from the images).
ALTER TABLE backfill.undo ADD COLUMN keys text[];
ALTER TABLE backfill.undo ALTER COLUMN keys SET STORAGE EXTERNAL;

CREATE TABLE backfill.run_statements (
    run_id bigint NOT NULL REFERENCES backfill.runs (id),
    name   text   NOT NULL,
    role   text   NOT NULL,
    sha256 text   NOT NULL,
    sql    text   NOT NULL,
    -- Where the keys are: the parameter ($n) binding the batch's keys (an
    -- array) of a write or RevertRead, the page's cursor parameter and its
    -- key column (1-based); 0: none. Approvals sign them with the sha256.
    key_param    integer NOT NULL DEFAULT 0,
    cursor_param integer NOT NULL DEFAULT 0,
    key_column   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX run_statements_sha ON backfill.run_statements (run_id, sha256);

-- Every process that ran a run: the login (session_user) and its claims.
CREATE TABLE backfill.attempts (
    run_id       bigint      NOT NULL REFERENCES backfill.runs (id),
    attempt      integer     NOT NULL,
    login        text        NOT NULL,
    os_user      text        NOT NULL,
    client_host  text        NOT NULL,
    approval_ids bigint[]    NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, attempt)
);

-- The sessions that hold a running run (its connection and its lanes'),
-- told apart from a later session with the same pid by backend_start.
CREATE TABLE backfill.sessions (
    run_id        bigint      NOT NULL REFERENCES backfill.runs (id),
    attempt       integer     NOT NULL,
    pid           integer     NOT NULL,
    backend_start timestamptz NOT NULL,
    login         text        NOT NULL,
    joined_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, pid, backend_start)
);

-- The writes of the batch a transaction is in, counted by its backfill_exec
-- functions and taken by backfill.record_batch: the rows a batch changed are
-- the database's count, never the binary's. A row lives only inside its
-- transaction.
-- keys are the keys the batch may write: those the approved ScopePage
-- returned after the lane's checkpoint (a run), or those of the image batch
-- being restored (undo_batch, a revert), as text.
CREATE UNLOGGED TABLE backfill.open_batches (
    run_id     bigint NOT NULL,
    lane       integer NOT NULL,
    txid       bigint NOT NULL,
    rows       bigint NOT NULL DEFAULT 0,
    keys       text[],
    undo_batch bigint,
    PRIMARY KEY (run_id, lane, txid)
);

-- A transaction that wrote rows through the ledger commits only once
-- record_batch took its open row: checked at commit (deferred), and again
-- after each write if the session makes the constraint immediate.
CREATE FUNCTION backfill.batch_recorded() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM backfill.open_batches o WHERE o.run_id = NEW.run_id AND o.lane = NEW.lane AND o.txid = NEW.txid AND o.rows > 0) THEN
        RAISE EXCEPTION 'a batch of run % wrote rows that no backfill.record_batch recorded: it cannot commit', NEW.run_id
            USING ERRCODE = 'BF012';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER open_batch_recorded AFTER INSERT OR UPDATE ON backfill.open_batches
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION backfill.batch_recorded();

ALTER TABLE backfill.runs ADD COLUMN attempt integer NOT NULL DEFAULT 1;
-- A run with one lane: its last batch came back short (the scope ended).
ALTER TABLE backfill.runs ADD COLUMN done boolean NOT NULL DEFAULT false;

-- The head of the audit chain: appends lock this row, which only the owner
-- may do (an advisory lock any login could take and hold).
CREATE TABLE backfill.audit_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO backfill.audit_head (seq, hash)
SELECT coalesce(max(seq), 0), coalesce((SELECT hash FROM backfill.audit_events ORDER BY seq DESC LIMIT 1), repeat('0', 64))
FROM backfill.audit_events;

CREATE OR REPLACE FUNCTION backfill.audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    last_seq  bigint;
    last_hash text;
BEGIN
    SELECT h.seq, h.hash INTO last_seq, last_hash FROM backfill.audit_head h FOR UPDATE;
    NEW.seq := last_seq + 1;
    NEW.prev_hash := last_hash;
    NEW.at := clock_timestamp();
    NEW.actor := session_user;
    NEW.payload := coalesce(NEW.payload, '{}');
    NEW.hash := backfill.audit_hash(NEW.seq, NEW.at, NEW.run_id, NEW.kind, NEW.actor, NEW.payload, NEW.prev_hash);
    UPDATE backfill.audit_head SET seq = NEW.seq, hash = NEW.hash;
    RETURN NEW;
END $$;

-- Identity columns never change, and a final status is final.
CREATE FUNCTION backfill.runs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'runs are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.id, NEW.backfill, NEW.digest, NEW.run_signature, NEW.purpose, NEW.params, NEW.db_user, NEW.os_user,
        NEW.client_host, NEW.code_version, NEW.source_commit, NEW.environment, NEW.approval_ids, NEW.started_at, NEW.parameters)
        IS DISTINCT FROM
       (OLD.id, OLD.backfill, OLD.digest, OLD.run_signature, OLD.purpose, OLD.params, OLD.db_user, OLD.os_user,
        OLD.client_host, OLD.code_version, OLD.source_commit, OLD.environment, OLD.approval_ids, OLD.started_at, OLD.parameters) THEN
        RAISE EXCEPTION 'a run''s identity (login, digest, run signature, approvals, start) never changes' USING ERRCODE = 'BF007';
    END IF;
    IF OLD.status IN ('completed', 'cancelled', 'failed_validation', 'refused') AND
       (NEW.status, NEW.cursor, NEW.scanned, NEW.changed, NEW.batches, NEW.control) IS DISTINCT FROM
       (OLD.status, OLD.cursor, OLD.scanned, OLD.changed, OLD.batches, OLD.control) THEN
        RAISE EXCEPTION 'run % is %, which is final', OLD.id, OLD.status USING ERRCODE = 'BF007';
    END IF;
    IF OLD.control = 'cancel' AND NEW.control <> 'cancel' THEN
        RAISE EXCEPTION 'run % was cancelled; a cancel is final', OLD.id USING ERRCODE = 'BF007';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER runs_guard BEFORE UPDATE OR DELETE ON backfill.runs FOR EACH ROW EXECUTE FUNCTION backfill.runs_guard();
CREATE TRIGGER batches_append_only BEFORE UPDATE OR DELETE ON backfill.batches FOR EACH ROW EXECUTE FUNCTION backfill.append_only();
CREATE TRIGGER undo_append_only BEFORE UPDATE OR DELETE ON backfill.undo FOR EACH ROW EXECUTE FUNCTION backfill.append_only();
CREATE TRIGGER dry_runs_append_only BEFORE UPDATE OR DELETE ON backfill.dry_runs FOR EACH ROW EXECUTE FUNCTION backfill.append_only();
CREATE TRIGGER run_statements_append_only BEFORE UPDATE OR DELETE ON backfill.run_statements FOR EACH ROW EXECUTE FUNCTION backfill.append_only();
CREATE TRIGGER attempts_append_only BEFORE UPDATE OR DELETE ON backfill.attempts FOR EACH ROW EXECUTE FUNCTION backfill.append_only();

------------------------------------------------------------------------------
-- Helpers (owner; not granted to any login). Those a batch calls many times
-- have no SET search_path of their own, which costs a settings swap on every
-- call: they run only under the ledger's own functions, whose search_path is
-- pinned with pg_catalog first (nothing in public shadows a built-in).

CREATE FUNCTION backfill._sha256(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex')
$$;

CREATE FUNCTION backfill._setting(k text) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT value FROM backfill.settings WHERE key = k
$$;

CREATE FUNCTION backfill._event(run bigint, kind text, payload jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO backfill.audit_events (run_id, kind, payload) VALUES (run, kind, coalesce(payload, '{}'))
$$;

-- Whether a session (pid, backend_start) is alive.
CREATE FUNCTION backfill._alive(p integer, started timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT FROM pg_stat_get_activity(p) a WHERE a.backend_start = started)
$$;

CREATE FUNCTION backfill._my_start() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())
$$;

-- Whether any session of the run's current attempt is alive.
CREATE FUNCTION backfill._live(run bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT FROM backfill.sessions s JOIN backfill.runs r ON r.id = s.run_id AND r.attempt = s.attempt
                   WHERE s.run_id = run AND backfill._alive(s.pid, s.backend_start))
$$;

-- The run row, locked, when the calling session holds it: the run is
-- running and this session joined its current attempt. Raises otherwise.
CREATE FUNCTION backfill._held(run bigint) RETURNS backfill.runs
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    r backfill.runs;
BEGIN
    SELECT * INTO r FROM backfill.runs WHERE id = run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no run %', run USING ERRCODE = 'BF004';
    END IF;
    IF r.status <> 'running' THEN
        RAISE EXCEPTION 'run % is %, not running', run, r.status USING ERRCODE = 'BF007';
    END IF;
    IF NOT EXISTS (SELECT FROM backfill.sessions s WHERE s.run_id = run AND s.attempt = r.attempt
                   AND s.pid = pg_backend_pid() AND s.backend_start = backfill._my_start()) THEN
        RAISE EXCEPTION 'this session (login %) does not hold run %', session_user, run
            USING ERRCODE = 'BF004', HINT = 'Only sessions of the login that started or resumed the run write it, once they joined it (a lane, a reconnect).';
    END IF;
    RETURN r;
END $$;

-- Strict JSON: no object in the document has two keys that are equal when
-- lowercased (duplicates and case variants).
CREATE FUNCTION backfill._strict(j json) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k text;
    v json;
BEGIN
    CASE json_typeof(j)
    WHEN 'object' THEN
        IF (SELECT count(*) <> count(DISTINCT lower(key)) FROM json_object_keys(j) AS key) THEN
            RETURN false;
        END IF;
        FOR k, v IN SELECT * FROM json_each(j) LOOP
            IF NOT backfill._strict(v) THEN
                RETURN false;
            END IF;
        END LOOP;
    WHEN 'array' THEN
        FOR v IN SELECT * FROM json_array_elements(j) LOOP
            IF NOT backfill._strict(v) THEN
                RETURN false;
            END IF;
        END LOOP;
    ELSE
        NULL;
    END CASE;
    RETURN true;
END $$;

-- An approver key is an ECDSA P-256 public key (PEM, SubjectPublicKeyInfo).
CREATE FUNCTION backfill._p256(pem text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    der bytea;
BEGIN
    IF pem !~ '^\s*-----BEGIN PUBLIC KEY-----' THEN
        RETURN false;
    END IF;
    der := decode(regexp_replace(regexp_replace(pem, '-----[A-Z ]+-----', '', 'g'), '\s', '', 'g'), 'base64');
    RETURN length(der) = 91 AND substring(der FROM 1 FOR 26) = '\x3059301306072a8648ce3d020106082a8648ce3d030107034200'::bytea;
EXCEPTION WHEN others THEN
    RETURN false;
END $$;

------------------------------------------------------------------------------
-- Approver keys (admin).

CREATE FUNCTION backfill.add_approver(name text, login text, public_key text, key_id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT backfill._p256(public_key) THEN
        RAISE EXCEPTION 'approver % has a key that is not an ECDSA P-256 public key; only P-256 keys are accepted', name
            USING ERRCODE = 'BF010', HINT = 'Make the key with backfill keys generate or cosign generate-key-pair.';
    END IF;
    INSERT INTO backfill.approvers (name, login, public_key, key_id) VALUES (name, login, public_key, key_id);
END $$;

CREATE FUNCTION backfill.revoke_approver(approver text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE backfill.approvers SET revoked_at = now() WHERE name = approver;
    RETURN FOUND;
END $$;

------------------------------------------------------------------------------
-- Approvals (approver): the row is derived from the signed statement.

CREATE FUNCTION backfill.submit_approval(statement text, signature text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j       json;
    p       json;
    subj    json;
    issued  timestamptz;
    expires timestamptz;
    stmts   jsonb;
    id      bigint;
    bad     text;
BEGIN
    BEGIN
        j := statement::json; -- refuses trailing data
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'the approval statement is not one JSON document: %', SQLERRM USING ERRCODE = 'BF010';
    END;
    IF json_typeof(j) <> 'object' OR NOT backfill._strict(j) THEN
        RAISE EXCEPTION 'the approval statement has duplicate or case-variant keys' USING ERRCODE = 'BF010';
    END IF;
    SELECT string_agg(k, ', ') INTO bad FROM json_object_keys(j) AS k
    WHERE k NOT IN ('_type', 'subject', 'predicateType', 'predicate');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'the approval statement has unknown keys: %', bad USING ERRCODE = 'BF010';
    END IF;
    p := j->'predicate';
    IF j->>'_type' IS DISTINCT FROM 'https://in-toto.io/Statement/v1'
       OR j->>'predicateType' IS DISTINCT FROM 'https://github.com/runonce/backfill/approval/v1'
       OR json_typeof(p) IS DISTINCT FROM 'object' OR json_typeof(j->'subject') IS DISTINCT FROM 'array'
       OR json_array_length(j->'subject') <> 1 THEN
        RAISE EXCEPTION 'not a backfill approval statement' USING ERRCODE = 'BF010';
    END IF;
    SELECT string_agg(k, ', ') INTO bad FROM json_object_keys(p) AS k
    WHERE k NOT IN ('backfill', 'run_signature', 'environment', 'purpose', 'params', 'evidence', 'statements',
                    'approver', 'reason', 'issued_at', 'expires_at');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'the approval statement''s predicate has unknown keys: %', bad USING ERRCODE = 'BF010';
    END IF;
    subj := j->'subject'->0;
    IF (subj->'digest'->>'sha256') !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'the approval statement''s subject has no sha256 digest' USING ERRCODE = 'BF010';
    END IF;
    BEGIN
        issued := (p->>'issued_at')::timestamptz;
        expires := (p->>'expires_at')::timestamptz;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'the approval statement''s times are not timestamps' USING ERRCODE = 'BF010';
    END;
    IF issued IS NULL OR expires IS NULL OR expires <= issued OR expires - issued > interval '30 days' THEN
        RAISE EXCEPTION 'an approval is valid for at most 30 days from its issue (issued %, expires %)', issued, expires
            USING ERRCODE = 'BF010';
    END IF;
    IF issued > now() + interval '5 minutes' THEN
        RAISE EXCEPTION 'the approval was issued in the future (%), by the database''s clock', issued USING ERRCODE = 'BF010';
    END IF;
    IF expires <= now() THEN
        RAISE EXCEPTION 'the approval expired at %', expires USING ERRCODE = 'BF010';
    END IF;
    IF json_typeof(p->'statements') IS DISTINCT FROM 'array' OR json_array_length(p->'statements') = 0 THEN
        RAISE EXCEPTION 'the approval statement does not name the sha256 of the SQL the binary runs; approve it with bin/backfill of this version'
            USING ERRCODE = 'BF010';
    END IF;
    SELECT jsonb_agg(jsonb_build_object('name', e->>'name', 'role', e->>'role', 'sha256', e->>'sha256',
            'key_param', coalesce((e->>'key_param')::integer, 0), 'cursor_param', coalesce((e->>'cursor_param')::integer, 0),
            'key_column', coalesce((e->>'key_column')::integer, 0)) ORDER BY e->>'name')
    INTO stmts FROM json_array_elements(p->'statements') e;
    IF EXISTS (SELECT FROM jsonb_array_elements(stmts) e
               WHERE coalesce(e->>'name', '') = '' OR coalesce(e->>'role', '') = '' OR coalesce(e->>'sha256', '') !~ '^[0-9a-f]{64}$') THEN
        RAISE EXCEPTION 'each statement an approval names needs a name, a role and a sha256' USING ERRCODE = 'BF010';
    END IF;
    INSERT INTO backfill.approvals (backfill, digest, run_signature, environment, purpose, approver, reason, expires_at,
                                    statement, signature, params, statements, issued_at)
    VALUES (p->>'backfill', subj->'digest'->>'sha256', p->>'run_signature', p->>'environment', coalesce(p->>'purpose', 'execute'),
            p->>'approver', p->>'reason', expires, statement, signature, coalesce((p->'params')::jsonb, '{}'), stmts, issued)
    RETURNING approvals.id INTO id;
    RETURN id;
END $$;

------------------------------------------------------------------------------
-- Runs (runner).

-- The approvals that count for a run: the ledger's environment, this
-- digest, run signature, purpose and parameter values, naming exactly the
-- statements submitted, unexpired, of an approver not revoked whose login is
-- not the caller's. One per approver login (the newest).
CREATE FUNCTION backfill._counting(dig text, sig text, purp text, vals jsonb, stmts jsonb)
RETURNS TABLE (id bigint, login text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT DISTINCT ON (k.login) a.id, k.login
    FROM backfill.approvals a JOIN backfill.approvers k ON k.name = a.approver
    WHERE a.digest = dig AND a.run_signature = sig AND a.purpose = purp AND a.params = vals
      AND a.environment = backfill._setting('environment')
      AND a.statements = stmts
      AND a.expires_at > now() AND a.expires_at - a.issued_at <= interval '30 days'
      AND k.revoked_at IS NULL AND k.login <> session_user AND backfill._p256(k.public_key)
    ORDER BY k.login, a.id DESC
$$;

-- _shadowers lists the logins (superusers aside) that can create objects in
-- a schema of the ledger's search_path: the functions of backfill_exec run
-- the approved SQL there as backfill_writer, and a function or operator
-- created in such a schema could be chosen over the built-in one the SQL
-- calls, and run as the writer.
CREATE FUNCTION backfill._shadowers() RETURNS TABLE (login text, schema text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.rolname::text, n.nspname::text
    FROM pg_roles r, pg_namespace n
    WHERE n.nspname = ANY (string_to_array(replace(backfill._setting('search_path'), ' ', ''), ','))
      AND r.rolcanlogin AND NOT r.rolsuper AND has_schema_privilege(r.oid, n.oid, 'CREATE')
    ORDER BY 1, 2
$$;

CREATE FUNCTION backfill._trusted_path() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text;
BEGIN
    SELECT string_agg(format('%s in schema %s', login, schema), ', ') INTO who FROM backfill._shadowers();
    IF who IS NOT NULL THEN
        RAISE EXCEPTION 'logins can create objects where the approved SQL runs as backfill_writer (%): a superuser must own those schemas and no login may CREATE in them', who
            USING ERRCODE = 'BF013', HINT = 'e.g. ALTER SCHEMA public OWNER TO postgres; REVOKE CREATE ON SCHEMA public FROM PUBLIC (docs/operating.md, section 2.3).';
    END IF;
END $$;

-- start_run starts a run, or resumes the unfinished run of the same run
-- signature, purpose and parameter values when no session of it is alive.
-- statements is [{name, role, sql}] of every statement the binary runs;
-- required is the approvals its manifest's risk needs.
CREATE FUNCTION backfill.start_run(backfill_name text, digest text, run_signature text, purpose text, params jsonb,
    statements jsonb, required integer, parameters jsonb, os_user text, client_host text, code_version text,
    source_commit text, matched bigint)
RETURNS TABLE (run_id bigint, resumed boolean, approval_ids bigint[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    env     text := backfill._setting('environment');
    stmts   jsonb;
    ids     bigint[];
    logins  text[];
    need    integer;
    prev    backfill.runs;
    r_id    bigint;
    n       integer;
BEGIN
    PERFORM backfill._trusted_path();
    IF purpose <> 'execute' AND purpose !~ '^revert:[0-9]+$' THEN
        RAISE EXCEPTION 'purpose % is neither execute nor revert:RUN', purpose USING ERRCODE = 'BF010';
    END IF;
    params := coalesce(params, '{}');
    IF json_typeof(statements::json) IS DISTINCT FROM 'array' OR jsonb_array_length(statements) = 0 THEN
        RAISE EXCEPTION 'a run names the statements it runs' USING ERRCODE = 'BF010';
    END IF;
    SELECT jsonb_agg(jsonb_build_object('name', e->>'name', 'role', e->>'role', 'sha256', backfill._sha256(e->>'sql'),
            'key_param', coalesce((e->>'key_param')::integer, 0), 'cursor_param', coalesce((e->>'cursor_param')::integer, 0),
            'key_column', coalesce((e->>'key_column')::integer, 0)) ORDER BY e->>'name')
    INTO stmts FROM jsonb_array_elements(statements) e;
    -- The database checks each batch's keys: it must know where they are.
    IF EXISTS (SELECT FROM jsonb_array_elements(stmts) e WHERE
            (e->>'role' = 'page' AND ((e->>'cursor_param')::integer < 1 OR (e->>'key_column')::integer < 1))
         OR (e->>'role' IN ('apply', 'revert_read', 'revert_insert', 'revert_delete') AND (e->>'key_param')::integer < 1)) THEN
        RAISE EXCEPTION 'the binary does not say where its statements bind the batch''s keys; rebuild it with this version of bin/backfill'
            USING ERRCODE = 'BF010';
    END IF;

    -- Run once. Two starts at once: the unique indexes refuse the second.
    SELECT * INTO prev FROM backfill.runs r
    WHERE r.run_signature = start_run.run_signature AND r.purpose = start_run.purpose AND r.params = start_run.params
      AND r.status IN ('completed', 'cancelled', 'failed_validation') ORDER BY r.id DESC LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'run % of this backfill is % (run once)', prev.id, prev.status USING ERRCODE = 'BF002';
    END IF;
    IF purpose = 'execute' AND EXISTS (SELECT FROM backfill.runs r WHERE r.run_signature = start_run.run_signature
            AND r.purpose LIKE 'revert:%' AND r.params = start_run.params AND r.status <> 'refused') THEN
        RAISE EXCEPTION 'a revert of this backfill has started; the run cannot go on' USING ERRCODE = 'BF009';
    END IF;
    IF purpose LIKE 'revert:%' AND NOT EXISTS (SELECT FROM backfill.runs r WHERE r.id = substr(start_run.purpose, 8)::bigint
            AND r.run_signature = start_run.run_signature AND r.purpose = 'execute' AND r.params = start_run.params
            AND r.status <> 'refused') THEN
        RAISE EXCEPTION 'run % is not a run of this backfill with these values that wrote rows', substr(start_run.purpose, 8) USING ERRCODE = 'BF009';
    END IF;
    IF purpose LIKE 'revert:%' AND backfill._live(substr(start_run.purpose, 8)::bigint) THEN
        RAISE EXCEPTION 'the run this would revert is running; wait for it to stop, or cancel it' USING ERRCODE = 'BF009';
    END IF;

    -- Approvals, by the server's clock.
    SELECT array_agg(c.id ORDER BY c.id), array_agg(c.login) INTO ids, logins
    FROM backfill._counting(digest, run_signature, purpose, params, stmts) c;
    need := greatest(coalesce(required, 1), coalesce(backfill._setting('min_approvals')::integer, 1), 1);
    n := coalesce(array_length(ids, 1), 0);
    IF n < need THEN
        RAISE EXCEPTION 'the database counts % of % approvals needed for digest % in environment % (distinct approver logins other than %, unexpired, naming these statements and values)',
            n, need, digest, env, session_user USING ERRCODE = 'BF001';
    END IF;

    SELECT * INTO prev FROM backfill.runs r
    WHERE r.run_signature = start_run.run_signature AND r.purpose = start_run.purpose AND r.params = start_run.params
      AND r.status IN ('running', 'failed', 'interrupted', 'partial') FOR UPDATE;
    IF FOUND THEN
        IF prev.status = 'running' AND backfill._live(prev.id) THEN
            RAISE EXCEPTION 'run % is running in another session', prev.id USING ERRCODE = 'BF003',
                HINT = 'Wait for it, or stop that process; a dead run can be resumed.';
        END IF;
        IF prev.digest <> start_run.digest THEN
            RAISE EXCEPTION 'run % was started by binary sha256:%; only that binary resumes it', prev.id, prev.digest
                USING ERRCODE = 'BF009';
        END IF;
        IF prev.control = 'cancel' THEN
            UPDATE backfill.runs SET status = 'cancelled', stop_reason = 'cancelled', message = 'cancelled by an operator',
                updated_at = now(), finished_at = now() WHERE id = prev.id;
            PERFORM backfill._event(prev.id, 'finished', jsonb_build_object('status', 'cancelled', 'stop_reason', 'cancelled',
                'message', 'cancelled by an operator while no process ran it'));
            RETURN; -- the caller sees no row: cancelled
        END IF;
        UPDATE backfill.runs SET status = 'running', stop_reason = NULL, message = NULL, resumes = resumes + 1,
            attempt = attempt + 1, updated_at = now(), finished_at = NULL,
            control = CASE WHEN control = 'pause' AND coalesce((SELECT (e.payload->>'canary')::boolean
                FROM backfill.audit_events e WHERE e.run_id = prev.id AND e.kind = 'control' ORDER BY e.seq DESC LIMIT 1), false)
                THEN 'pause' ELSE 'run' END
        WHERE id = prev.id;
        INSERT INTO backfill.attempts (run_id, attempt, login, os_user, client_host, approval_ids)
        VALUES (prev.id, prev.attempt + 1, session_user, os_user, client_host, ids);
        -- A run started before ledger version 6 has no statements recorded:
        -- the same binary (digest) resumes it with its approved ones.
        INSERT INTO backfill.run_statements (run_id, name, role, sha256, sql, key_param, cursor_param, key_column)
        SELECT prev.id, e->>'name', e->>'role', backfill._sha256(e->>'sql'), e->>'sql', coalesce((e->>'key_param')::integer, 0),
            coalesce((e->>'cursor_param')::integer, 0), coalesce((e->>'key_column')::integer, 0)
        FROM jsonb_array_elements(statements) e
        WHERE NOT EXISTS (SELECT FROM backfill.run_statements t WHERE t.run_id = prev.id);
        INSERT INTO backfill.sessions (run_id, attempt, pid, backend_start, login)
        VALUES (prev.id, prev.attempt + 1, pg_backend_pid(), backfill._my_start(), session_user);
        PERFORM backfill._event(prev.id, 'resumed', jsonb_build_object('from_status', prev.status, 'cursor', prev.cursor,
            'os_user', os_user, 'client_host', client_host, 'parameters', parameters, 'params', params,
            'attempt', prev.attempt + 1, 'approval_ids', to_jsonb(ids)));
        RETURN QUERY SELECT prev.id, true, ids;
        RETURN;
    END IF;

    INSERT INTO backfill.runs (backfill, digest, run_signature, purpose, status, parameters, os_user, client_host,
        code_version, source_commit, environment, approval_ids, matched, params)
    VALUES (backfill_name, digest, run_signature, purpose, 'running', coalesce(parameters, '{}'), os_user, client_host,
        code_version, source_commit, env, ids, matched, params)
    RETURNING id INTO r_id;
    INSERT INTO backfill.run_statements (run_id, name, role, sha256, sql, key_param, cursor_param, key_column)
    SELECT r_id, e->>'name', e->>'role', backfill._sha256(e->>'sql'), e->>'sql', coalesce((e->>'key_param')::integer, 0),
        coalesce((e->>'cursor_param')::integer, 0), coalesce((e->>'key_column')::integer, 0)
    FROM jsonb_array_elements(statements) e;
    INSERT INTO backfill.attempts (run_id, attempt, login, os_user, client_host, approval_ids)
    VALUES (r_id, 1, session_user, os_user, client_host, ids);
    INSERT INTO backfill.sessions (run_id, attempt, pid, backend_start, login)
    VALUES (r_id, 1, pg_backend_pid(), backfill._my_start(), session_user);
    PERFORM backfill._event(r_id, 'started', jsonb_build_object('backfill', backfill_name, 'digest', digest,
        'run_signature', run_signature, 'purpose', purpose, 'os_user', os_user, 'client_host', client_host,
        'approval_ids', to_jsonb(ids), 'parameters', parameters, 'params', params, 'statements', stmts));
    RETURN QUERY SELECT r_id, false, ids;
END $$;

-- join_run adds the calling session to the run its login holds: a lane's
-- connection, or the run's own after a lost connection.
CREATE FUNCTION backfill.join_run(run bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r backfill.runs;
BEGIN
    SELECT * INTO r FROM backfill.runs WHERE id = run FOR UPDATE;
    IF NOT FOUND OR r.status <> 'running' THEN
        RAISE EXCEPTION 'run % is not running', run USING ERRCODE = 'BF007';
    END IF;
    IF (SELECT a.login FROM backfill.attempts a WHERE a.run_id = run AND a.attempt = r.attempt) IS DISTINCT FROM session_user THEN
        RAISE EXCEPTION 'run % is held by another login', run USING ERRCODE = 'BF004';
    END IF;
    INSERT INTO backfill.sessions (run_id, attempt, pid, backend_start, login)
    VALUES (run, r.attempt, pg_backend_pid(), backfill._my_start(), session_user) ON CONFLICT DO NOTHING;
END $$;

-- refuse_run records a refused attempt as its own run row, and logs it.
CREATE FUNCTION backfill.refuse_run(backfill_name text, digest text, run_signature text, purpose text, params jsonb,
    parameters jsonb, os_user text, client_host text, code_version text, source_commit text, stop_reason text, message text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r_id bigint;
BEGIN
    INSERT INTO backfill.runs (backfill, digest, run_signature, purpose, status, stop_reason, message, parameters, os_user,
        client_host, code_version, source_commit, environment, params, finished_at)
    VALUES (backfill_name, digest, run_signature, coalesce(purpose, 'execute'), 'refused', stop_reason, message, coalesce(parameters, '{}'),
        os_user, client_host, code_version, source_commit, backfill._setting('environment'), coalesce(params, '{}'), now())
    RETURNING id INTO r_id;
    PERFORM backfill._event(r_id, 'refused', jsonb_build_object('backfill', backfill_name, 'digest', digest, 'stop_reason', stop_reason,
        'message', message, 'os_user', os_user, 'client_host', client_host, 'params', coalesce(params, '{}')));
    RETURN r_id;
END $$;

-- The events a runner's process adds to the run it holds, besides those the
-- functions write themselves.
CREATE FUNCTION backfill.run_event(run bigint, kind text, payload jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF kind NOT IN ('preflight', 'validated', 'reconciled', 'adaptive') THEN
        RAISE EXCEPTION 'a run does not log % events itself', kind USING ERRCODE = 'BF010';
    END IF;
    PERFORM backfill._held(run);
    PERFORM backfill._event(run, kind, payload);
END $$;

-- create_lanes fixes the lanes of a run before its first batch.
CREATE FUNCTION backfill.create_lanes(run bigint, lanes jsonb, payload jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r backfill.runs := backfill._held(run);
BEGIN
    IF r.batches > 0 OR EXISTS (SELECT FROM backfill.lanes l WHERE l.run_id = run) THEN
        RAISE EXCEPTION 'run % already has batches or lanes', run USING ERRCODE = 'BF008';
    END IF;
    INSERT INTO backfill.lanes (run_id, lane, after, until)
    SELECT run, (e->>'lane')::integer, nullif(e->'after', 'null'::jsonb), nullif(e->'until', 'null'::jsonb) FROM jsonb_array_elements(lanes) e;
    PERFORM backfill._event(run, 'lanes', payload);
END $$;

-- lane_done marks a lane whose last page held no rows of it; for a run
-- with one lane (lane 0, no rows in backfill.lanes), the run's scope.
CREATE FUNCTION backfill.lane_done(run bigint, lane integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM backfill._held(run);
    IF EXISTS (SELECT FROM backfill.lanes l WHERE l.run_id = run) THEN
        UPDATE backfill.lanes l SET done = true WHERE l.run_id = run AND l.lane = lane_done.lane;
    ELSIF lane = 0 THEN
        UPDATE backfill.runs SET done = true WHERE id = run;
    END IF;
END $$;

-- Whether key a is after key b in key order (JSON numbers or strings).
CREATE FUNCTION backfill._after(a jsonb, b jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN b IS NULL OR jsonb_typeof(b) = 'null' THEN true
        WHEN jsonb_typeof(a) = 'number' AND jsonb_typeof(b) = 'number' THEN (a #>> '{}')::numeric > (b #>> '{}')::numeric
        WHEN jsonb_typeof(a) = 'string' AND jsonb_typeof(b) = 'string' THEN (a #>> '{}') > (b #>> '{}')
        ELSE false END
$$;

-- record_batch records one committed batch in its transaction and returns
-- its number: the progress row, the run's counters, the lane's checkpoint
-- (forward only, from the cursor the batch started at), the before-images
-- and the audit event. The rows it changed are those its backfill_exec
-- functions counted
-- in this transaction.
CREATE FUNCTION backfill.record_batch(run bigint, lane integer, from_cursor jsonb, cursor jsonb, last boolean,
    scanned integer, intended integer, size integer, attempts integer, duration_ms double precision,
    images text, image_keys text[], kind text, payload jsonb)
RETURNS TABLE (batch bigint, changed bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r          backfill.runs := backfill._held(run);
    n          bigint;
    num        bigint;
    multi      boolean;
    read_keys  text[];
    read_undo  bigint;
BEGIN
    IF r.control = 'cancel' THEN
        RAISE EXCEPTION 'run % was cancelled', run USING ERRCODE = 'BF007';
    END IF;
    IF kind NOT IN ('batch', 'revert_batch') OR (kind = 'batch') <> (r.purpose = 'execute') THEN
        RAISE EXCEPTION 'a % run does not record % events', r.purpose, kind USING ERRCODE = 'BF010';
    END IF;
    DELETE FROM backfill.open_batches o WHERE o.run_id = run AND o.lane = record_batch.lane AND o.txid = txid_current()
    RETURNING o.rows, o.keys, o.undo_batch INTO n, read_keys, read_undo;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % lane % read no page in this transaction' , run, lane USING ERRCODE = 'BF011';
    END IF;
    IF r.purpose = 'execute' AND NOT (cursor #>> '{}' = ANY (read_keys)) THEN
        RAISE EXCEPTION 'batch cursor % is not a key the batch read', cursor USING ERRCODE = 'BF011';
    END IF;
    IF r.purpose <> 'execute' AND (cursor #>> '{}') IS DISTINCT FROM read_undo::text THEN
        RAISE EXCEPTION 'revert batch cursor % is not the image batch it restored (%)', cursor, read_undo USING ERRCODE = 'BF011';
    END IF;
    IF from_cursor IS NOT NULL AND jsonb_typeof(from_cursor) = 'null' THEN
        from_cursor := NULL;
    END IF;
    IF NOT backfill._after(cursor, from_cursor) THEN
        RAISE EXCEPTION 'batch cursor % is not after %', cursor, from_cursor USING ERRCODE = 'BF008';
    END IF;
    multi := EXISTS (SELECT FROM backfill.lanes l WHERE l.run_id = run);
    IF multi THEN
        UPDATE backfill.lanes l SET cursor = record_batch.cursor, done = last
        WHERE l.run_id = run AND l.lane = record_batch.lane AND NOT l.done
          AND coalesce(l.cursor, l.after, 'null'::jsonb) = coalesce(from_cursor, 'null'::jsonb)
          AND (l.until IS NULL OR jsonb_typeof(l.until) = 'null' OR NOT backfill._after(record_batch.cursor, l.until)
               OR last);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'lane %''s checkpoint is no longer %: another process is writing this run', lane, from_cursor
                USING ERRCODE = 'BF008';
        END IF;
    ELSIF lane <> 0 OR coalesce(r.cursor, 'null'::jsonb) IS DISTINCT FROM coalesce(from_cursor, 'null'::jsonb) THEN
        RAISE EXCEPTION 'run %''s checkpoint is %, not %', run, r.cursor, from_cursor USING ERRCODE = 'BF008';
    END IF;
    UPDATE backfill.runs SET cursor = record_batch.cursor, scanned = runs.scanned + record_batch.scanned,
        changed = runs.changed + n, batches = batches + 1, updated_at = now(), done = (runs.done OR (last AND NOT multi))
    WHERE id = run RETURNING batches INTO num;
    INSERT INTO backfill.batches (run_id, batch, lane, cursor, scanned, intended, changed, size, attempts, duration_ms, committed_at)
    VALUES (run, num, lane, cursor, scanned, intended, n, size, attempts, duration_ms, clock_timestamp());
    IF images IS NOT NULL THEN
        IF r.purpose <> 'execute' THEN
            RAISE EXCEPTION 'only a run keeps before-images' USING ERRCODE = 'BF010';
        END IF;
        -- Images only of keys this batch read: a revert of the batch writes
        -- only image_keys (next_undo), so no other row.
        IF image_keys IS NULL OR EXISTS (SELECT unnest(image_keys) EXCEPT SELECT unnest(read_keys)) THEN
            RAISE EXCEPTION 'the batch''s images name a key it did not read' USING ERRCODE = 'BF011';
        END IF;
        INSERT INTO backfill.undo (run_id, batch, items, keys) VALUES (run, num, images::json, image_keys);
    END IF;
    PERFORM backfill._event(run, kind, coalesce(payload, '{}') || jsonb_build_object('batch', num, 'lane', lane,
        'cursor', cursor, 'scanned', scanned, 'intended', intended, 'changed', n));
    RETURN QUERY SELECT num, n;
END $$;

-- record_skipped records the rows a revert left alone.
CREATE FUNCTION backfill.record_skipped(run bigint, items jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r backfill.runs := backfill._held(run);
BEGIN
    IF r.purpose NOT LIKE 'revert:%' THEN
        RAISE EXCEPTION 'only a revert skips rows' USING ERRCODE = 'BF010';
    END IF;
    INSERT INTO backfill.revert_skipped (run_id, key, why, current)
    SELECT run, e->'key', e->>'why', e->'current' FROM jsonb_array_elements(items) e
    ON CONFLICT DO NOTHING;
END $$;

-- pause_after_canary pauses the run in its canary batch's transaction.
CREATE FUNCTION backfill.pause_after_canary(run bigint, batch bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM backfill._held(run);
    UPDATE backfill.runs SET control = 'pause', control_by = session_user, updated_at = now() WHERE id = run;
    PERFORM backfill._event(run, 'control', jsonb_build_object('control', 'pause', 'canary', true, 'batch', batch));
END $$;

-- finish_run ends a running run. The session that holds it finishes it; so
-- may its login from a new session when no session of the run is alive (the
-- connection was lost). completed needs every lane done.
CREATE FUNCTION backfill.finish_run(run bigint, status text, stop_reason text, message text, payload jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r backfill.runs;
BEGIN
    SELECT * INTO r FROM backfill.runs WHERE id = run FOR UPDATE;
    IF NOT FOUND OR r.status <> 'running' THEN
        RAISE EXCEPTION 'run % is not running', run USING ERRCODE = 'BF007';
    END IF;
    IF NOT EXISTS (SELECT FROM backfill.sessions s WHERE s.run_id = run AND s.attempt = r.attempt
                   AND s.pid = pg_backend_pid() AND s.backend_start = backfill._my_start()) THEN
        IF (SELECT a.login FROM backfill.attempts a WHERE a.run_id = run AND a.attempt = r.attempt) IS DISTINCT FROM session_user
           OR backfill._live(run) THEN
            RAISE EXCEPTION 'this session does not hold run %', run USING ERRCODE = 'BF004';
        END IF;
    END IF;
    IF status NOT IN ('completed', 'failed', 'interrupted', 'partial', 'cancelled', 'failed_validation') THEN
        RAISE EXCEPTION 'a run does not end as %', status USING ERRCODE = 'BF010';
    END IF;
    IF status = 'cancelled' AND r.control <> 'cancel' THEN
        RAISE EXCEPTION 'run % was not cancelled', run USING ERRCODE = 'BF010';
    END IF;
    IF status IN ('completed', 'failed_validation') AND r.purpose = 'execute' AND NOT (
        (EXISTS (SELECT FROM backfill.lanes l WHERE l.run_id = run) AND NOT EXISTS (SELECT FROM backfill.lanes l WHERE l.run_id = run AND NOT l.done))
        OR (NOT EXISTS (SELECT FROM backfill.lanes l WHERE l.run_id = run) AND (r.done OR r.batches = 0))) THEN
        RAISE EXCEPTION 'run % has not reached the end of its scope', run USING ERRCODE = 'BF008';
    END IF;
    UPDATE backfill.runs SET status = finish_run.status, stop_reason = nullif(finish_run.stop_reason, ''),
        message = nullif(finish_run.message, ''), updated_at = now(), finished_at = now() WHERE id = run;
    DELETE FROM backfill.sessions s WHERE s.run_id = run;
    PERFORM backfill._event(run, 'finished', coalesce(payload, '{}') || jsonb_build_object('status', status,
        'stop_reason', coalesce(stop_reason, ''), 'message', coalesce(message, '')));
END $$;

-- set_control pauses, resumes or cancels a run. A cancel is final; a cancel
-- of a run no process holds ends it at once.
CREATE FUNCTION backfill.set_control(run bigint, control text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r backfill.runs;
BEGIN
    IF control NOT IN ('run', 'pause', 'cancel') THEN
        RAISE EXCEPTION 'control % is not run, pause or cancel', control USING ERRCODE = 'BF010';
    END IF;
    SELECT * INTO r FROM backfill.runs WHERE id = run FOR UPDATE;
    IF NOT FOUND OR r.status NOT IN ('running', 'failed', 'interrupted', 'partial') OR (r.status <> 'running' AND control <> 'cancel') THEN
        RAISE EXCEPTION 'run % is not running', run USING ERRCODE = 'BF007';
    END IF;
    IF r.control = 'cancel' THEN
        RAISE EXCEPTION 'run % was cancelled; a cancel is final', run USING ERRCODE = 'BF007';
    END IF;
    UPDATE backfill.runs SET control = set_control.control, control_by = session_user, updated_at = now() WHERE id = run;
    PERFORM backfill._event(run, 'control', jsonb_build_object('control', control));
    IF control = 'cancel' AND (r.status <> 'running' OR NOT backfill._live(run)) THEN
        UPDATE backfill.runs SET status = 'cancelled', stop_reason = 'cancelled', message = 'cancelled by an operator',
            updated_at = now(), finished_at = now() WHERE id = run;
        PERFORM backfill._event(run, 'finished', jsonb_build_object('status', 'cancelled', 'stop_reason', 'cancelled',
            'message', 'cancelled by an operator while no process ran it'));
    END IF;
END $$;

-- run_live says whether a session of the run's current attempt is alive.
CREATE FUNCTION backfill.run_live(run bigint) RETURNS boolean
LANGUAGE sql SECURITY DEFINER STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT backfill._live(run)
$$;

-- save_dry_run stores a dry-run report and logs its sha256.
CREATE FUNCTION backfill.save_dry_run(backfill_name text, digest text, run_signature text, report jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d_id bigint;
    sum  text;
BEGIN
    INSERT INTO backfill.dry_runs (backfill, digest, run_signature, report) VALUES (backfill_name, digest, run_signature, report)
    RETURNING id, backfill._sha256(dry_runs.report::text) INTO d_id, sum;
    PERFORM backfill._event(NULL, 'dry_run', jsonb_build_object('dry_run_id', d_id, 'backfill', backfill_name, 'digest', digest,
        'report_sha256', sum));
    RETURN d_id;
END $$;

-- acknowledge records that a person saw a finished run's outcome.
CREATE FUNCTION backfill.acknowledge(run bigint, payload jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM backfill.runs WHERE id = run) THEN
        RAISE EXCEPTION 'there is no run %', run USING ERRCODE = 'BF010';
    END IF;
    PERFORM backfill._event(run, 'acknowledged', payload);
END $$;

-- archived records that a run was archived, with the archive's checksums.
CREATE FUNCTION backfill.archived(run bigint, payload jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM backfill.runs WHERE id = run AND status <> 'running') THEN
        RAISE EXCEPTION 'run % does not exist or is running', run USING ERRCODE = 'BF010';
    END IF;
    PERFORM backfill._event(run, 'archived', payload);
END $$;

------------------------------------------------------------------------------
-- The write gateway (backfill_writer).

CREATE SCHEMA backfill_exec;

-- _statement returns the run's statement whose text has sha256 h when the
-- calling session holds the run and the statement's role may run now:
-- writes, a write of the run's purpose; otherwise a read of its batch.
CREATE FUNCTION backfill._statement(run bigint, lane integer, h text, writes boolean) RETURNS backfill.run_statements
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    r backfill.runs;
    s backfill.run_statements;
BEGIN
    -- The first read of a batch (its page, or a revert's images) checks that
    -- this session holds the run and that it is neither paused nor cancelled,
    -- and opens the batch's row in backfill.open_batches, which only this
    -- transaction (txid) can have: its later statements need not again.
    IF EXISTS (SELECT FROM backfill.open_batches o WHERE o.run_id = run AND o.lane = _statement.lane AND o.txid = txid_current()) THEN
        SELECT * INTO r FROM backfill.runs WHERE id = run;
    ELSE
        r := backfill._held(run);
        IF r.control = 'cancel' THEN
            RAISE EXCEPTION 'run % was cancelled', run USING ERRCODE = 'BF007';
        END IF;
        IF r.control = 'pause' THEN
            RAISE EXCEPTION 'run % is paused', run USING ERRCODE = 'BF006';
        END IF;
    END IF;
    SELECT * INTO s FROM backfill.run_statements t WHERE t.run_id = run AND t.sha256 = h LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this statement is not one the approvals of run % name', run USING ERRCODE = 'BF005';
    END IF;
    IF writes AND NOT ((r.purpose = 'execute' AND s.role = 'apply')
                    OR (r.purpose LIKE 'revert:%' AND s.role IN ('apply', 'revert_insert', 'revert_delete'))) THEN
        RAISE EXCEPTION 'a % run does not write with its % statement', r.purpose, s.role USING ERRCODE = 'BF005';
    END IF;
    IF NOT writes AND NOT (s.role = 'revert_read' OR (s.role = 'page' AND r.purpose = 'execute')) THEN
        RAISE EXCEPTION 'a run reads with its own login, not through the ledger (statement %)', s.name USING ERRCODE = 'BF005';
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION backfill._count_rows(run bigint, lane integer, n bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER AS $$
    UPDATE backfill.open_batches o SET rows = o.rows + n WHERE o.run_id = run AND o.lane = _count_rows.lane AND o.txid = txid_current()
$$;

-- _keys_allowed raises unless every key a write binds (its key_param
-- array, as text) is one this batch read: a key the approved ScopePage
-- returned after the lane's checkpoint, or a key of the image batch a revert
-- restores.
CREATE FUNCTION backfill._keys_allowed(run bigint, lane integer, statement text, keys text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    allowed text[];
    outside text;
BEGIN
    IF keys IS NULL THEN
        RAISE EXCEPTION 'statement % binds no array of keys where its approvals say', statement USING ERRCODE = 'BF010';
    END IF;
    SELECT o.keys INTO allowed FROM backfill.open_batches o
    WHERE o.run_id = run AND o.lane = _keys_allowed.lane AND o.txid = txid_current();
    IF allowed IS NULL THEN
        RAISE EXCEPTION 'run % lane % has read no page in this transaction: a batch writes only keys it read', run, lane
            USING ERRCODE = 'BF011';
    END IF;
    IF array_position(keys, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'a NULL key is not one this batch read' USING ERRCODE = 'BF011';
    END IF;
    -- A hashed set difference: a batch's keys against its page's, O(n).
    SELECT k INTO outside FROM (SELECT unnest(keys) EXCEPT SELECT unnest(allowed)) AS d(k) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'key % is not one this batch read (the approved ScopePage after the checkpoint, or the images restored)', outside
            USING ERRCODE = 'BF011';
    END IF;
END $$;

-- _page_from raises unless a page read starts at the lane's checkpoint
-- (the cursor parameter, as text, equal to it): a batch never goes back.
CREATE FUNCTION backfill._page_from(run bigint, lane integer, cursor text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    point jsonb;
BEGIN
    IF EXISTS (SELECT FROM backfill.lanes l WHERE l.run_id = run) THEN
        SELECT coalesce(l.cursor, l.after) INTO point FROM backfill.lanes l WHERE l.run_id = run AND l.lane = _page_from.lane;
    ELSIF lane = 0 THEN
        SELECT r.cursor INTO point FROM backfill.runs r WHERE r.id = run;
    ELSE
        RAISE EXCEPTION 'run % has no lane %', run, lane USING ERRCODE = 'BF008';
    END IF;
    IF point IS NOT NULL AND jsonb_typeof(point) <> 'null' AND cursor IS DISTINCT FROM (point #>> '{}') THEN
        RAISE EXCEPTION 'a page of run % lane % must start after its checkpoint %, not %', run, lane, point #>> '{}', cursor
            USING ERRCODE = 'BF008';
    END IF;
END $$;

-- _page_keys records the keys a page returned as the ones its batch may write.
CREATE FUNCTION backfill._page_keys(run bigint, lane integer, keys text[]) RETURNS boolean
LANGUAGE sql SECURITY DEFINER AS $$
    INSERT INTO backfill.open_batches AS o (run_id, lane, txid, keys) VALUES (run, lane, txid_current(), coalesce(keys, '{}'))
    ON CONFLICT (run_id, lane, txid) DO UPDATE SET keys = excluded.keys
    RETURNING true
$$;

-- next_undo gives a revert the next batch of images of the run it reverts,
-- after the revert's checkpoint, and records its keys as the only ones the
-- revert batch may write.
CREATE FUNCTION backfill.next_undo(run bigint) RETURNS TABLE (batch bigint, items json)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r      backfill.runs := backfill._held(run);
    target bigint;
    b      bigint;
    it     json;
    ks     text[];
BEGIN
    IF r.purpose NOT LIKE 'revert:%' THEN
        RAISE EXCEPTION 'run % is not a revert', run USING ERRCODE = 'BF010';
    END IF;
    IF r.control = 'cancel' THEN
        RAISE EXCEPTION 'run % was cancelled', run USING ERRCODE = 'BF007';
    END IF;
    target := substr(r.purpose, 8)::bigint;
    SELECT u.batch, u.items, u.keys INTO b, it, ks FROM backfill.undo u
    WHERE u.run_id = target AND u.batch > coalesce((r.cursor #>> '{}')::bigint, 0) ORDER BY u.batch LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO backfill.open_batches AS o (run_id, lane, txid, keys, undo_batch)
    VALUES (run, 0, txid_current(), coalesce(ks, ARRAY(SELECT e->'key' #>> '{}' FROM json_array_elements(it) e)), b)
    ON CONFLICT (run_id, lane, txid) DO UPDATE SET keys = excluded.keys, undo_batch = excluded.undo_batch;
    RETURN QUERY SELECT b, it;
END $$;

-- prepare returns the function of backfill_exec through which this run
-- executes one of its approved statements, creating it the first time.
-- The function holds the statement's text as the approvals name it, planned
-- once and cached like any PL/pgSQL statement, with the statement's own
-- parameters (as PostgreSQL types them) followed by the run and the lane,
-- and it checks, at each call, that this session holds the run, that the
-- statement may run now, and the batch's keys. It is SECURITY DEFINER, owned
-- by backfill_writer, with the ledger's search_path (pg_temp last, so no
-- temp table shadows a table the statement names). cols are the column
-- types a read returns (PostgreSQL 15 does not say a prepared statement's
-- result types; each is checked to be a type, and a list that does not match
-- the rows makes the read fail).
CREATE FUNCTION backfill.prepare(run bigint, sql text, cols text[]) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r      backfill.runs := backfill._held(run);
    h      text := backfill._sha256(sql);
    s      backfill.run_statements;
    writes boolean;
    fname  text;
    pname  text := 'backfill_probe_' || left(h, 16);
    ptypes regtype[];
    n      integer;
    params text;
    cast_  text;
    defs   text;
    names  text;
    keycol text;
    body   text;
    path   text := backfill._setting('search_path');
BEGIN
    PERFORM backfill._trusted_path();
    SELECT * INTO s FROM backfill.run_statements t WHERE t.run_id = run AND t.sha256 = h LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this statement is not one the approvals of run % name', run USING ERRCODE = 'BF005';
    END IF;
    writes := s.role IN ('apply', 'revert_insert', 'revert_delete');
    IF NOT writes AND s.role NOT IN ('page', 'revert_read') THEN
        RAISE EXCEPTION 'a run runs its % statement with its own login, not through the ledger', s.role USING ERRCODE = 'BF005';
    END IF;
    IF NOT writes THEN
        IF cols IS NULL OR EXISTS (SELECT FROM unnest(cols) c WHERE to_regtype(c) IS NULL) THEN
            RAISE EXCEPTION 'the column types % are not all types', cols USING ERRCODE = 'BF010';
        END IF;
        SELECT string_agg(format('bf_c%s %s', i, to_regtype(c)::text), ', ' ORDER BY i),
               string_agg(format('bf_c%s', i), ', ' ORDER BY i),
               string_agg(format('WHEN %s THEN bf_c%s::text', i, i), ' ' ORDER BY i)
        INTO defs, names, keycol FROM unnest(cols) WITH ORDINALITY AS u(c, i);
    END IF;
    fname := (CASE WHEN writes THEN 'x_' ELSE 'q_' END) || left(backfill._sha256(sql || E'\n' || coalesce(defs, '')), 40);
    IF EXISTS (SELECT FROM pg_proc p WHERE p.pronamespace = 'backfill_exec'::regnamespace AND p.proname = fname) THEN
        RETURN fname;
    END IF;
    EXECUTE format('SET LOCAL search_path = pg_catalog, %s, pg_temp', path);
    EXECUTE format('PREPARE %I AS %s', pname, sql);
    SELECT parameter_types INTO ptypes FROM pg_prepared_statements WHERE name = pname;
    EXECUTE format('DEALLOCATE %I', pname);
    n := coalesce(array_length(ptypes, 1), 0);
    SELECT string_agg(t::text, ', ' ORDER BY i) INTO params FROM unnest(ptypes) WITH ORDINALITY AS u(t, i);
    params := coalesce(params || ', ', '') || 'bf_run bigint, bf_lane integer';
    IF writes THEN
        -- The key array, as text, by the key_param the approvals name.
        SELECT 'CASE bf_s.key_param ' || coalesce(string_agg(format('WHEN %s THEN $%s::text[]', i, i), ' ' ORDER BY i), '') || ' END'
        INTO cast_ FROM unnest(ptypes) WITH ORDINALITY AS u(t, i) WHERE t::text LIKE '%[]';
        body := replace(replace(replace($body$#variable_conflict use_column
DECLARE
    bf_s backfill.run_statements;
    bf_n bigint;
BEGIN
    bf_s := backfill._statement(bf_run, bf_lane, @HASH@, true);
    PERFORM backfill._keys_allowed(bf_run, bf_lane, bf_s.name, @KEYS@);
@SQL@
;
    GET DIAGNOSTICS bf_n = ROW_COUNT;
    PERFORM backfill._count_rows(bf_run, bf_lane, bf_n);
    RETURN bf_n;
END$body$, '@HASH@', quote_literal(h)), '@KEYS@', CASE WHEN cast_ = 'CASE bf_s.key_param  END' THEN 'NULL::text[]' ELSE cast_ END), '@SQL@', sql);
        EXECUTE format('CREATE FUNCTION backfill_exec.%I(%s) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, %s, pg_temp AS %L',
            fname, params, path, body);
    ELSE
        SELECT 'CASE bf_s.cursor_param ' || coalesce(string_agg(format('WHEN %s THEN $%s::text', i, i), ' ' ORDER BY i), '') || ' END'
        INTO cast_ FROM unnest(ptypes) WITH ORDINALITY AS u(t, i);
        body := replace(replace(replace(replace(replace(replace(replace(replace($body$#variable_conflict use_column
DECLARE
    bf_s backfill.run_statements;
BEGIN
    bf_s := backfill._statement(bf_run, bf_lane, @HASH@, false);
    IF bf_s.role = 'page' THEN
        PERFORM backfill._page_from(bf_run, bf_lane, @CURSOR@);
        RETURN QUERY WITH bf_p AS MATERIALIZED (SELECT bf_q.*, row_number() OVER () AS bf_ord FROM (
@SQL@
) AS bf_q(@NAMES@)),
            bf_k AS (SELECT backfill._page_keys(bf_run, bf_lane, array_agg(CASE bf_s.key_column @KEYCOL@ END)) AS bf_done FROM bf_p)
            SELECT @PCOLS@ FROM bf_p, bf_k WHERE bf_k.bf_done ORDER BY bf_p.bf_ord;
    ELSE
        RETURN QUERY SELECT @QCOLS@ FROM (
@SQL@
) AS bf_q(@NAMES@);
    END IF;
END$body$, '@HASH@', quote_literal(h)), '@CURSOR@', CASE WHEN n = 0 THEN 'NULL' ELSE cast_ END), '@NAMES@', names),
            '@KEYCOL@', keycol),
            '@PCOLS@', (SELECT string_agg(format('bf_p.bf_c%s', i), ', ' ORDER BY i) FROM generate_series(1, array_length(cols, 1)) i)),
            '@QCOLS@', (SELECT string_agg(format('bf_q.bf_c%s', i), ', ' ORDER BY i) FROM generate_series(1, array_length(cols, 1)) i)),
            '@SQL@', sql), '@@', '@@');
        EXECUTE format('CREATE FUNCTION backfill_exec.%I(%s) RETURNS TABLE (%s) LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, %s, pg_temp AS %L',
            fname, params, defs, path, body);
    END IF;
    EXECUTE format('REVOKE ALL ON FUNCTION backfill_exec.%I(%s) FROM PUBLIC', fname, params);
    EXECUTE format('GRANT EXECUTE ON FUNCTION backfill_exec.%I(%s) TO backfill_runner', fname, params);
    RETURN fname;
END $$;

-- _peek_wrapper returns the function of backfill_exec that runs a
-- RevertRead with its parameters given as text, for peek.
CREATE FUNCTION backfill._peek_wrapper(sql text, cols text[]) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fname  text;
    pname  text := 'backfill_probe_' || left(backfill._sha256(sql), 16);
    ptypes regtype[];
    usings text;
    defs   text;
    path   text := backfill._setting('search_path');
BEGIN
    IF cols IS NULL OR EXISTS (SELECT FROM unnest(cols) c WHERE to_regtype(c) IS NULL) THEN
        RAISE EXCEPTION 'the column types % are not all types', cols USING ERRCODE = 'BF010';
    END IF;
    SELECT string_agg(format('c%s %s', i, to_regtype(c)::text), ', ' ORDER BY i) INTO defs
    FROM unnest(cols) WITH ORDINALITY AS u(c, i);
    fname := 'p_' || left(backfill._sha256(sql || E'\n' || coalesce(defs, '')), 40);
    IF EXISTS (SELECT FROM pg_proc p WHERE p.pronamespace = 'backfill_exec'::regnamespace AND p.proname = fname) THEN
        RETURN fname;
    END IF;
    EXECUTE format('SET LOCAL search_path = pg_catalog, %s, pg_temp', path);
    EXECUTE format('PREPARE %I AS %s', pname, sql);
    SELECT parameter_types INTO ptypes FROM pg_prepared_statements WHERE name = pname;
    EXECUTE format('DEALLOCATE %I', pname);
    SELECT string_agg(format('a[%s]::%s', i, t), ', ' ORDER BY i) INTO usings FROM unnest(ptypes) WITH ORDINALITY AS u(t, i);
    EXECUTE format('CREATE FUNCTION backfill_exec.%I(a text[]) RETURNS TABLE (%s) LANGUAGE plpgsql SET search_path = pg_catalog, %s, pg_temp AS %L',
        fname, defs, path, format('BEGIN RETURN QUERY EXECUTE %L%s; END', sql, CASE WHEN usings IS NULL THEN '' ELSE ' USING ' || usings END));
    EXECUTE format('REVOKE ALL ON FUNCTION backfill_exec.%I(text[]) FROM PUBLIC', fname);
    RETURN fname;
END $$;

-- peek runs a RevertRead outside a batch (a spot check, a revert's
-- preview), for a runner or an observer: only the RevertRead of a run the
-- database started (its approvals counted), and inside a subtransaction that
-- is always rolled back, so that it leaves neither a change nor a row lock.
CREATE FUNCTION backfill.peek(sql text, args text[], cols text[]) RETURNS SETOF record
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fname text;
BEGIN
    IF NOT backfill._approved_read(sql) THEN
        RAISE EXCEPTION 'this statement is not the RevertRead of a run' USING ERRCODE = 'BF005';
    END IF;
    fname := backfill._peek_wrapper(sql, coalesce(cols, '{}'));
    BEGIN
        RETURN QUERY EXECUTE format('SELECT * FROM backfill_exec.%I($1)', fname) USING args;
        RAISE EXCEPTION USING ERRCODE = 'BF099';
    EXCEPTION WHEN SQLSTATE 'BF099' THEN
        NULL; -- the rows are returned; whatever the statement did is undone
    END;
END $$;

CREATE FUNCTION backfill._approved_read(sql text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM backfill.run_statements t WHERE t.role = 'revert_read' AND t.sha256 = backfill._sha256(sql))
$$;

------------------------------------------------------------------------------
-- Ownership and grants.

DO $$
DECLARE
    o record;
BEGIN
    EXECUTE 'ALTER SCHEMA backfill OWNER TO backfill_owner';
    FOR o IN SELECT c.oid::regclass AS name FROM pg_class c
             WHERE c.relnamespace = 'backfill'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO backfill_owner', o.name);
    END LOOP;
    FOR o IN SELECT p.oid::regprocedure AS name FROM pg_proc p WHERE p.pronamespace = 'backfill'::regnamespace LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO backfill_owner', o.name);
    END LOOP;
    EXECUTE 'ALTER SCHEMA backfill_exec OWNER TO backfill_writer';
    EXECUTE 'ALTER FUNCTION backfill.prepare(bigint, text, text[]) OWNER TO backfill_writer';
    EXECUTE 'ALTER FUNCTION backfill.peek(text, text[], text[]) OWNER TO backfill_writer';
    EXECUTE 'ALTER FUNCTION backfill._peek_wrapper(text, text[]) OWNER TO backfill_writer';
END $$;

REVOKE ALL ON SCHEMA backfill_exec FROM PUBLIC;
-- The runner calls the functions prepare made (each checks the run itself);
-- it creates nothing there.
GRANT USAGE ON SCHEMA backfill_exec TO backfill_runner;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA backfill FROM PUBLIC;
GRANT USAGE ON SCHEMA backfill TO backfill_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA backfill TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT EXECUTE ON FUNCTION backfill.audit_hash(bigint, timestamptz, bigint, text, text, jsonb, text)
    TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT EXECUTE ON FUNCTION backfill._statement(bigint, integer, text, boolean), backfill._count_rows(bigint, integer, bigint),
    backfill._keys_allowed(bigint, integer, text, text[]), backfill._page_from(bigint, integer, text),
    backfill._page_keys(bigint, integer, text[]), backfill._held(bigint),
    backfill._sha256(text), backfill._setting(text), backfill._approved_read(text) TO backfill_writer;
GRANT EXECUTE ON FUNCTION backfill.peek(text, text[], text[]) TO backfill_runner, backfill_observer;
GRANT EXECUTE ON FUNCTION backfill.add_approver(text, text, text, text), backfill.revoke_approver(text) TO backfill_admin;
GRANT EXECUTE ON FUNCTION backfill.submit_approval(text, text) TO backfill_approver;
GRANT EXECUTE ON FUNCTION
    backfill.start_run(text, text, text, text, jsonb, jsonb, integer, jsonb, text, text, text, text, bigint),
    backfill.join_run(bigint),
    backfill.refuse_run(text, text, text, text, jsonb, jsonb, text, text, text, text, text, text),
    backfill.run_event(bigint, text, jsonb),
    backfill.create_lanes(bigint, jsonb, jsonb),
    backfill.lane_done(bigint, integer),
    backfill.record_batch(bigint, integer, jsonb, jsonb, boolean, integer, integer, integer, integer, double precision, text, text[], text, jsonb),
    backfill.record_skipped(bigint, jsonb),
    backfill.next_undo(bigint),
    backfill.pause_after_canary(bigint, bigint),
    backfill.finish_run(bigint, text, text, text, jsonb),
    backfill.set_control(bigint, text),
    backfill.save_dry_run(text, text, text, jsonb),
    backfill.acknowledge(bigint, jsonb),
    backfill.prepare(bigint, text, text[])
    TO backfill_runner;
GRANT EXECUTE ON FUNCTION backfill._trusted_path() TO backfill_writer;
GRANT EXECUTE ON FUNCTION backfill._shadowers() TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT EXECUTE ON FUNCTION backfill.run_live(bigint) TO backfill_runner, backfill_approver, backfill_observer, backfill_admin;
GRANT EXECUTE ON FUNCTION backfill.archived(bigint, jsonb) TO backfill_runner, backfill_observer, backfill_admin;
GRANT SELECT ON backfill.run_statements TO backfill_writer;
-- open_batches is the functions' scratch: nobody reads it.
REVOKE ALL ON backfill.open_batches FROM backfill_runner, backfill_approver, backfill_observer, backfill_admin;
