-- Every statement the daemon sends, by name. Loaded once by db/sql.py.
-- Batched statements take parallel arrays and unnest them: one round trip per batch.

-- name: load_scheduled
-- The boot load and every resync: all that is needed to arm each scheduled row due before $1
-- (now + SCHEDULER_HORIZON_SECONDS; later rows are loaded by load_horizon_step as the
-- horizon moves on), and every row without a stored due_at (written with the trigger off,
-- or unschedulable), so that those still go to draft with their reason. The due
-- instant comes from the database (migrations/007: due_at, or computed where a row was
-- written with the trigger off) as microseconds since the epoch; the date, time and
-- retry_at columns are never decoded here, so no value in them (year 10000, a BC date) can
-- fail the load. problem: why the row has no usable instant (it goes to draft with it).
SELECT id, schedule_version,
       (extract(epoch FROM due) * 1000000)::bigint AS due_us,
       CASE WHEN due IS NULL OR attempt_count >= 2147483647 OR schedule_version >= 9223372036854775807
            THEN coalesce(scheduler_due_problem(scheduled_date, scheduled_time, timezone, retry_at,
                                                attempt_count, schedule_version),
                          'the due instant cannot be computed')
       END AS problem
  FROM (SELECT id, schedule_version, attempt_count, scheduled_date, scheduled_time, timezone, retry_at,
               coalesce(due_at, scheduler_due_at(scheduled_date, scheduled_time, timezone, retry_at)) AS due
          FROM content_posts
         WHERE status = 'scheduled' AND (due_at < $1 OR due_at IS NULL)) s;

-- name: load_horizon_step
-- One step of the horizon: the scheduled rows due in [$1, $2), the previous end of the
-- horizon and its new one. One range scan of 007's partial index (due_at) WHERE status =
-- 'scheduled', so the cost is the rows in the step, not the table. due_at is never NULL
-- here (load_scheduled takes those); problem: a counter at its maximum.
SELECT id, schedule_version,
       (extract(epoch FROM due_at) * 1000000)::bigint AS due_us,
       CASE WHEN attempt_count >= 2147483647 OR schedule_version >= 9223372036854775807
            THEN coalesce(scheduler_due_problem(scheduled_date, scheduled_time, timezone, retry_at,
                                                attempt_count, schedule_version),
                          'the due instant cannot be computed')
       END AS problem
  FROM content_posts
 WHERE status = 'scheduled' AND due_at >= $1 AND due_at < $2;

