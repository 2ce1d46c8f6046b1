-- Setting a database up: migrations (db/migrate.py), the embedded server (db/embedded.py)
-- and the demo's seed (db/demo.py), by name. Loaded once by db/sql.py.

-- name: migrations_table_exists
SELECT to_regclass('scheduler_migrations') IS NOT NULL;

-- name: applied_migrations
SELECT name FROM scheduler_migrations ORDER BY name;

-- name: lock_migrations
-- A session advisory lock serialises replicas that start together ($1: a constant every
-- scheduler-daemon shares).
SELECT pg_advisory_lock($1);

-- name: unlock_migrations
SELECT pg_advisory_unlock($1);

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS scheduler_migrations (
    name text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: record_migration
INSERT INTO scheduler_migrations (name) VALUES ($1);

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = $1;

-- name: demo_campaign
INSERT INTO content_campaigns (user_id, name) VALUES ($1, 'demo') RETURNING id;

-- name: demo_connection
INSERT INTO platform_connections (user_id, platform, account_id) VALUES ($1, 'log', 'demo');

-- name: demo_post
INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time, timezone)
VALUES ($1, 'log', $2, 'scheduled', $3, $4, 'UTC');
