-- 011: the claim's own notification is no longer sent. The daemon's claim (an UPDATE from
-- 'scheduled' to 'publishing', the only way into 'publishing': 004 and 007 refuse it to
-- tenants) used to NOTIFY every row it took, and every replica parsed each one and did
-- nothing with it: a notification only ever arms a timer or moves one earlier, never
-- cancels one, and a claimed row arms nothing. In a burst of 5,000 that was 5,000 payloads
-- read back by the claiming daemon itself while it sent (1-1.5 % of its loop). Every other
-- notification of 002 is unchanged: a user's edit or delete of a claimed row still says
-- was_publishing (it abandons a claim made ahead of the instant), and the daemon's own
-- release, retry and reschedule back to 'scheduled' still arm.

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
        -- the claim: nobody acts on it (see above)
        IF TG_OP = 'UPDATE' AND OLD.status = 'scheduled' AND NEW.status = 'publishing' THEN RETURN NULL; END IF;
        IF TG_OP = 'UPDATE' AND NOT (
               -- a change to what is armed
               ((OLD.status = 'scheduled' OR NEW.status = 'scheduled')
                AND (NEW.status, NEW.scheduled_date, NEW.scheduled_time, NEW.timezone, NEW.retry_at)
                    IS DISTINCT FROM
                    (OLD.status, OLD.scheduled_date, OLD.scheduled_time, OLD.timezone, OLD.retry_at))
               -- or a user's edit of a claimed row (the daemon's own writes set or clear
               -- claimed_by, or only add checkpoints): a claim made ahead of the instant
               -- is then abandoned before anything is sent
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