-- name: claim
-- Atomically move due rows from 'scheduled' to 'publishing', only if they are still at the
-- version the timer was armed with AND the row itself says they are due: due_at within $4
-- seconds ahead of now() (the claim lead and a second of slack for the clocks) and not
-- more than $5 (the grace window) behind it. A notification only armed the timer: whatever
-- it said, a row due in an hour is not claimed ('early', with its real instant).
-- Replicas split a burst instead of queueing behind each other: each row is locked with
-- SKIP LOCKED, in the order the ids are sent (each replica sends its own order,
-- engine/claim_order.py), so a claim never waits on another replica's claim (nor on a
-- user's open transaction) and takes only the rows it could lock at once. The verdicts
-- are decided on the locked row (its newest version), which nobody can change until this
-- statement commits. Every row asked for that is still scheduled comes back with its verdict:
--   due            claimed: the row's columns, with its platform connections (at most 2:
--                  the one named by connection_id, or the user's for that platform; two
--                  means ambiguous), in the same round trip
--   busy           scheduled, but another transaction held its lock (another replica's
--                  claim, most likely): arm it again shortly. Its claim then finds it
--                  taken (nothing to do) or, if that transaction rolled back (its replica
--                  died mid-claim), still scheduled, and takes it
--   early          not due yet: arm it at due_us
--   moved          at another version than the timer's (a lost or forged notification):
--                  arm it at its own version and due_us
--   missed         overdue beyond the grace window: draft
--   unschedulable  no due instant, or a counter at its maximum: draft with problem
-- Nothing here can overflow (a row with a counter at its maximum is never updated, and 007's
-- trigger stops the version at the maximum), so no row can fail the batch for the others.
-- Every join is on the primary key, each row of the batch locked by its own index lookup
-- (the LATERAL subquery runs once per id), and no CTE is joined to another CTE: the plan
-- stays linear in the batch whatever the planner guesses about the rows.
WITH asked AS (
    SELECT want.id, want.version AS asked, s.status AS seen, l.*
      FROM unnest($1::uuid[], $2::bigint[]) AS want(id, version)
      -- the row as this statement's snapshot has it: scheduled here but not locked below = busy
      LEFT JOIN content_posts s ON s.id = want.id
      LEFT JOIN LATERAL (
          SELECT p.schedule_version, p.attempt_count, d.due,
                 CASE WHEN d.due IS NULL OR p.attempt_count >= 2147483647
                           OR p.schedule_version >= 9223372036854775807
                      THEN coalesce(scheduler_due_problem(p.scheduled_date, p.scheduled_time, p.timezone,
                                                          p.retry_at, p.attempt_count, p.schedule_version),
                                    'the due instant cannot be computed')
                 END AS problem
            FROM content_posts p
           CROSS JOIN LATERAL (SELECT coalesce(p.due_at, scheduler_due_at(p.scheduled_date, p.scheduled_time,
                                                                          p.timezone, p.retry_at)) AS due) d
           WHERE p.id = want.id AND p.status = 'scheduled'
             FOR UPDATE OF p SKIP LOCKED
      ) l ON true
), judged AS (
    SELECT a.*,
           a.schedule_version IS NOT NULL AS locked,
           coalesce(a.problem IS NULL
                    AND a.schedule_version = a.asked
                    AND a.due BETWEEN now() - make_interval(secs => $5) AND now() + make_interval(secs => $4),
                    false) AS claimable
      FROM asked a
), claimed AS (
    -- Only the rows locked above, and only by id: the lock is ours, so the row is the one
    -- judged (a newer version than the snapshot's is updated through it).
    UPDATE content_posts p
       SET status = 'publishing',
           claimed_by = $3,
           claimed_at = now(),
           attempt_count = p.attempt_count + 1
      FROM judged j
     WHERE p.id = j.id AND j.claimable
 RETURNING p.id, p.platform, p.connection_id, p.campaign_id, p.content, p.media,
           p.thread, p.first_comment, p.platform_options, p.attempt_count, p.publish_state,
           (extract(epoch FROM j.due) * 1000000)::bigint AS due_us
)
SELECT 'due' AS verdict, c.id AS asked_id, NULL::bigint AS asked_version, c.due_us, NULL::text AS problem,
       c.id, c.platform, c.connection_id, c.campaign_id, c.content, c.media, c.thread, c.first_comment,
       c.platform_options, c.attempt_count, c.publish_state,
       camp.user_id,
       (SELECT coalesce(jsonb_agg(to_jsonb(pc)), '[]'::jsonb)
          FROM (SELECT pc.id, pc.user_id, pc.platform, pc.account_id, pc.access_token,
                       pc.refresh_token, pc.token_expires_at, pc.metadata, pc.needs_reconnect
                  FROM platform_connections pc
                 WHERE (c.connection_id IS NOT NULL AND pc.id = c.connection_id)
                    OR (c.connection_id IS NULL AND pc.user_id = camp.user_id
                        AND pc.platform = c.platform)
                 ORDER BY pc.created_at
                 LIMIT 2) pc) AS connections
  FROM claimed c
  LEFT JOIN content_campaigns camp ON camp.id = c.campaign_id
UNION ALL
SELECT CASE WHEN NOT j.locked THEN 'busy'
            WHEN j.problem IS NOT NULL THEN 'unschedulable'
            WHEN j.schedule_version <> j.asked THEN 'moved'
            WHEN j.due > now() THEN 'early'
            ELSE 'missed' END,
       j.id, coalesce(j.schedule_version, j.asked), (extract(epoch FROM j.due) * 1000000)::bigint, j.problem,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM judged j
 WHERE NOT j.claimable AND (j.locked OR j.seen = 'scheduled');

-- name: record_outcomes
-- Write each attempt's outcome on its row and in publish_attempts, in one statement.
-- A 'published' outcome lands even if the user touched the row meanwhile: a platform
-- post id is never forgotten. Other outcomes land only while we still hold the row.
WITH o AS (
    SELECT *
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                  $6::timestamptz[], $7::int[], $8::timestamptz[], $9::timestamptz[],
                  $10::text[], $11::text[])
        AS o(id, status, error_message, platform_post_id, platform_post_url,
             retry_at, attempt, started_at, finished_at, outcome, platform)
), updated AS (
    UPDATE content_posts p
       SET status = o.status,
           error_message = o.error_message,
           -- a thread that failed after its first items went out names its first item too
           platform_post_id = CASE WHEN o.status = 'published' OR o.platform_post_id IS NOT NULL
                                   THEN o.platform_post_id ELSE p.platform_post_id END,
           platform_post_url = CASE WHEN o.status = 'published' OR o.platform_post_id IS NOT NULL
                                    THEN o.platform_post_url ELSE p.platform_post_url END,
           published_at = CASE WHEN o.status = 'published' THEN o.finished_at ELSE p.published_at END,
           retry_at = o.retry_at,
           claimed_by = NULL,
           claimed_at = NULL
      FROM o
     WHERE p.id = o.id
       AND (o.status = 'published' OR (p.status = 'publishing' AND p.claimed_by = $12))
 RETURNING p.id
), audit AS (
    INSERT INTO publish_attempts (post_id, attempt, platform, instance, started_at, finished_at,
                                  outcome, error_message, platform_post_id, platform_post_url)
    SELECT o.id, o.attempt, o.platform, $12, o.started_at, o.finished_at,
           o.outcome, o.error_message, o.platform_post_id, o.platform_post_url
      FROM o
     WHERE EXISTS (SELECT 1 FROM content_posts p WHERE p.id = o.id)
    ON CONFLICT (post_id, attempt, started_at) DO NOTHING
)
SELECT count(*) FROM updated;

