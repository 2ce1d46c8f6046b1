-- 006: threads, a first comment and per-post platform options on content_posts.
--
-- Idempotent, non-destructive, PostgreSQL 13 or newer, and safe on an existing Supabase
-- database: three nullable columns are added (no table rewrite), no row is touched or
-- rechecked, and what the migrating role may not do (grants on tables someone
-- else owns) is skipped with a NOTICE. A column of one of these names that a frontend
-- already has with another type stops the migration with a message saying so.
--
-- What a frontend writes (tenants may write all three; the daemon only reads them):
--
--   thread            jsonb, default '[]' (NULL: none): the replies that follow the post, in order, each
--                     {"content": "text", "media": [ {url | storage_path, alt, mime}, … ]}
--                     (the media items exactly as in `media`). The post itself stays
--                     `content` + `media`: a post without a thread is what it always was, a
--                     thread of four is the post plus three items here. Published as a reply
--                     chain where the platform has one (its `thread` fact), else refused.
--   first_comment     text, default NULL: a comment the account posts under its own post right
--                     after it (LinkedIn, Facebook, Instagram, an X self-reply); NULL or '' for
--                     none.
--   platform_options  jsonb, default '{}' (NULL: none): options of the post's platform, one flat object,
--                     e.g. {"disable_notification": true} for Telegram. Each adapter declares
--                     the keys it takes and their types; any other key is refused when the
--                     post is published (a draft naming the keys the platform takes).
--
-- Why an ordered JSON array on the row and not child rows (content_post_items):
--   * a thread is written, edited and scheduled in one statement, which is all a Supabase
--     client (PostgREST) can do atomically: child rows would need several requests, and a
--     post could be claimed between the parent's insert and its children's;
--   * the row stays the unit of everything the daemon already guarantees: the claim, the
--     NOTIFY payload, schedule_version, the outcome write, RLS (003's owner policy covers the
--     items with the post), 004's column grants and write-time rules. Child rows would need
--     their own policies, grants, triggers (an item edited under a claimed post must abandon
--     the claim) and a join in the claim;
--   * order is the array's order, with no positions to keep unique and dense;
--   * the sizes are bounded here (below), so the row stays small enough to claim in a batch.
--   What is per item and written by the daemon (each published item's id and URL) is not the
--   frontend's: it lives in publish_state (see README, "Threads, first comments and options").
--
-- 1. Write-time rules, in the style of 004 (a trigger, not CHECK constraints, for the same
--    reason: only what a statement writes is checked). SQLSTATE 23514 with a message and a
--    hint a Supabase client shows, the rule's name in the constraint field:
--      scheduler_posts_thread_check            thread is a JSON array of at most 100 items,
--                                              each an object with `content` (a string of at
--                                              most 100,000 characters) and/or `media` (as
--                                              the media rule), at most 1,000,000 characters
--                                              in all; keys of the frontend's own are kept
--      scheduler_posts_first_comment_check     first_comment has at most 10,000 characters
--      scheduler_posts_platform_options_check  platform_options is a JSON object of at most
--                                              10,000 characters
--    The platforms' own limits (how many items a thread may have, a comment's length, the
--    options' keys and types) are far lower and checked by the daemon when it publishes.
--
-- 2. A thread whose first items are out when a later one fails ends as a draft saying so,
--    with each published item's id and URL in publish_state.items. A reschedule empties
--    publish_state (002), which would post those items again; a trigger keeps
--    publish_state.items through it, so the thread resumes after the last item that is out.
--    Not kept when the post was 'published' (posting a published row again is a new post), or
--    when the platform or connection_id changes (the items are out on another account).
--
-- 3. The new columns are the frontend's: where 004 narrowed anon's and authenticated's
--    grants to columns, they get INSERT and UPDATE on these three.

-- == columns ================================================================================

DO $migration$
DECLARE
    wanted constant jsonb := '{"thread": "jsonb", "first_comment": "text", "platform_options": "jsonb"}';
    col text;
    found text;
BEGIN
    FOR col IN SELECT jsonb_object_keys(wanted) LOOP
        SELECT format_type(atttypid, atttypmod) INTO found
          FROM pg_attribute
         WHERE attrelid = 'content_posts'::regclass AND attname = col AND attnum > 0 AND NOT attisdropped;
        IF found IS NOT NULL AND found <> wanted ->> col THEN
            RAISE EXCEPTION 'content_posts.% exists with type %, but the scheduler needs % there', col, found,
                wanted ->> col
                USING HINT = 'Rename your column (ALTER TABLE content_posts RENAME COLUMN ' || col
                             || ' TO …), then run the migration again.';
        END IF;
    END LOOP;
END
$migration$;

-- Nullable (NULL reads as '[]' / '{}'), and the defaults set apart: on PostgreSQL before 16 a
-- column added NOT NULL or with a default is refused while a function takes the table's row
-- type with a default (004's scheduler_post_problems), and existing rows are left untouched.
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS thread jsonb;
ALTER TABLE content_posts ALTER COLUMN thread SET DEFAULT '[]'::jsonb;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS first_comment text;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS platform_options jsonb;
ALTER TABLE content_posts ALTER COLUMN platform_options SET DEFAULT '{}'::jsonb;

-- == rules ==================================================================================

-- The first thing wrong with a thread value, as the daemon would say it (db/rows.py), or NULL.
CREATE OR REPLACE FUNCTION scheduler_thread_problem(thread jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    item jsonb;
    media_problem text;
BEGIN
    IF thread IS NULL OR thread = '[]'::jsonb THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(thread) <> 'array' THEN
        RETURN 'thread must be a JSON array of {content, media} items';
    END IF;
    IF jsonb_array_length(thread) > 100 THEN
        RETURN format('thread has %s items; a post may have at most 100', jsonb_array_length(thread));
    END IF;
    IF length(thread::text) > 1000000 THEN
        RETURN 'thread is longer than 1000000 characters';
    END IF;
    FOR i IN 0 .. jsonb_array_length(thread) - 1 LOOP
        item := thread -> i;
        IF jsonb_typeof(item) <> 'object' THEN
            RETURN format('thread[%s] must be an object with content and/or media', i);
        END IF;
        IF jsonb_typeof(item -> 'content') NOT IN ('string', 'null') THEN
            RETURN format('thread[%s].content must be a string', i);
        END IF;
        IF char_length(item ->> 'content') > 100000 THEN
            RETURN format('thread[%s].content is %s characters; the most an item may have is 100000',
                          i, char_length(item ->> 'content'));
        END IF;
        media_problem := scheduler_media_problem(nullif(item -> 'media', 'null'::jsonb));
        IF media_problem IS NOT NULL THEN
            RETURN format('thread[%s].%s', i, media_problem);
        END IF;
        IF nullif(item ->> 'content', '') IS NULL
           AND coalesce(jsonb_typeof(item -> 'media') <> 'array' OR jsonb_array_length(item -> 'media') = 0, true) THEN
            RETURN format('thread[%s] is empty: an item needs content or media', i);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- What breaks these rules in a row: one (rule, column, message, hint) each. With old_row (an
-- UPDATE), only the columns that changed are checked.
CREATE OR REPLACE FUNCTION scheduler_post_item_problems(new_row content_posts, old_row content_posts DEFAULT NULL)
RETURNS TABLE (rule text, column_name text, message text, hint text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    inserting constant boolean := old_row.id IS NULL;
    problem text;
BEGIN
    IF inserting OR new_row.thread IS DISTINCT FROM old_row.thread THEN
        problem := scheduler_thread_problem(new_row.thread);
        IF problem IS NOT NULL THEN
            RETURN QUERY SELECT 'scheduler_posts_thread_check', 'thread', problem,
                'thread is a JSON array of the replies that follow the post, such as '
                '[{"content": "2/3 …"}, {"content": "3/3", "media": [{"url": "https://…", "alt": "…"}]}].';
        END IF;
    END IF;
    IF (inserting OR new_row.first_comment IS DISTINCT FROM old_row.first_comment)
       AND char_length(new_row.first_comment) > 10000 THEN
        RETURN QUERY SELECT 'scheduler_posts_first_comment_check', 'first_comment',
            format('first_comment is %s characters; the most it may have is 10000', char_length(new_row.first_comment)),
            'Each platform''s own limit for a comment, checked when the post is published, is usually far lower.';
    END IF;
    IF inserting OR new_row.platform_options IS DISTINCT FROM old_row.platform_options THEN
        IF new_row.platform_options IS NOT NULL AND jsonb_typeof(new_row.platform_options) <> 'object' THEN
            problem := 'platform_options must be a JSON object';
        ELSIF length(new_row.platform_options::text) > 10000 THEN
            problem := 'platform_options is longer than 10000 characters';
        ELSE
            problem := NULL;
        END IF;
        IF problem IS NOT NULL THEN
            RETURN QUERY SELECT 'scheduler_posts_platform_options_check', 'platform_options', problem,
                'platform_options is one object of the post''s platform''s options, such as '
                '{"disable_notification": true}; see the README for each platform''s keys.';
        END IF;
    END IF;
END
$$;

-- As 004's check: an INSERT whole, an UPDATE on what it changes, and the whole row when a
-- tenant moves it into 'scheduled'.
CREATE OR REPLACE FUNCTION scheduler_posts_items_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    whole boolean := TG_OP = 'INSERT';
    problem record;
BEGIN
    IF NOT whole AND NEW.status = 'scheduled' AND OLD.status IS DISTINCT FROM 'scheduled' THEN
        whole := scheduler_writer_is_tenant(TG_RELID);
    END IF;
    SELECT * INTO problem
      FROM scheduler_post_item_problems(NEW, CASE WHEN NOT whole THEN OLD END)
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

-- == a partly published thread keeps what is out ==========================================

-- Runs after 002's scheduler_posts_before_update (BEFORE triggers fire in name order), which
-- empties publish_state on a reschedule.
CREATE OR REPLACE FUNCTION scheduler_posts_keep_published_items() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.publish_state = '{}'::jsonb AND OLD.publish_state ? 'items' AND OLD.status <> 'published'
       AND NEW.platform IS NOT DISTINCT FROM OLD.platform
       AND NEW.connection_id IS NOT DISTINCT FROM OLD.connection_id THEN
        NEW.publish_state := jsonb_build_object('items', OLD.publish_state -> 'items');
    END IF;
    RETURN NEW;
END
$$;

-- == triggers ===============================================================================

DROP TRIGGER IF EXISTS scheduler_posts_items_check ON content_posts;
CREATE TRIGGER scheduler_posts_items_check
    BEFORE INSERT OR UPDATE OF status, thread, first_comment, platform_options ON content_posts
    FOR EACH ROW EXECUTE FUNCTION scheduler_posts_items_check();

DROP TRIGGER IF EXISTS scheduler_posts_keep_published_items ON content_posts;
CREATE TRIGGER scheduler_posts_keep_published_items
    BEFORE UPDATE ON content_posts
    FOR EACH ROW EXECUTE FUNCTION scheduler_posts_keep_published_items();

-- Pinned search paths, as in 004: a writer's own objects cannot shadow what these call.
DO $migration$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'scheduler_thread_problem(jsonb)', 'scheduler_post_item_problems(content_posts, content_posts)',
        'scheduler_posts_items_check()', 'scheduler_posts_keep_published_items()']::regprocedure[] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I', f, current_schema());
    END LOOP;
END
$migration$;

GRANT EXECUTE ON FUNCTION scheduler_thread_problem(jsonb),
    scheduler_post_item_problems(content_posts, content_posts) TO PUBLIC;

-- == privileges =============================================================================

-- The frontend's new columns, where anon and authenticated write content_posts.
DO $migration$
DECLARE
    tenant text;
    privilege text;
BEGIN
    FOREACH tenant IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = tenant);
        BEGIN
            FOREACH privilege IN ARRAY ARRAY['INSERT', 'UPDATE'] LOOP
                CONTINUE WHEN NOT has_any_column_privilege(tenant, 'content_posts', privilege)
                           OR has_table_privilege(tenant, 'content_posts', privilege);
                EXECUTE format('GRANT %s (thread, first_comment, platform_options) ON content_posts TO %I',
                               privilege, tenant);
            END LOOP;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'privileges of % on the new columns not granted (insufficient privilege): run this file as the tables'' owner', tenant;
        END;
    END LOOP;
END
$migration$;
