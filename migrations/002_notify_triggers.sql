-- 002: the registration path. Every change to content_posts that changes what the
-- daemon must do sends a NOTIFY on channel 'scheduler_daemon' with a small JSON payload:
--   {"op":"I|U|D","id":uuid,"status":text,"date":"YYYY-MM-DD","time":"HH:MM:SS[.ffffff]",
--    "tz":text,"retry_at":timestamptz|null,"version":bigint,"was_publishing":bool}
-- It carries everything needed to arm a timer, so the daemon arms without a query.
-- The timezone is cut to 100 characters so the payload stays far below the 8000-byte limit
-- (an over-long zone name is invalid anyway and is reported on the row by the daemon).
-- TRUNCATE sends {"op":"T"}: the daemon resynchronises from the table.
-- A row in 'publishing' that the user edits or deletes is announced too, so the daemon can
-- abandon a claim it made just ahead of the instant (see SCHEDULER_CLAIM_LEAD_MS).

CREATE OR REPLACE FUNCTION scheduler_posts_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    IF (NEW.status, NEW.scheduled_date, NEW.scheduled_time, NEW.timezone, NEW.retry_at)
           IS DISTINCT FROM
       (OLD.status, OLD.scheduled_date, OLD.scheduled_time, OLD.timezone, OLD.retry_at) THEN
        NEW.schedule_version := OLD.schedule_version + 1;
    ELSE
        NEW.schedule_version := OLD.schedule_version;  -- only this trigger moves it
    END IF;
    -- A user reschedule (new date/time/zone, or draft -> scheduled without a daemon
    -- retry time) starts a fresh series of attempts: drop a pending retry and its error.
    IF (NEW.scheduled_date, NEW.scheduled_time, NEW.timezone)
           IS DISTINCT FROM (OLD.scheduled_date, OLD.scheduled_time, OLD.timezone)
       OR (NEW.status = 'scheduled' AND OLD.status <> 'scheduled'
           AND NEW.retry_at IS NOT DISTINCT FROM OLD.retry_at) THEN
        NEW.retry_at := NULL;
        NEW.attempt_count := 0;
        NEW.publish_state := '{}'::jsonb;
        IF NEW.status = 'scheduled' AND NEW.error_message IS NOT DISTINCT FROM OLD.error_message THEN
            NEW.error_message := NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION scheduler_posts_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r content_posts;
    op text := left(TG_OP, 1);
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
        IF OLD.status NOT IN ('scheduled', 'publishing') THEN RETURN NULL; END IF;
    ELSE
        r := NEW;
        IF TG_OP = 'INSERT' AND NEW.status <> 'scheduled' THEN RETURN NULL; END IF;
        IF TG_OP = 'UPDATE' AND NOT (
               -- a change to what is armed
               ((OLD.status = 'scheduled' OR NEW.status = 'scheduled')
                AND (NEW.status, NEW.scheduled_date, NEW.scheduled_time, NEW.timezone, NEW.retry_at)
                    IS DISTINCT FROM
                    (OLD.status, OLD.scheduled_date, OLD.scheduled_time, OLD.timezone, OLD.retry_at))
               -- or a user's edit of a claimed row (the daemon's own writes set or clear
               -- claimed_by, or only add checkpoints): a claim made just ahead of the
               -- instant is then abandoned before anything is sent
               OR (OLD.status = 'publishing'
                   AND NEW.claimed_by IS NOT DISTINCT FROM OLD.claimed_by
                   AND NEW.publish_state IS NOT DISTINCT FROM OLD.publish_state)) THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM pg_notify('scheduler_daemon', json_build_object(
        'op', op,
        'id', r.id,
        'status', r.status,
        'date', r.scheduled_date,
        'time', r.scheduled_time,
        'tz', left(r.timezone, 100),
        'retry_at', r.retry_at,
        'version', r.schedule_version,
        'was_publishing', TG_OP <> 'INSERT' AND OLD.status = 'publishing'
    )::text);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION scheduler_posts_notify_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('scheduler_daemon', '{"op":"T"}');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS scheduler_posts_before_update ON content_posts;
CREATE TRIGGER scheduler_posts_before_update
    BEFORE UPDATE ON content_posts
    FOR EACH ROW EXECUTE FUNCTION scheduler_posts_before_update();

DROP TRIGGER IF EXISTS scheduler_posts_notify ON content_posts;
CREATE TRIGGER scheduler_posts_notify
    AFTER INSERT OR UPDATE OR DELETE ON content_posts
    FOR EACH ROW EXECUTE FUNCTION scheduler_posts_notify();

DROP TRIGGER IF EXISTS scheduler_posts_notify_truncate ON content_posts;
CREATE TRIGGER scheduler_posts_notify_truncate
    AFTER TRUNCATE ON content_posts
    FOR EACH STATEMENT EXECUTE FUNCTION scheduler_posts_notify_truncate();

-- A connection the daemon marked needs_reconnect (the platform rejected its token) is usable
-- again as soon as the user stores a new token.
CREATE OR REPLACE FUNCTION scheduler_connections_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    IF NEW.access_token IS DISTINCT FROM OLD.access_token
       AND NEW.needs_reconnect IS NOT DISTINCT FROM OLD.needs_reconnect THEN
        NEW.needs_reconnect := false;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS scheduler_connections_before_update ON platform_connections;
CREATE TRIGGER scheduler_connections_before_update
    BEFORE UPDATE ON platform_connections
    FOR EACH ROW EXECUTE FUNCTION scheduler_connections_before_update();