-- name: reject
-- Scheduled rows we cannot publish go back to draft with the reason, unless the user changed
-- them meanwhile. Each reason is the database's own verdict on the row (load_scheduled's
-- problem, claim's missed or unschedulable), never a notification's word: a forged payload
-- cannot turn someone's post into a draft.
UPDATE content_posts p
   SET status = 'draft', error_message = r.message
  FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS r(id, version, message)
 WHERE p.id = r.id
   AND p.status = 'scheduled'
   AND p.schedule_version = r.version;

-- name: checkpoint
UPDATE content_posts
   SET publish_state = publish_state || $2::jsonb
 WHERE id = $1 AND status = 'publishing' AND claimed_by = $3;

-- name: connection
SELECT id, user_id, platform, account_id, access_token, refresh_token, token_expires_at,
       metadata, needs_reconnect
  FROM platform_connections
 WHERE id = $1;

-- name: swap_tokens
-- Refreshed tokens, stored only if the row still holds the access token the refresh
-- started from: a concurrent refresh (another daemon) or a reconnect wins, and the caller
-- reads the winner's row instead.
UPDATE platform_connections
   SET access_token = $3,
       refresh_token = coalesce($4, refresh_token),
       token_expires_at = $5,
       metadata = metadata || coalesce($6::jsonb, '{}'::jsonb),
       needs_reconnect = false,
       updated_at = now()
 WHERE id = $1 AND access_token IS NOT DISTINCT FROM $2
RETURNING id, user_id, platform, account_id, access_token, refresh_token, token_expires_at,
          metadata, needs_reconnect;

-- name: mark_needs_reconnect
-- Only if the token is still the one that failed: a reconnect in between wins.
UPDATE platform_connections
   SET needs_reconnect = true, updated_at = now()
 WHERE id = $1 AND access_token IS NOT DISTINCT FROM $2;

