-- 004: bad input is refused where the frontend sees it, and the daemon's columns stay the daemon's.
--
-- Idempotent (re-running it changes nothing, but for zone names a tzdata update brought), no
-- table, column or row is dropped, no existing row is touched or rechecked. PostgreSQL 13 or newer. Anything the migrating role may not do (grants on a
-- Supabase project whose tables someone else owns) is skipped with a NOTICE.
--
-- 1. Write-time rules on content_posts. Each refusal is SQLSTATE 23514 (check_violation,
--    HTTP 400 through PostgREST) with a message and a hint the Supabase client shows, and
--    the rule's name in the error's constraint field:
--      scheduler_posts_status_check         status is draft, scheduled, publishing or published
--      scheduler_posts_timezone_check       timezone is a zone name PostgreSQL knows (exact case)
--      scheduler_posts_scheduled_date_check scheduled_date is within 2000-01-01 .. 2999-12-31
--      scheduler_posts_scheduled_time_check scheduled_time is before 24:00:00
--      scheduler_posts_content_check        content has at most 100,000 characters (the
--                                           daemon's default SCHEDULER_MAX_CONTENT_CHARS)
--      scheduler_posts_media_check          media is a JSON array of at most 20
--                                           {url | storage_path, alt, mime} objects
--      scheduler_posts_retry_at_check       retry_at is within 2000-01-01 .. 2999-12-31 UTC
--    Every value they accept is one the daemon can read and arm, or reject with a reason:
--    none is outside Python's datetime (BC dates, year 10000, 'infinity', 24:00:00).
--
--    Why a trigger and not CHECK constraints (except for status): a CHECK is evaluated on
--    the whole new row at every UPDATE, also on columns the statement did not touch. A row
--    written before this migration with, say, an unknown zone or 200,000 characters of
--    content would then refuse the daemon's own writes on it (the claim, the move to draft
--    with a reason), and those writes are batched, so one old row would block everyone's.
--    The trigger checks what an INSERT writes and what an UPDATE changes (the whole row when
--    a tenant schedules it): new writes are checked, old rows stay as they are and can still
--    be handled and fixed.
--    `scheduler-daemon doctor` lists the old rows that break a rule. Status is a real
--    CHECK (NOT VALID, so old rows are not rechecked) as well: the daemon only ever writes
--    valid statuses, on rows it loaded as scheduled or publishing.
--
-- 2. The daemon's columns. A tenant is a role that is not a superuser, has no BYPASSRLS
--    (Supabase's service_role has it), is not a member of the table's owner, and is not a
--    member of scheduler_daemon: on Supabase, `authenticated` and `anon`. On a tenant's
--    INSERT a trigger resets attempt_count, schedule_version, claimed_by, claimed_at,
--    publish_state, retry_at, published_at, platform_post_id, platform_post_url (and
--    needs_reconnect on platform_connections), and refuses status 'publishing' or
--    'published' (SQLSTATE 42501). The daemon never inserts posts; the owner (migrations,
--    the demo, tests, a backend with service_role) is trusted.
--    Where `anon` and `authenticated` hold INSERT or UPDATE on content_posts or
--    platform_connections (003, Supabase's default grants), the table-level privilege is
--    replaced by one on every column except the daemon's (and except id for UPDATE). A
--    column the frontend adds later needs its own GRANT INSERT (col), UPDATE (col), or a
--    re-run of this file; re-running 003 restores table-level grants, so re-run this after it.
--    TRUNCATE (which ignores row-level security) and TRIGGER are revoked from them on the
--    daemon's tables.
--    scheduler_migrations gets row-level security with a read policy for scheduler_daemon
--    only, and anon/authenticated lose every privilege on it: with Supabase's default
--    grants anyone holding the anon key could delete its rows, and the next start of the
--    daemon would exit with status 2.

-- == helpers ================================================================================

-- scheduler_timezone_known(name): whether name is one of the zone names PostgreSQL knew at
-- the last scheduler_timezones_refresh() (this file calls it). The list is compiled into the
-- function because pg_timezone_names reads every zone file (about 0.1 s a call), too slow
-- for a write path and, callable through the API, a cheap way to burn the server's CPU; the
-- lookup in the list costs a few microseconds. Exact case: PostgreSQL would accept
-- 'europe/paris', the daemon (Python's zoneinfo) would not. 'localtime', 'posixrules' and
-- 'Factory' are not zones a user means. IMMUTABLE holds between refreshes: a refresh
-- replaces the function, and nothing (no index, no CHECK) stores its results. A tzdata
-- update that brings a new name (one or two a year) leaves it refused until the owner runs
-- SELECT scheduler_timezones_refresh(); `scheduler-daemon doctor` says when that is due.
CREATE OR REPLACE FUNCTION scheduler_timezones_refresh() RETURNS integer
LANGUAGE plpgsql AS $refresh$
DECLARE
    names text[];
    home constant name := (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE c.oid = 'content_posts'::regclass);
BEGIN
    SELECT array_agg(name ORDER BY name) INTO names
      FROM pg_timezone_names
     WHERE name NOT IN ('localtime', 'posixrules', 'Factory');
    EXECUTE format($fn$
        CREATE OR REPLACE FUNCTION %I.scheduler_timezone_known(tz text) RETURNS boolean
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog AS $body$
        BEGIN
            RETURN coalesce(tz = ANY (%L::text[]), false);
        END
        $body$
    $fn$, home, names);
    RETURN cardinality(names);
END
$refresh$;

SELECT scheduler_timezones_refresh();

-- The first thing wrong with a media value, as the daemon would say it (db/rows.py), or
-- NULL. Keys other than url, storage_path, alt and mime are the frontend's own: kept and
-- ignored, within the item's size cap.
CREATE OR REPLACE FUNCTION scheduler_media_problem(media jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    item jsonb;
    k text;
    url text;
    path text;
    mime text;
BEGIN
    IF media IS NULL OR media = '[]'::jsonb THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(media) <> 'array' THEN
        RETURN 'media must be a JSON array of {url | storage_path, alt, mime}';
    END IF;
    IF jsonb_array_length(media) > 20 THEN
        RETURN format('media has %s items; a post may have at most 20', jsonb_array_length(media));
    END IF;
    FOR i IN 0 .. jsonb_array_length(media) - 1 LOOP
        item := media -> i;
        IF jsonb_typeof(item) <> 'object' THEN
            RETURN format('media[%s] must be an object with url or storage_path', i);
        END IF;
        IF length(item::text) > 10000 THEN
            RETURN format('media[%s] is longer than 10000 characters', i);
        END IF;
        IF jsonb_typeof(item -> 'url') NOT IN ('string', 'null')
           OR jsonb_typeof(item -> 'storage_path') NOT IN ('string', 'null')
           OR jsonb_typeof(item -> 'alt') NOT IN ('string', 'null')
           OR jsonb_typeof(item -> 'mime') NOT IN ('string', 'null') THEN
            FOREACH k IN ARRAY ARRAY['url', 'storage_path', 'alt', 'mime'] LOOP
                IF jsonb_typeof(item -> k) NOT IN ('string', 'null') THEN
                    RETURN format('media[%s].%s must be a string', i, k);
                END IF;
            END LOOP;
        END IF;
        url := nullif(item ->> 'url', '');
        path := nullif(item ->> 'storage_path', '');
        mime := nullif(item ->> 'mime', '');
        IF url IS NULL AND path IS NULL THEN
            RETURN format('media[%s] needs a url or a storage_path', i);
        END IF;
        IF url !~ '^https?://[^/?#[:space:][:cntrl:]]' OR url ~ '[[:space:][:cntrl:]]' THEN
            RETURN format('media[%s].url must be an http:// or https:// URL', i);
        END IF;
        IF length(url) > 2048 THEN
            RETURN format('media[%s].url is longer than 2048 characters', i);
        END IF;
        IF path ~ '[[:cntrl:]]' OR length(path) > 1024 THEN
            RETURN format('media[%s].storage_path must be a path of at most 1024 characters', i);
        END IF;
        IF length(item ->> 'alt') > 2000 THEN
            RETURN format('media[%s].alt is longer than 2000 characters', i);
        END IF;
        IF mime !~ '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$' THEN
            RETURN format('media[%s].mime must be a media type such as image/png', i);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- What breaks the write-time rules in a row: one (rule, column, message, hint) each.
-- With old_row (an UPDATE), only the columns that changed are checked.
CREATE OR REPLACE FUNCTION scheduler_post_problems(new_row content_posts, old_row content_posts DEFAULT NULL)
RETURNS TABLE (rule text, column_name text, message text, hint text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    inserting constant boolean := old_row.id IS NULL;
    media_problem text;
BEGIN
    IF (inserting OR new_row.status IS DISTINCT FROM old_row.status)
       AND (new_row.status IS NULL OR new_row.status NOT IN ('draft', 'scheduled', 'publishing', 'published')) THEN
        RETURN QUERY SELECT 'scheduler_posts_status_check', 'status',
            format('status %L is not one of draft, scheduled, publishing, published', left(new_row.status, 40)),
            'Statuses are lower case; a post the daemon should publish is ''scheduled''.';
    END IF;
    IF (inserting OR new_row.timezone IS DISTINCT FROM old_row.timezone)
       AND NOT scheduler_timezone_known(new_row.timezone) THEN
        RETURN QUERY SELECT 'scheduler_posts_timezone_check', 'timezone',
            format('unknown timezone %L: use an IANA name such as ''Europe/Paris''', left(new_row.timezone, 64)),
            'Zone names are case-sensitive: ''America/New_York'', ''Asia/Tokyo'', ''UTC''. See pg_timezone_names.';
    END IF;
    IF (inserting OR new_row.scheduled_date IS DISTINCT FROM old_row.scheduled_date)
       AND new_row.scheduled_date NOT BETWEEN '2000-01-01' AND '2999-12-31' THEN
        RETURN QUERY SELECT 'scheduler_posts_scheduled_date_check', 'scheduled_date',
            format('scheduled_date %s is out of range: a post is scheduled between 2000-01-01 and 2999-12-31',
                   new_row.scheduled_date),
            'scheduled_date is the local date in the post''s timezone.';
    END IF;
    IF (inserting OR new_row.scheduled_time IS DISTINCT FROM old_row.scheduled_time)
       AND new_row.scheduled_time >= '24:00:00' THEN
        RETURN QUERY SELECT 'scheduler_posts_scheduled_time_check', 'scheduled_time',
            format('scheduled_time %s is not a time of day: use 00:00:00 to 23:59:59.999999', new_row.scheduled_time),
            'Midnight at the end of a day is 00:00:00 of the next day.';
    END IF;
    IF (inserting OR new_row.content IS DISTINCT FROM old_row.content)
       AND char_length(new_row.content) > 100000 THEN
        RETURN QUERY SELECT 'scheduler_posts_content_check', 'content',
            format('content is %s characters; the most a post may have is 100000', char_length(new_row.content)),
            'Each platform''s own limit, checked when the post is published, is usually far lower.';
    END IF;
    IF inserting OR new_row.media IS DISTINCT FROM old_row.media THEN
        media_problem := scheduler_media_problem(new_row.media);
        IF media_problem IS NOT NULL THEN
            RETURN QUERY SELECT 'scheduler_posts_media_check', 'media', media_problem,
                'media is a JSON array of objects such as {"url": "https://…", "alt": "…", "mime": "image/png"} '
                'or {"storage_path": "bucket/path"}.';
        END IF;
    END IF;
    IF (inserting OR new_row.retry_at IS DISTINCT FROM old_row.retry_at)
       AND new_row.retry_at NOT BETWEEN '2000-01-01 00:00:00+00' AND '2999-12-31 23:59:59.999999+00' THEN
        RETURN QUERY SELECT 'scheduler_posts_retry_at_check', 'retry_at',
            format('retry_at %s is out of range: it must be between 2000-01-01 and 2999-12-31 UTC', new_row.retry_at),
            'retry_at is set by the daemon when it postpones a post; a frontend leaves it alone.';
    END IF;
END
$$;

-- Whether the current role writes as a tenant (see 2. above) on table rel.
CREATE OR REPLACE FUNCTION scheduler_writer_is_tenant(rel regclass) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT (r.rolsuper OR r.rolbypassrls
                OR pg_has_role(r.oid, c.relowner, 'USAGE')
                OR EXISTS (SELECT 1 FROM pg_roles d
                            WHERE d.rolname = 'scheduler_daemon' AND pg_has_role(r.oid, d.oid, 'USAGE')))
      FROM pg_roles r, pg_class c
     WHERE r.rolname = current_user AND c.oid = rel
$$;

-- == triggers ===============================================================================

CREATE OR REPLACE FUNCTION scheduler_posts_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT scheduler_writer_is_tenant(TG_RELID) THEN
        RETURN NEW;
    END IF;
    IF NEW.status IN ('publishing', 'published') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = format('only the scheduler daemon sets status %L', NEW.status),
            HINT = 'Insert the post as ''draft'' or ''scheduled''.',
            COLUMN = 'status', TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
    END IF;
    NEW.attempt_count := 0;
    NEW.schedule_version := 0;
    NEW.claimed_by := NULL;
    NEW.claimed_at := NULL;
    NEW.publish_state := '{}'::jsonb;
    NEW.retry_at := NULL;
    NEW.published_at := NULL;
    NEW.platform_post_id := NULL;
    NEW.platform_post_url := NULL;
    RETURN NEW;
END
$$;

-- An INSERT is checked whole, an UPDATE on what it changes; and a tenant moving a row into
-- 'scheduled' gets the whole row checked, so a draft written before this migration cannot
-- reach the daemon with values it cannot handle. (The daemon's own moves back to
-- 'scheduled', a retry or a released claim, are not: its batched writes must land.)
CREATE OR REPLACE FUNCTION scheduler_posts_input_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    whole boolean := TG_OP = 'INSERT';
    problem record;
BEGIN
    IF NOT whole AND NEW.status = 'scheduled' AND OLD.status IS DISTINCT FROM 'scheduled' THEN
        whole := scheduler_writer_is_tenant(TG_RELID);
    END IF;
    SELECT * INTO problem
      FROM scheduler_post_problems(NEW, CASE WHEN NOT whole THEN OLD END)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            MESSAGE = problem.message,
            DETAIL = format('post %s', NEW.id),
            HINT = problem.hint,
            CONSTRAINT = problem.rule, COLUMN = problem.column_name,
            TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION scheduler_connections_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF scheduler_writer_is_tenant(TG_RELID) THEN
        NEW.needs_reconnect := false;
    END IF;
    RETURN NEW;
END
$$;

-- BEFORE triggers fire in name order: the reset (before_insert), 002's before_update, then
-- the check, which so sees the final values.
DROP TRIGGER IF EXISTS scheduler_posts_before_insert ON content_posts;
CREATE TRIGGER scheduler_posts_before_insert
    BEFORE INSERT ON content_posts
    FOR EACH ROW EXECUTE FUNCTION scheduler_posts_before_insert();

DROP TRIGGER IF EXISTS scheduler_posts_input_check ON content_posts;
CREATE TRIGGER scheduler_posts_input_check
    BEFORE INSERT OR UPDATE OF status, timezone, scheduled_date, scheduled_time, content, media, retry_at
    ON content_posts
    FOR EACH ROW EXECUTE FUNCTION scheduler_posts_input_check();

DROP TRIGGER IF EXISTS scheduler_connections_before_insert ON platform_connections;
CREATE TRIGGER scheduler_connections_before_insert
    BEFORE INSERT ON platform_connections
    FOR EACH ROW EXECUTE FUNCTION scheduler_connections_before_insert();

-- The functions above run in the writer's session: pin what their names resolve to, so a
-- role that can create objects cannot shadow them (or the operators they use) through its
-- own search_path.
DO $migration$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'scheduler_media_problem(jsonb)', 'scheduler_post_problems(content_posts, content_posts)',
        'scheduler_writer_is_tenant(regclass)', 'scheduler_timezones_refresh()',
        'scheduler_posts_before_insert()', 'scheduler_posts_input_check()',
        'scheduler_connections_before_insert()']::regprocedure[] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I', f, current_schema());
    END LOOP;
END
$migration$;

-- Whoever writes a post runs the helpers (a trigger's callees need EXECUTE): PUBLIC has it by
-- PostgreSQL's default, granted here in case a project revoked that default. They are cheap
-- and read nothing private. The refresh is the owner's alone: it replaces a function and
-- scans every zone file, which anon and authenticated could otherwise call through the API
-- (their own grants, from Supabase's defaults, are revoked below).
GRANT EXECUTE ON FUNCTION scheduler_timezone_known(text), scheduler_media_problem(jsonb),
    scheduler_post_problems(content_posts, content_posts), scheduler_writer_is_tenant(regclass) TO PUBLIC;
REVOKE EXECUTE ON FUNCTION scheduler_timezones_refresh() FROM PUBLIC;

-- The status CHECK: NOT VALID, so existing rows are not rechecked; every new write is.
DO $migration$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'content_posts'::regclass AND conname = 'scheduler_posts_status_check') THEN
        ALTER TABLE content_posts ADD CONSTRAINT scheduler_posts_status_check
            CHECK (status IS NOT NULL AND status IN ('draft', 'scheduled', 'publishing', 'published')) NOT VALID;
    END IF;
END
$migration$;

-- == privileges =============================================================================

-- Row-level security on scheduler_migrations, read by the daemon's role only.
DO $migration$
BEGIN
    IF to_regclass('scheduler_migrations') IS NULL THEN
        RAISE NOTICE 'no scheduler_migrations table (applied without `scheduler-daemon migrate`): nothing to protect';
        RETURN;
    END IF;
    BEGIN
        ALTER TABLE scheduler_migrations ENABLE ROW LEVEL SECURITY;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scheduler_daemon') THEN
            RAISE NOTICE 'no scheduler_daemon role: after creating it (003), re-run this file so it can read scheduler_migrations';
        ELSIF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                          AND tablename = 'scheduler_migrations' AND policyname = 'scheduler_daemon_reads') THEN
            CREATE POLICY scheduler_daemon_reads ON scheduler_migrations FOR SELECT TO scheduler_daemon USING (true);
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'scheduler_migrations not protected (insufficient privilege): run this file as its owner';
    END;
END
$migration$;

-- What anon and authenticated may write, where they exist. The prepare_* columns come with
-- migrations/010 (named here so that a re-run of this file never grants them).
DO $migration$
DECLARE
    daemon_columns constant jsonb := '{
        "content_posts": ["attempt_count", "schedule_version", "claimed_by", "claimed_at", "publish_state",
                          "retry_at", "published_at", "platform_post_id", "platform_post_url", "due_at",
                          "prepare_error", "prepared_version", "prepare_lease", "prepare_lease_until"],
        "platform_connections": ["needs_reconnect"]}';
    tenant text;
    tbl text;
    privilege text;
    writable text;
BEGIN
    FOREACH tenant IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = tenant);
        BEGIN
            -- Every column but the daemon's, where it may write the table.
            FOR tbl IN SELECT jsonb_object_keys(daemon_columns) LOOP
                FOREACH privilege IN ARRAY ARRAY['INSERT', 'UPDATE'] LOOP
                    CONTINUE WHEN NOT has_any_column_privilege(tenant, tbl, privilege);
                    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO writable
                      FROM pg_attribute
                     WHERE attrelid = tbl::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
                       AND NOT daemon_columns -> tbl ? attname::text
                       AND NOT (privilege = 'UPDATE' AND attname = 'id');
                    EXECUTE format('REVOKE %s ON %I FROM %I', privilege, tbl, tenant);
                    EXECUTE format('GRANT %s (%s) ON %I TO %I', privilege, writable, tbl, tenant);
                    IF has_table_privilege(tenant, tbl, privilege) THEN
                        RAISE NOTICE '% keeps table-level % on % (granted by another role, or to PUBLIC): revoke it as that role',
                            tenant, privilege, tbl;
                    END IF;
                END LOOP;
            END LOOP;
            FOREACH tbl IN ARRAY ARRAY['content_campaigns', 'content_posts', 'platform_connections', 'publish_attempts'] LOOP
                EXECUTE format('REVOKE TRUNCATE, TRIGGER ON %I FROM %I', tbl, tenant);
            END LOOP;
            IF to_regclass('scheduler_migrations') IS NOT NULL THEN
                EXECUTE format('REVOKE ALL ON scheduler_migrations FROM %I', tenant);
            END IF;
            EXECUTE format('REVOKE EXECUTE ON FUNCTION scheduler_timezones_refresh() FROM %I', tenant);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'privileges of % not narrowed (insufficient privilege): run this file as the tables'' owner', tenant;
        END;
    END LOOP;
END
$migration$;
