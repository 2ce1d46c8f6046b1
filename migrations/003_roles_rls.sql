-- 003: least privilege for the daemon, and row-level security where Supabase's roles exist.
--
-- Idempotent and non-destructive: roles, grants and policies are created only if missing,
-- nothing is dropped or revoked, no row is touched. Applies cleanly on plain PostgreSQL
-- (no `authenticated` role, no `auth` schema: the RLS part is skipped) and on Supabase,
-- whose `postgres` user may create roles but is not a superuser (anything it may not do is
-- skipped with a NOTICE, never an error).
--
-- 1. The daemon's role: `scheduler_daemon` (NOLOGIN). It may
--      content_posts          SELECT; UPDATE of the columns the daemon writes
--      platform_connections   SELECT; UPDATE of the token columns (refresh, needs_reconnect)
--      publish_attempts       SELECT, INSERT
--      content_campaigns      SELECT
--      scheduler_migrations   SELECT (the daemon checks that migrations are applied)
--    and nothing else: no DELETE, no TRUNCATE, no DDL. LISTEN/NOTIFY need no grant.
--
--    Run the daemon as a LOGIN user in that role (as a role that can create roles):
--
--      CREATE ROLE scheduler_daemon_vm1 LOGIN PASSWORD '…' IN ROLE scheduler_daemon;
--      -- DATABASE_URL=postgresql://scheduler_daemon_vm1:…@db.example.com:5432/app?sslmode=verify-full
--
--    (one user per replica, or one shared: recovery tells replicas apart by
--    SCHEDULER_INSTANCE_ID, which every role can see in pg_stat_activity.application_name.)
--    Migrations themselves still need the owner of the tables (`scheduler-daemon migrate`
--    with the admin DATABASE_URL, or `supabase db push`).
--
-- 2. Row-level security, only where the `authenticated` role and `auth.uid()` exist
--    (Supabase): RLS is enabled on the four tables and owner-only policies are added for
--    `authenticated`:
--      content_campaigns, platform_connections   user_id = auth.uid()
--      content_posts                              through its campaign; a post may only name
--                                                 a connection of the same user
--      publish_attempts                           read-only, through post and campaign
--    Existing policies are kept (PostgreSQL ORs permissive policies): review yours if they
--    are broader. `anon` gets no policy, so it sees nothing. The daemon's role gets
--    unrestricted-row policies (its column grants still bound what it can do); Supabase's
--    `service_role` and table owners bypass RLS anyway.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scheduler_daemon') THEN
        BEGIN
            CREATE ROLE scheduler_daemon NOLOGIN;
        EXCEPTION
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'scheduler_daemon role not created (insufficient privilege); create it as an admin and re-run this file';
            WHEN duplicate_object THEN
                NULL;  -- created concurrently by another database's migration
        END;
    END IF;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scheduler_daemon') THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO scheduler_daemon', current_schema());
        GRANT SELECT ON content_posts, platform_connections, publish_attempts, content_campaigns,
                        scheduler_migrations TO scheduler_daemon;
        GRANT UPDATE (status, error_message, platform_post_id, platform_post_url, published_at, retry_at,
                      attempt_count, claimed_by, claimed_at, publish_state)
            ON content_posts TO scheduler_daemon;
        GRANT UPDATE (access_token, refresh_token, token_expires_at, metadata, needs_reconnect, updated_at)
            ON platform_connections TO scheduler_daemon;
        GRANT INSERT ON publish_attempts TO scheduler_daemon;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'grants to scheduler_daemon skipped (insufficient privilege): run this file as the tables'' owner';
    END;
END
$$;

DO $$
DECLARE
    owner_of_post constant text :=
        'EXISTS (SELECT 1 FROM content_campaigns c WHERE c.id = campaign_id AND c.user_id = auth.uid())';
    own_connection constant text :=
        '(connection_id IS NULL OR EXISTS (SELECT 1 FROM platform_connections pc'
        ' WHERE pc.id = connection_id AND pc.user_id = auth.uid()))';
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')
       OR to_regprocedure('auth.uid()') IS NULL THEN
        RAISE NOTICE 'no Supabase authenticated role / auth.uid(): row-level security not enabled';
        RETURN;
    END IF;
    BEGIN
        FOREACH t IN ARRAY ARRAY['content_campaigns', 'platform_connections', 'content_posts', 'publish_attempts'] LOOP
            EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        END LOOP;
        GRANT SELECT, INSERT, UPDATE, DELETE ON content_campaigns, platform_connections, content_posts
            TO authenticated;
        GRANT SELECT ON publish_attempts TO authenticated;

        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = 'content_campaigns' AND policyname = 'scheduler_owner') THEN
            CREATE POLICY scheduler_owner ON content_campaigns FOR ALL TO authenticated
                USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = 'platform_connections' AND policyname = 'scheduler_owner') THEN
            CREATE POLICY scheduler_owner ON platform_connections FOR ALL TO authenticated
                USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = 'content_posts' AND policyname = 'scheduler_owner') THEN
            EXECUTE format(
                'CREATE POLICY scheduler_owner ON content_posts FOR ALL TO authenticated USING (%s) WITH CHECK (%s AND %s)',
                owner_of_post, owner_of_post, own_connection);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = 'publish_attempts' AND policyname = 'scheduler_owner') THEN
            CREATE POLICY scheduler_owner ON publish_attempts FOR SELECT TO authenticated
                USING (EXISTS (SELECT 1 FROM content_posts p JOIN content_campaigns c ON c.id = p.campaign_id
                                WHERE p.id = post_id AND c.user_id = auth.uid()));
        END IF;

        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scheduler_daemon') THEN
            FOREACH t IN ARRAY ARRAY['content_campaigns', 'platform_connections', 'content_posts', 'publish_attempts'] LOOP
                IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                               AND tablename = t AND policyname = 'scheduler_daemon_rows') THEN
                    EXECUTE format(
                        'CREATE POLICY scheduler_daemon_rows ON %I FOR ALL TO scheduler_daemon USING (true) WITH CHECK (true)', t);
                END IF;
            END LOOP;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'row-level security not enabled (insufficient privilege): run this file as the tables'' owner';
    END;
END
$$;
