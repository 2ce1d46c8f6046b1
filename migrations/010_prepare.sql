-- 010: prepare ahead (SCHEDULER_PREPARE_SECONDS). Four daemon columns on content_posts:
--
--   prepare_error        text         why the last preparation of this post failed (media too
--                                     big, unreachable, a refused container, …), shown by
--                                     `scheduler-daemon status` while the post is still
--                                     scheduled; NULL once a preparation succeeds
--   prepared_version     bigint       the schedule_version the post's artifacts (in
--                                     publish_state) were prepared for: a replica skips it
--   prepare_lease        text         the daemon run preparing it now, and until when: a
--   prepare_lease_until  timestamptz  compare-and-swap UPDATE takes it, so two replicas do not
--                                     both prepare one post; no lock outlives a statement
--
-- A change of schedule_version (a reschedule, a cancel, the daemon's own claim at the
-- instant) clears all four: what they said was about the version before. A tenant (004's
-- definition) can neither set them on INSERT nor change them on UPDATE, whatever column
-- grants it holds (a re-run of 004 after this file would grant them): the trigger below
-- puts the old values back.
--
-- Idempotent, nothing dropped, no existing row touched (the columns start NULL). Applies to
-- PostgreSQL 13+ and to an existing Supabase database; what the migrating role may not do
-- (grants on tables someone else owns) is skipped with a NOTICE.

ALTER TABLE content_posts
    ADD COLUMN IF NOT EXISTS prepare_error text,
    ADD COLUMN IF NOT EXISTS prepared_version bigint,
    ADD COLUMN IF NOT EXISTS prepare_lease text,
    ADD COLUMN IF NOT EXISTS prepare_lease_until timestamptz;

-- Fires after 002's scheduler_posts_before_update (BEFORE triggers run in name order), so
-- NEW.schedule_version is final here.
CREATE OR REPLACE FUNCTION scheduler_posts_prepare_columns() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF scheduler_writer_is_tenant(TG_RELID) THEN
            NEW.prepare_error := NULL;
            NEW.prepared_version := NULL;
            NEW.prepare_lease := NULL;
            NEW.prepare_lease_until := NULL;
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.schedule_version IS DISTINCT FROM OLD.schedule_version THEN
        NEW.prepare_error := NULL;
        NEW.prepared_version := NULL;
        NEW.prepare_lease := NULL;
        NEW.prepare_lease_until := NULL;
    ELSIF (NEW.prepare_error, NEW.prepared_version, NEW.prepare_lease, NEW.prepare_lease_until)
              IS DISTINCT FROM
          (OLD.prepare_error, OLD.prepared_version, OLD.prepare_lease, OLD.prepare_lease_until)
          AND scheduler_writer_is_tenant(TG_RELID) THEN
        NEW.prepare_error := OLD.prepare_error;
        NEW.prepared_version := OLD.prepared_version;
        NEW.prepare_lease := OLD.prepare_lease;
        NEW.prepare_lease_until := OLD.prepare_lease_until;
    END IF;
    RETURN NEW;
END
$$;

DO $migration$
BEGIN
    EXECUTE format('ALTER FUNCTION scheduler_posts_prepare_columns() SET search_path = pg_catalog, %I',
                   current_schema());
END
$migration$;

DROP TRIGGER IF EXISTS scheduler_posts_prepare_columns ON content_posts;
CREATE TRIGGER scheduler_posts_prepare_columns
    BEFORE INSERT OR UPDATE ON content_posts
    FOR EACH ROW EXECUTE FUNCTION scheduler_posts_prepare_columns();

-- The daemon's role writes them (003's grants, for the new columns).
DO $migration$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scheduler_daemon') THEN
        RAISE NOTICE 'no scheduler_daemon role: after creating it (003), re-run this file';
        RETURN;
    END IF;
    BEGIN
        GRANT UPDATE (prepare_error, prepared_version, prepare_lease, prepare_lease_until)
            ON content_posts TO scheduler_daemon;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'grants to scheduler_daemon skipped (insufficient privilege): run this file as the tables'' owner';
    END;
END
$migration$;

-- Tenants hold column grants after 004, which do not cover columns added later; revoke
-- them anyway in case a project granted them (the trigger guards the rest).
DO $migration$
DECLARE
    tenant text;
BEGIN
    FOREACH tenant IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = tenant);
        BEGIN
            EXECUTE format('REVOKE INSERT (prepare_error, prepared_version, prepare_lease, prepare_lease_until), '
                           'UPDATE (prepare_error, prepared_version, prepare_lease, prepare_lease_until) '
                           'ON content_posts FROM %I', tenant);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'privileges of % not narrowed (insufficient privilege): run this file as the tables'' owner', tenant;
        END;
    END LOOP;
END
$migration$;
