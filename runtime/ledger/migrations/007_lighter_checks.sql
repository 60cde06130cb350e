-- 007: the same checks as version 6, for less of the server's time per batch.
--
-- Measured on a batch of 1,000 rows (docs/performance.md, "Enforcement in
-- PostgreSQL"), version 6 spent its extra time on:
--   * pg_stat_get_activity, which copies every backend's status once per
--     transaction, to tell the session that holds a run by its
--     backend_start: a session now proves itself with a random token it
--     keeps in its own setting backfill.session (no other session can read
--     it), whose sha256 its row of backfill.sessions holds. Liveness
--     (_live: may a run resume?) still looks at pg_stat_activity, once.
--   * SQL-language helpers called once per batch (_event, _count_rows,
--     _page_keys), which PostgreSQL parses and plans at every call: they
--     are PL/pgSQL now, planned once per session.
--   * a window function and a sort to return the page's rows in order after
--     recording its keys: the page now comes back in the order it was
--     materialised, without them.
--   * compressing the page's keys into open_batches, a row that lives for
--     one transaction: stored uncompressed now.
--   * a set difference of every write's keys (and every batch's images'
--     keys) against the page's: skipped when the two arrays are equal,
--     which they are when every row of the page changes.
--   * a deferred check queued by every write: now by a batch's first write.
-- Nothing a function refuses changed; the tests of runtime/ledger run
-- against this version.

DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'ledger version 7 must be installed by a superuser: its functions belong to the NOLOGIN role backfill_owner'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Run bin/backfill ledger init as a superuser (docs/operating.md, section 2.1).';
    END IF;
END $$;

------------------------------------------------------------------------------
-- The session that holds a run: a token instead of pg_stat_activity.

ALTER TABLE backfill.sessions ADD COLUMN token text;

-- _session_token returns the sha256 of this session's token, a random
-- secret kept only in this session's setting backfill.session: the one it
-- got when it joined a run, while a row of this session (pid and
-- backend_start) still holds it; else a new one, which the rows of this
-- session then hold. Another session, even of the same pid later, cannot
-- read it; the rows keep only its sha256.
CREATE FUNCTION backfill._session_token() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    t     text := current_setting('backfill.session', true);
    start timestamptz := backfill._my_start();
BEGIN
    IF t IS NULL OR length(t) < 64 OR NOT EXISTS (SELECT FROM backfill.sessions s
            WHERE s.pid = pg_backend_pid() AND s.backend_start = start AND s.token = backfill._sha256(t)) THEN
        t := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
        PERFORM set_config('backfill.session', t, false);
        UPDATE backfill.sessions s SET token = backfill._sha256(t) WHERE s.pid = pg_backend_pid() AND s.backend_start = start;
    END IF;
    RETURN backfill._sha256(t);
END $$;

-- Every row of backfill.sessions is the inserting session's own (start_run,
-- join_run): it gets that session's token.
CREATE FUNCTION backfill.session_token() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.pid <> pg_backend_pid() THEN
        RAISE EXCEPTION 'a session joins a run only for itself' USING ERRCODE = 'BF010';
    END IF;
    NEW.token := backfill._session_token();
    RETURN NEW;
END $$;
CREATE TRIGGER session_token BEFORE INSERT ON backfill.sessions FOR EACH ROW EXECUTE FUNCTION backfill.session_token();

-- The run row when the calling session holds it: the run is running and
-- this session joined its current attempt, as its login, with its token
-- (the holder can read its own token; a session of another login that
-- learnt it and got the same process id after the holder ended holds
-- nothing). Raises otherwise.
CREATE OR REPLACE FUNCTION backfill._held(run bigint) RETURNS backfill.runs
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
                   AND s.pid = pg_backend_pid() AND s.login = session_user
                   AND s.token = backfill._sha256(current_setting('backfill.session', true))) THEN
        RAISE EXCEPTION 'this session (login %) does not hold run %', session_user, run
            USING ERRCODE = 'BF004', HINT = 'Only sessions of the login that started or resumed the run write it, once they joined it (a lane, a reconnect).';
    END IF;
    RETURN r;
END $$;

------------------------------------------------------------------------------
-- Helpers called once per batch: PL/pgSQL, planned once per session.

