-- 007: the due instant lives in the database, and a publishing row belongs to the daemon.
--
-- Idempotent, non-destructive, PostgreSQL 13 or newer, safe on an existing Supabase database:
-- one nullable column is added (no table rewrite, no default), the scheduled rows get it
-- filled in (their updated_at moves to the migration's time; nothing else changes), and
-- functions are replaced. Uses scheduler_timezone_known() and scheduler_writer_is_tenant()
-- from 004.
--
-- 1. content_posts.due_at (timestamptz, the daemon's column): the UTC instant the row is due,
--    maintained by ONE function, scheduler_due_at(date, time, zone, retry_at), from a BEFORE
--    INSERT OR UPDATE trigger. NULL when the row has no due instant the daemon can use; then
--    scheduler_due_problem() says why, in the words the row's error_message gets.
--    The rules are the README's ("The due instant and daylight saving time"), the same as
--    scheduler_daemon/due.py (Python's fold=0), and tests/integration/test_due_sql.py holds
--    the two equal on the fall-back and spring-forward nights:
--      * retry_at, when set, is the instant;
--      * a local time that does not exist (spring forward) is read with the offset in force
--        before the jump: 02:30 -> 03:30;
--      * a local time that happens twice (fall back) is the first occurrence.
--    PostgreSQL's own `timestamp AT TIME ZONE zone` takes the *second* occurrence on a
--    fall-back night, so the function does not use it alone: it tries the offset in force a
--    day before the wall time, keeps it when the wall time exists with that offset (that is
--    the first occurrence), else tries the offset a day after, else (a gap) keeps the first.
--    Unschedulable: a missing date or time, 24:00:00, a zone 004's list does not know, a
--    local date outside 0001-01-02 .. 9999-12-30 or a retry_at outside that range (UTC), so
--    that every due_at is an instant Python's datetime can hold.
--    A partial index on (due_at) WHERE status = 'scheduled' serves the claim and a horizon.
--    A tenant never writes it: the trigger overrides any value, it has no column grant here,
--    and 004's list of the daemon's columns names it, so re-running 004 keeps it that way.
--    A tzdata update in PostgreSQL that changes a zone's future rules leaves the stored
--    instants of that zone as they were computed: `SELECT scheduler_due_at_refresh()`
--    recomputes every scheduled row.
--
-- 2. The claim verifies the row in SQL (sql/daemon.sql, claim): status, version AND that
--    due_at is within the claim lead (plus 1 s) ahead of now() and within the grace window
--    behind it. The boot load arms from due_at. A notification is only a hint:
--    a forged one (the channel is open to every role that can connect) cannot publish a
--    post early.
--
-- 3. Publishing rows belong to the daemon. A tenant (004's definition: on Supabase, `anon` and
--    `authenticated`) is REFUSED (not deferred):
--      * any change, while the row is 'publishing', to its status or to what the daemon
--        publishes or schedules from (platform, connection_id, campaign_id, content, media,
--        thread, first_comment, platform_options, scheduled_date, scheduled_time, timezone,
--        and the daemon's own columns): SQLSTATE 23514, constraint scheduler_posts_publishing_check,
--        "post … is being published: …", hint to wait for the outcome (a few seconds);
--        a column of the frontend's own (a title, a tag) may still change;
--      * an UPDATE that moves a row into 'publishing' or 'published' (004 refuses it on
--        INSERT): 42501, "only the scheduler daemon sets status …".
--    Refused rather than deferred: a deferred edit would have to be stored somewhere and
--    applied by the daemon after the outcome, which the frontend could not see fail; a
--    refusal is what the frontend's write returns, now.
--    For every writer (the owner and service_role included), publish_state and attempt_count
--    are no longer reset while the row is 'publishing': the reschedule branch of 002's
--    trigger used to empty publish_state there, losing Bluesky record keys and the
--    Instagram/Threads container checkpoints that make a repeat harmless.
--
-- 4. schedule_version and attempt_count never overflow in the daemon's writes: the version
--    stops at the bigint maximum instead of failing the statement (one row at the maximum
--    used to fail every claim batch it was in); the daemon turns a row with either counter at
--    its maximum into a draft with a reason. Setting schedule_version to 0 on such a row
--    (as the owner) starts it again.

-- == the due instant ========================================================================

CREATE OR REPLACE FUNCTION scheduler_due_at(d date, t time, tz text, retry timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    wall timestamp;
    before interval;
    after interval;
    first_try timestamptz;
    second_try timestamptz;
BEGIN
    IF retry IS NOT NULL THEN
        RETURN CASE WHEN retry BETWEEN '0001-01-02 00:00:00+00' AND '9999-12-30 00:00:00+00' THEN retry END;
    END IF;
    IF d IS NULL OR t IS NULL OR t >= '24:00:00' OR d NOT BETWEEN '0001-01-02' AND '9999-12-30'
       OR NOT scheduler_timezone_known(tz) THEN
        RETURN NULL;
    END IF;
    wall := d + t;
    -- the offset a day earlier: before any transition that can touch this wall time
    before := (((wall - interval '1 day') AT TIME ZONE 'UTC') AT TIME ZONE tz) - (wall - interval '1 day');
    first_try := (wall - before) AT TIME ZONE 'UTC';
    IF (first_try AT TIME ZONE tz) = wall THEN
        RETURN first_try;  -- exists with the earlier offset: the only, or the first, occurrence
    END IF;
    after := (((wall + interval '1 day') AT TIME ZONE 'UTC') AT TIME ZONE tz) - (wall + interval '1 day');
    second_try := (wall - after) AT TIME ZONE 'UTC';
    IF (second_try AT TIME ZONE tz) = wall THEN
        RETURN second_try;
    END IF;
    RETURN first_try;  -- skipped by a jump forward: the offset before the jump
END
$$;

CREATE OR REPLACE FUNCTION scheduler_due_problem(
    d date, t time, tz text, retry timestamptz, attempts integer DEFAULT 0, version bigint DEFAULT 0
) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF attempts >= 2147483647 THEN
        RETURN 'attempt_count is at its maximum (2147483647): the daemon cannot count another attempt; '
               'schedule the post again to start a new series';
    END IF;
    IF version >= 9223372036854775807 THEN
        RETURN 'schedule_version is at its maximum: the owner can set it to 0 (UPDATE content_posts SET '
               'schedule_version = 0 WHERE id = …) and schedule the post again';
    END IF;
    IF retry IS NOT NULL THEN
        IF retry BETWEEN '0001-01-02 00:00:00+00' AND '9999-12-30 00:00:00+00' THEN
            RETURN NULL;
        END IF;
        RETURN format('retry_at %s is out of range: schedule the post again', retry);
    END IF;
    IF d IS NULL AND t IS NULL THEN
        RETURN 'scheduled_date and scheduled_time are empty';
    ELSIF d IS NULL THEN
        RETURN 'scheduled_date is empty';
    ELSIF t IS NULL THEN
        RETURN 'scheduled_time is empty';
    ELSIF NOT scheduler_timezone_known(tz) THEN
        RETURN format('unknown timezone %s: use an IANA name such as ''Europe/Paris''', quote_nullable(left(tz, 64)));
    ELSIF t >= '24:00:00' THEN
        RETURN format('scheduled_time %s is not a time of day: midnight at the end of a day is 00:00:00 of the next', t);
    ELSIF d NOT BETWEEN '0001-01-02' AND '9999-12-30' THEN
        RETURN format('scheduled_date %s is out of range: reschedule the post', d);
    END IF;
    RETURN NULL;
END
$$;

DO $migration$
DECLARE
    found text;
BEGIN
    SELECT format_type(atttypid, atttypmod) INTO found
      FROM pg_attribute
     WHERE attrelid = 'content_posts'::regclass AND attname = 'due_at' AND attnum > 0 AND NOT attisdropped;
    IF found IS NOT NULL AND found <> 'timestamp with time zone' THEN
        RAISE EXCEPTION 'content_posts.due_at exists with type %, but the scheduler needs timestamptz there', found
            USING HINT = 'Rename your column (ALTER TABLE content_posts RENAME COLUMN due_at TO …), then run the migration again.';
    END IF;
END
$migration$;

ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS due_at timestamptz;
COMMENT ON COLUMN content_posts.due_at IS
    'The daemon''s: the UTC instant the post is due (scheduler_due_at), maintained by a trigger; NULL: none';

-- Recomputed whenever what decides it changes, and whenever someone wrote due_at itself (it is
-- never anyone's to set) or it is NULL (a row written while the trigger was off). Fires after
-- 002's before_update (BEFORE triggers run in name order), which clears retry_at on a reschedule.
CREATE OR REPLACE FUNCTION scheduler_posts_set_due_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.due_at IS NULL OR NEW.due_at IS DISTINCT FROM OLD.due_at
       OR (NEW.scheduled_date, NEW.scheduled_time, NEW.timezone, NEW.retry_at)
          IS DISTINCT FROM (OLD.scheduled_date, OLD.scheduled_time, OLD.timezone, OLD.retry_at) THEN
        NEW.due_at := scheduler_due_at(NEW.scheduled_date, NEW.scheduled_time, NEW.timezone, NEW.retry_at);
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS scheduler_posts_set_due_at ON content_posts;
CREATE TRIGGER scheduler_posts_set_due_at
    BEFORE INSERT OR UPDATE ON content_posts
    FOR EACH ROW EXECUTE FUNCTION scheduler_posts_set_due_at();

-- Every scheduled row's instant, now (and after a tzdata update): returns how many changed.
CREATE OR REPLACE FUNCTION scheduler_due_at_refresh() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint;
BEGIN
    -- NULL: the trigger computes it (once per row)
    UPDATE content_posts
       SET due_at = NULL
     WHERE status = 'scheduled'
       AND due_at IS DISTINCT FROM scheduler_due_at(scheduled_date, scheduled_time, timezone, retry_at);
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

SELECT scheduler_due_at_refresh();

CREATE INDEX IF NOT EXISTS content_posts_due_at_scheduled ON content_posts (due_at) WHERE status = 'scheduled';

-- == publishing rows belong to the daemon; counters that never overflow =====================

-- 002's function, with 3. and 4. above.
CREATE OR REPLACE FUNCTION scheduler_posts_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    -- Only rows that are or become publishing/published pay for the role lookup, and the
    -- daemon's own role (every claim and outcome) takes the short way: 004's full test costs
    -- about 20 us a row, this one 1 us, and a member of scheduler_daemon is never a tenant.
    IF (OLD.status = 'publishing'
        OR (NEW.status IN ('publishing', 'published') AND NEW.status IS DISTINCT FROM OLD.status))
       AND NOT coalesce(pg_has_role(to_regrole('scheduler_daemon'), 'USAGE'), false)
       AND scheduler_writer_is_tenant(TG_RELID) THEN
        IF OLD.status = 'publishing'
           AND (NEW.status, NEW.platform, NEW.connection_id, NEW.campaign_id, NEW.content, NEW.media,
                NEW.thread, NEW.first_comment, NEW.platform_options,
                NEW.scheduled_date, NEW.scheduled_time, NEW.timezone, NEW.retry_at, NEW.publish_state,
                NEW.attempt_count, NEW.claimed_by, NEW.claimed_at, NEW.schedule_version)
               IS DISTINCT FROM
               (OLD.status, OLD.platform, OLD.connection_id, OLD.campaign_id, OLD.content, OLD.media,
                OLD.thread, OLD.first_comment, OLD.platform_options,
                OLD.scheduled_date, OLD.scheduled_time, OLD.timezone, OLD.retry_at, OLD.publish_state,
                OLD.attempt_count, OLD.claimed_by, OLD.claimed_at, OLD.schedule_version) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'check_violation',
                MESSAGE = format('post %s is being published: it cannot be changed until the daemon has '
                                 'recorded the outcome', OLD.id),
                HINT = 'Wait until its status is published or draft (usually a few seconds), then edit or reschedule it.',
                CONSTRAINT = 'scheduler_posts_publishing_check', COLUMN = 'status',
                TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
        END IF;
        IF NEW.status IN ('publishing', 'published') AND NEW.status IS DISTINCT FROM OLD.status THEN
            RAISE EXCEPTION USING
                ERRCODE = 'insufficient_privilege',
                MESSAGE = format('only the scheduler daemon sets status %L', NEW.status),
                HINT = 'Set the post to ''scheduled'': the daemon publishes it at its instant.',
                COLUMN = 'status', TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
        END IF;
    END IF;
    IF NEW.schedule_version = 0 AND OLD.schedule_version = 9223372036854775807 THEN
        NULL;  -- the owner starts an exhausted row again (4. above)
    ELSIF (NEW.status, NEW.scheduled_date, NEW.scheduled_time, NEW.timezone, NEW.retry_at)
           IS DISTINCT FROM
       (OLD.status, OLD.scheduled_date, OLD.scheduled_time, OLD.timezone, OLD.retry_at) THEN
        NEW.schedule_version := CASE WHEN OLD.schedule_version < 9223372036854775807
                                     THEN OLD.schedule_version + 1 ELSE OLD.schedule_version END;
    ELSE
        NEW.schedule_version := OLD.schedule_version;  -- only this trigger moves it
    END IF;
    -- A user reschedule (new date/time/zone, or draft -> scheduled without a daemon
    -- retry time) starts a fresh series of attempts: drop a pending retry and its error.
    -- Not the checkpoints of a post being published: its request may be out right now.
    IF (NEW.scheduled_date, NEW.scheduled_time, NEW.timezone)
           IS DISTINCT FROM (OLD.scheduled_date, OLD.scheduled_time, OLD.timezone)
       OR (NEW.status = 'scheduled' AND OLD.status <> 'scheduled'
           AND NEW.retry_at IS NOT DISTINCT FROM OLD.retry_at) THEN
        NEW.retry_at := NULL;
        IF OLD.status <> 'publishing' THEN
            NEW.attempt_count := 0;
            NEW.publish_state := '{}'::jsonb;
        END IF;
        IF NEW.status = 'scheduled' AND NEW.error_message IS NOT DISTINCT FROM OLD.error_message THEN
            NEW.error_message := NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

-- As 004 does for its functions: pin what their names resolve to in the writer's session.
DO $migration$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'scheduler_due_at(date, time, text, timestamptz)',
        'scheduler_due_problem(date, time, text, timestamptz, integer, bigint)',
        'scheduler_posts_set_due_at()', 'scheduler_due_at_refresh()',
        'scheduler_posts_before_update()']::regprocedure[] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I', f, current_schema());
    END LOOP;
END
$migration$;

GRANT EXECUTE ON FUNCTION scheduler_due_at(date, time, text, timestamptz),
    scheduler_due_problem(date, time, text, timestamptz, integer, bigint) TO PUBLIC;
REVOKE EXECUTE ON FUNCTION scheduler_due_at_refresh() FROM PUBLIC;
