-- The preparer's statements (engine/preparer.py: SCHEDULER_PREPARE_SECONDS), by name.
-- Each one holds no lock beyond itself: the lease (prepare_lease, prepare_lease_until,
-- migrations/010) is a compare-and-swap, and the one write that ends a preparation is for
-- the row's version as it was leased (a reschedule, a cancel or the claim at the instant
-- bumps schedule_version, and 010's trigger then clears the lease).

-- name: prepare_lease
-- Lease the (id, version) pairs still scheduled at that version and not due yet (due_at,
-- migrations/007), not yet prepared for it, and not leased by another live daemon run ($3;
-- a lease lasts $4 seconds); return each
-- with what its preparation needs, in the shape of the claim (its candidate connections
-- included), in one round trip.
WITH leased AS (
    UPDATE content_posts p
       SET prepare_lease = $3,
           prepare_lease_until = now() + make_interval(secs => $4::float8)
      FROM unnest($1::uuid[], $2::bigint[]) AS want(id, version)
     WHERE p.id = want.id
       AND p.status = 'scheduled'
       AND p.schedule_version = want.version
       AND p.prepared_version IS DISTINCT FROM want.version
       AND p.due_at > now()
       AND (p.prepare_lease IS NULL OR p.prepare_lease = $3 OR p.prepare_lease_until < now())
 RETURNING p.id, p.platform, p.connection_id, p.campaign_id, p.content, p.media,
           p.thread, p.first_comment, p.platform_options, p.attempt_count, p.publish_state,
           (extract(epoch FROM p.due_at) * 1000000)::bigint AS due_us,
           p.prepare_error IS NOT NULL AS failed_before
)
SELECT l.*,
       camp.user_id,
       (SELECT coalesce(jsonb_agg(to_jsonb(pc)), '[]'::jsonb)
          FROM (SELECT pc.id, pc.user_id, pc.platform, pc.account_id, pc.access_token,
                       pc.refresh_token, pc.token_expires_at, pc.metadata, pc.needs_reconnect
                  FROM platform_connections pc
                 WHERE (l.connection_id IS NOT NULL AND pc.id = l.connection_id)
                    OR (l.connection_id IS NULL AND pc.user_id = camp.user_id
                        AND pc.platform = l.platform)
                 ORDER BY pc.created_at
                 LIMIT 2) pc) AS connections
  FROM leased l
  LEFT JOIN content_campaigns camp ON camp.id = l.campaign_id;

-- name: prepare_finish
-- The end of one preparation: $3 NULL = prepared for version $2, its checkpoints ($5,
-- publish_state keys as delivery.py and the adapter name them) kept and the error cleared;
-- else the error the user sees, and nothing of what it made. The lease is given back.
UPDATE content_posts
   SET prepared_version = CASE WHEN $3::text IS NULL THEN $2 ELSE prepared_version END,
       publish_state = CASE WHEN $3::text IS NULL THEN publish_state || $5::jsonb ELSE publish_state END,
       prepare_error = $3::text,
       prepare_lease = NULL,
       prepare_lease_until = NULL
 WHERE id = $1 AND status = 'scheduled' AND schedule_version = $2 AND prepare_lease = $4;

-- name: prepare_release
-- Leases of this run given back on stop (preparations cut short), so a restart or another
-- replica may take them at once.
UPDATE content_posts
   SET prepare_lease = NULL, prepare_lease_until = NULL
 WHERE id = ANY($1::uuid[]) AND prepare_lease = $2;