CREATE OR REPLACE FUNCTION backfill._event(run bigint, kind text, payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO backfill.audit_events (run_id, kind, payload) VALUES (run, kind, coalesce(payload, '{}'));
END $$;

CREATE OR REPLACE FUNCTION backfill._count_rows(run bigint, lane integer, n bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    UPDATE backfill.open_batches o SET rows = o.rows + n WHERE o.run_id = run AND o.lane = _count_rows.lane AND o.txid = txid_current();
END $$;

CREATE OR REPLACE FUNCTION backfill._page_keys(run bigint, lane integer, keys text[]) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO backfill.open_batches AS o (run_id, lane, txid, keys) VALUES (run, lane, txid_current(), coalesce(keys, '{}'))
    ON CONFLICT ON CONSTRAINT open_batches_pkey DO UPDATE SET keys = excluded.keys;
    RETURN true;
END $$;

------------------------------------------------------------------------------
-- open_batches: keys uncompressed; the commit check queued once per batch.

ALTER TABLE backfill.open_batches ALTER COLUMN keys SET STORAGE EXTERNAL;
DROP TRIGGER open_batch_recorded ON backfill.open_batches;
-- A batch's first write sets its row's count from 0 (the row is inserted
-- with 0 by the page read or next_undo): checked at commit (deferred); a
-- session that makes the constraint immediate has every write refused at
-- once (BF012), since no batch record precedes its writes.
CREATE CONSTRAINT TRIGGER open_batch_recorded AFTER UPDATE OF rows ON backfill.open_batches
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.rows = 0 AND NEW.rows <> 0)
    EXECUTE FUNCTION backfill.batch_recorded();

------------------------------------------------------------------------------
-- Key checks: equal arrays need no set difference.

CREATE OR REPLACE FUNCTION backfill._keys_allowed(run bigint, lane integer, statement text, keys text[]) RETURNS void
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
    -- The write binds the keys of its page as they came (every row of the
    -- page changes, the usual batch): equal arrays. Otherwise a hashed set
    -- difference, O(n).
    IF keys = allowed THEN
        RETURN;
    END IF;
    SELECT k INTO outside FROM (SELECT unnest(keys) EXCEPT SELECT unnest(allowed)) AS d(k) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'key % is not one this batch read (the approved ScopePage after the checkpoint, or the images restored)', outside
            USING ERRCODE = 'BF011';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION backfill.record_batch(run bigint, lane integer, from_cursor jsonb, cursor jsonb, last boolean,
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
        -- only image_keys (next_undo), so no other row. Every key of the
        -- page changed, the usual batch: equal arrays, no set difference.
        IF image_keys IS NULL OR (image_keys IS DISTINCT FROM read_keys
                AND EXISTS (SELECT unnest(image_keys) EXCEPT SELECT unnest(read_keys))) THEN
            RAISE EXCEPTION 'the batch''s images name a key it did not read' USING ERRCODE = 'BF011';
        END IF;
        INSERT INTO backfill.undo (run_id, batch, items, keys) VALUES (run, num, images::json, image_keys);
    END IF;
    PERFORM backfill._event(run, kind, coalesce(payload, '{}') || jsonb_build_object('batch', num, 'lane', lane,
        'cursor', cursor, 'scanned', scanned, 'intended', intended, 'changed', n));
    RETURN QUERY SELECT num, n;
END $$;

------------------------------------------------------------------------------
-- The page without a window function and a sort.

CREATE OR REPLACE FUNCTION backfill.prepare(run bigint, sql text, cols text[]) RETURNS text
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
    -- Version 7's functions (salted: a function version 6 made for the same
    -- text keeps running the runs that prepared it).
    fname := (CASE WHEN writes THEN 'x_' ELSE 'q_' END) || left(backfill._sha256('7' || E'\n' || sql || E'\n' || coalesce(defs, '')), 40);
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
        -- The page once, materialised; its keys recorded (bf_k, one row);
        -- its rows in the page's own order: a join of one row with the
        -- materialised page has no join clause, so it is a nested loop over
        -- the CTE's rows as they were stored.
        RETURN QUERY WITH bf_p AS MATERIALIZED (SELECT * FROM (
@SQL@
) AS bf_q(@NAMES@)),
            bf_k AS (SELECT backfill._page_keys(bf_run, bf_lane, array_agg(CASE bf_s.key_column @KEYCOL@ END)) AS bf_done FROM bf_p)
            SELECT @PCOLS@ FROM bf_k, bf_p WHERE bf_k.bf_done;
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

------------------------------------------------------------------------------
-- Ownership and grants of the new functions.

ALTER FUNCTION backfill._session_token() OWNER TO backfill_owner;
ALTER FUNCTION backfill.session_token() OWNER TO backfill_owner;
REVOKE ALL ON FUNCTION backfill._session_token(), backfill.session_token() FROM PUBLIC;
