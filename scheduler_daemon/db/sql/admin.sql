-- The operator commands' statements (status, doctor, schedule, cancel, retry,
-- connections), by name. Loaded once by db/sql.py with the other files; names are unique
-- across them, hence the admin_ prefix. None of them selects a token: only whether one is set.

-- name: admin_clock
-- The database clock, as epoch seconds (doctor measures the skew against the host).
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: admin_server
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num,
       current_database() AS database,
       pg_backend_pid() AS backend_pid;

-- name: admin_backend_pid
SELECT pg_backend_pid();

-- name: admin_tables
-- Which of the named tables exist (in the search path).
SELECT t.name, to_regclass(t.name) IS NOT NULL AS present
  FROM unnest($1::text[]) AS t(name);

-- name: admin_triggers
-- The user triggers on content_posts, whether enabled ('D' = disabled) and their function.
SELECT t.tgname AS name, t.tgenabled <> 'D' AS enabled, p.proname AS function
  FROM pg_trigger t
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgrelid = to_regclass('content_posts')
   AND NOT t.tgisinternal
 ORDER BY t.tgname;

-- name: admin_notify
SELECT pg_notify($1, $2);

-- name: admin_notification_queue
-- Fraction of the NOTIFY queue in use: it fills when a listener stops reading.
SELECT pg_notification_queue_usage()::float8;

-- name: admin_status_counts
SELECT status, count(*)::bigint AS posts
  FROM content_posts
 GROUP BY status
 ORDER BY status;

-- name: admin_scheduled
-- Every scheduled row with what is needed to compute its due instant in Python (the same
-- rules as the daemon: due.due_instant), so status and the daemon never disagree.
SELECT id, platform, campaign_id, scheduled_date, scheduled_time, timezone, retry_at,
       attempt_count, left(coalesce(content, ''), 80) AS content
  FROM content_posts
 WHERE status = 'scheduled';

-- name: admin_stuck
-- Posts held in 'publishing' for longer than $1 seconds (a claim that never finished).
SELECT id, platform, claimed_by, claimed_at, attempt_count,
       extract(epoch FROM (now() - claimed_at))::float8 AS held_seconds
  FROM content_posts
 WHERE status = 'publishing'
   AND (claimed_at IS NULL OR claimed_at < now() - make_interval(secs => $1::float8))
 ORDER BY claimed_at NULLS FIRST;

-- name: admin_recent_failures
-- Attempts that did not publish, finished in the last $1 seconds, newest first.
SELECT post_id, attempt, platform, instance, outcome, error_message, started_at, finished_at
  FROM publish_attempts
 WHERE outcome <> 'published'
   AND finished_at > now() - make_interval(secs => $1::float8)
 ORDER BY finished_at DESC
 LIMIT $2;

-- name: admin_failure_counts
SELECT platform, outcome, count(*)::bigint AS attempts
  FROM publish_attempts
 WHERE outcome <> 'published'
   AND finished_at > now() - make_interval(secs => $1::float8)
 GROUP BY platform, outcome
 ORDER BY platform, outcome;

-- name: admin_recent_drafts
-- Posts the daemon sent back to draft with a reason (failed, missed, outcome unknown, or
-- rejected before any attempt, e.g. a bad zone) whose row changed in the last $1 seconds,
-- newest first; `total` counts them all. A user's reschedule clears the reason.
SELECT id, platform, attempt_count, error_message, updated_at, count(*) OVER ()::bigint AS total
  FROM content_posts
 WHERE status = 'draft'
   AND error_message IS NOT NULL
   AND updated_at > now() - make_interval(secs => $1::float8)
 ORDER BY updated_at DESC
 LIMIT $2;

-- name: admin_post
SELECT id, platform, status, scheduled_date, scheduled_time, timezone, retry_at,
       error_message, attempt_count, claimed_by, claimed_at, published_at
  FROM content_posts
 WHERE id = $1;

-- name: admin_schedule
-- Plain SQL, as a frontend would write it: the triggers bump schedule_version and NOTIFY
-- the daemon, which arms the post. retry_at is cleared so the new time is the due time.
-- $5: the statuses the row may have; $6: true to require an error_message (retry).
UPDATE content_posts
   SET scheduled_date = $2,
       scheduled_time = $3,
       timezone = $4,
       status = 'scheduled',
       retry_at = NULL
 WHERE id = $1
   AND status = ANY($5::text[])
   AND (NOT $6::bool OR error_message IS NOT NULL)
RETURNING id, platform, status, scheduled_date, scheduled_time, timezone, error_message;

-- name: admin_cancel
UPDATE content_posts
   SET status = 'draft'
 WHERE id = $1
   AND status = 'scheduled'
RETURNING id, platform, status, scheduled_date, scheduled_time, timezone, error_message;

-- name: admin_connections
-- Connections without their tokens: only whether each is set.
SELECT id, user_id, platform, account_id, token_expires_at, needs_reconnect,
       access_token IS NOT NULL AND access_token <> '' AS has_access_token,
       refresh_token IS NOT NULL AND refresh_token <> '' AS has_refresh_token,
       coalesce(ARRAY(SELECT jsonb_object_keys(CASE jsonb_typeof(metadata)
                                                   WHEN 'object' THEN metadata
                                                   ELSE '{}'::jsonb END)
                      ORDER BY 1), '{}') AS metadata_keys,
       created_at, updated_at
  FROM platform_connections
 WHERE ($1::text IS NULL OR platform = $1)
   AND ($2::uuid IS NULL OR user_id = $2)
 ORDER BY platform, user_id, created_at;

-- name: admin_expiring_connections
-- Connections whose token expires within $1 seconds (or has expired), or that the
-- platform rejected (needs_reconnect).
SELECT id, user_id, platform, account_id, token_expires_at, needs_reconnect,
       refresh_token IS NOT NULL AND refresh_token <> '' AS has_refresh_token
  FROM platform_connections
 WHERE needs_reconnect
    OR token_expires_at < now() + make_interval(secs => $1::float8)
 ORDER BY token_expires_at NULLS LAST, platform;

-- name: admin_input_problems
-- Rows that break the write-time rules of migrations/004 (written before it, or with its
-- trigger disabled): per rule, how many posts and the first $1 ids. Read-only, about 20 µs
-- a post. Published posts are left out: the daemon never reads them again, and moving one
-- back to 'scheduled' gets it checked whole.
SELECT x.rule, count(*)::bigint AS posts, (array_agg(p.id ORDER BY p.id))[1:$1] AS ids
  FROM content_posts p
 CROSS JOIN LATERAL scheduler_post_problems(p) x
 WHERE p.status IS DISTINCT FROM 'published'
 GROUP BY x.rule
 ORDER BY x.rule;

-- name: admin_unlisted_zones
-- Zone names PostgreSQL knows that the write-time check does not list yet (a tzdata update
-- since the last scheduler_timezones_refresh(); the same names left out as there).
SELECT coalesce(array_agg(name ORDER BY name), '{}') AS names
  FROM pg_timezone_names
 WHERE name NOT IN ('localtime', 'posixrules', 'Factory')
   AND NOT scheduler_timezone_known(name);

-- name: admin_prepare_errors
-- Scheduled posts whose preparation ahead of the instant failed (migrations/010), with why;
-- the daemon retries until the instant. `total` counts them all, the first $1 are listed.
SELECT id, platform, prepare_error, count(*) OVER ()::bigint AS total
  FROM content_posts
 WHERE status = 'scheduled'
   AND prepare_error IS NOT NULL
 ORDER BY updated_at DESC
 LIMIT $1;