-- name: release_own
-- Rows this instance claimed but is not publishing (the claim's answer was lost): nothing
-- was sent for them, so they are simply scheduled again.
UPDATE content_posts
   SET status = 'scheduled', claimed_by = NULL, claimed_at = NULL, retry_at = now(),
       attempt_count = greatest(attempt_count - 1, 0)
 WHERE status = 'publishing' AND claimed_by = $1 AND NOT (id = ANY($2::uuid[]))
RETURNING id;

-- name: release
-- Give back a claim made ahead of the instant that the user edited before anything was
-- sent: the row is scheduled again (and re-armed by its notification) unless the user
-- took it out of 'publishing' themselves.
UPDATE content_posts
   SET status = 'scheduled', claimed_by = NULL, claimed_at = NULL,
       attempt_count = greatest(attempt_count - 1, 0)
 WHERE id = $1 AND status = 'publishing' AND claimed_by = $2;

-- name: take_run_lock
-- This run's liveness: a session-level advisory lock keyed by its run id, held by a
-- connection of its own (db/liveness.py) for as long as the run lives. Survivors read
-- pg_locks, which every role may read and which no setting garbles or a pooler drops.
SELECT pg_try_advisory_lock(hashtextextended($1, 0));

-- name: release_run_lock
-- A graceful stop: others see this run gone at once.
SELECT pg_advisory_unlock(hashtextextended($1, 0));

-- name: heartbeat
-- The listener's heartbeat, the only statement an idle daemon sends: the database's clock,
-- whether this run's lock is still held (a half-open lock session is renewed), and the
-- runs that hold rows in 'publishing' without holding their lock (dead: recovery takes
-- them over). For 5 s after a server start nobody is taken for dead: every
-- run's lock session reconnects and takes its lock again within that time.
WITH held AS (
    SELECT (l.classid::int8 << 32) | l.objid::int8 AS key
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT extract(epoch FROM clock_timestamp())::float8 AS epoch,
       hashtextextended($1, 0) IN (SELECT key FROM held) AS lock_held,
       ARRAY(SELECT DISTINCT p.claimed_by
               FROM content_posts p
              WHERE p.status = 'publishing'
                AND p.claimed_by <> $1
                AND hashtextextended(p.claimed_by, 0) NOT IN (SELECT key FROM held)
                AND now() - pg_postmaster_start_time() > interval '5 seconds'
              LIMIT 100) AS dead_runs;

-- name: recover_orphans
-- Rows in 'publishing' of runs recovery has confirmed dead ($2: their lock absent for
-- SCHEDULER_RECOVERY_AFTER_SECONDS), re-checked here: a run whose lock is back keeps its
-- rows. Platforms in $4 deduplicate a repeat within $5 seconds of the first send, so their
-- posts are published again while inside it; the others (and a repeat past the window) end
-- as a draft whose outcome is unknown, but only once the dead run's request cannot still be
-- under way: $3 seconds (a request's deadline) after the first sweep that found the row
-- orphaned (publish_state.orphaned_at, stamped here, so a survivor that restarts does not
-- start the wait again), or at once if the claim is older than a whole attempt's ($6).
-- Returns the rows resolved, and a row without an id whose next_due says when the first
-- of those still waiting is due (epoch seconds), if any.
WITH held AS (
    SELECT (l.classid::int8 << 32) | l.objid::int8 AS key
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
), windows AS (
    SELECT * FROM unnest($4::text[], $5::float8[]) AS w(platform, seconds)
), candidate AS (
    SELECT p.id, p.platform, p.claimed_by, p.claimed_at, p.attempt_count,
           coalesce((p.publish_state->>'first_sent_at')::timestamptz, p.claimed_at, now()) AS first_sent_at,
           (p.publish_state->>'orphaned_at')::timestamptz AS orphaned_at,
           w.seconds AS window_s
      FROM content_posts p
      LEFT JOIN windows w ON w.platform = p.platform
     WHERE p.status = 'publishing'
       AND p.claimed_by IS DISTINCT FROM $1
       AND p.claimed_by = ANY($2::text[])
       AND hashtextextended(p.claimed_by, 0) NOT IN (SELECT key FROM held)
       FOR UPDATE OF p SKIP LOCKED
), orphan AS (
    SELECT c.*,
           c.window_s IS NOT NULL AND c.first_sent_at > now() - make_interval(secs => c.window_s) AS repeatable
      FROM candidate c
), due AS (
    SELECT o.*,
           o.repeatable OR coalesce(o.orphaned_at < now() - make_interval(secs => $3), false)
               OR coalesce(o.claimed_at < now() - make_interval(secs => $6), false) AS now_due
      FROM orphan o
), stamped AS (
    UPDATE content_posts p
       SET publish_state = p.publish_state || jsonb_build_object('orphaned_at', now())
      FROM due o
     WHERE p.id = o.id AND NOT o.now_due AND o.orphaned_at IS NULL
), resolved AS (
    UPDATE content_posts p
       SET status = CASE WHEN o.repeatable THEN 'scheduled' ELSE 'draft' END,
           retry_at = CASE WHEN o.repeatable THEN now() END,
           -- the window counts from the first send, not from this repeat
           publish_state = CASE WHEN o.repeatable
                                THEN (p.publish_state - 'orphaned_at')
                                     || jsonb_build_object('first_sent_at', o.first_sent_at)
                                ELSE p.publish_state END,
           error_message = CASE WHEN o.repeatable THEN NULL ELSE
               'outcome unknown: the daemon publishing this post (' || coalesce(o.claimed_by, '?') ||
               ') stopped before recording the result' ||
               CASE WHEN o.window_s IS NOT NULL THEN ', and its first send is older than ' || o.platform ||
                    '''s deduplication window, so a repeat could publish it twice' ELSE '' END ||
               '. The post may have been published: check ' || o.platform || ' before rescheduling' END,
           claimed_by = NULL, claimed_at = NULL
      FROM due o
     WHERE p.id = o.id AND o.now_due
 RETURNING p.id, p.platform, p.status, p.error_message, o.claimed_by AS instance, o.claimed_at, o.attempt_count
), audit AS (
    INSERT INTO publish_attempts (post_id, attempt, platform, instance, started_at, finished_at, outcome, error_message)
    SELECT id, attempt_count, platform, instance, claimed_at, now(),
           CASE WHEN status = 'scheduled' THEN 'retry' ELSE 'unknown' END, error_message
      FROM resolved
)
SELECT id, platform, status, instance, NULL::float8 AS next_due FROM resolved
UNION ALL
-- when the first of the rows left waiting for a request's deadline is due (the next sweep)
SELECT NULL, NULL, NULL, NULL,
       extract(epoch FROM min(coalesce(orphaned_at, now())) + make_interval(secs => $3))::float8
  FROM due WHERE NOT now_due
HAVING count(*) > 0;
