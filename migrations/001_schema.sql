-- 001: tables the frontend writes and the daemon reads.
--
-- Safe on an existing Supabase database that already has these tables:
-- every statement is IF NOT EXISTS / ADD COLUMN IF NOT EXISTS and nothing is dropped.
-- Apply with `scheduler-daemon migrate`, psql, or the Supabase CLI.

-- Requires PostgreSQL 13 or newer (gen_random_uuid() is built in).

CREATE TABLE IF NOT EXISTS content_campaigns (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE content_campaigns ADD COLUMN IF NOT EXISTS name text;
ALTER TABLE content_campaigns ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE content_campaigns ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE IF NOT EXISTS platform_connections (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    platform text NOT NULL,
    account_id text,
    access_token text,
    refresh_token text,
    token_expires_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE platform_connections ADD COLUMN IF NOT EXISTS account_id text;
ALTER TABLE platform_connections ADD COLUMN IF NOT EXISTS access_token text;
ALTER TABLE platform_connections ADD COLUMN IF NOT EXISTS refresh_token text;
ALTER TABLE platform_connections ADD COLUMN IF NOT EXISTS token_expires_at timestamptz;
ALTER TABLE platform_connections ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
-- Set by the daemon when the platform rejects the token: other posts for this
-- connection then fail fast with "reconnect <platform>" until the user reconnects.
ALTER TABLE platform_connections ADD COLUMN IF NOT EXISTS needs_reconnect boolean NOT NULL DEFAULT false;
ALTER TABLE platform_connections ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE platform_connections ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS platform_connections_user_platform_idx
    ON platform_connections (user_id, platform);

CREATE TABLE IF NOT EXISTS content_posts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id uuid REFERENCES content_campaigns (id) ON DELETE CASCADE,
    platform text NOT NULL,
    connection_id uuid REFERENCES platform_connections (id) ON DELETE SET NULL,
    content text,
    media jsonb NOT NULL DEFAULT '[]'::jsonb,
    status text NOT NULL DEFAULT 'draft',
    scheduled_date date,
    scheduled_time time,
    timezone text NOT NULL DEFAULT 'UTC',
    published_at timestamptz,
    platform_post_id text,
    platform_post_url text,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS connection_id uuid REFERENCES platform_connections (id) ON DELETE SET NULL;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS content text;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS media jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'draft';
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS scheduled_date date;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS scheduled_time time;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS timezone text NOT NULL DEFAULT 'UTC';
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS published_at timestamptz;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS platform_post_id text;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS platform_post_url text;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS error_message text;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
-- Attempt bookkeeping, written only by the daemon.
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS attempt_count integer NOT NULL DEFAULT 0;
-- Set when a rate limit or a transient failure postpones the post: it then
-- overrides scheduled_date/time as the due instant. Cleared when the user reschedules.
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS retry_at timestamptz;
-- Bumped by a trigger whenever status, date, time, timezone or retry_at change. A timer
-- remembers the version it was armed with and the claim requires it unchanged.
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS schedule_version bigint NOT NULL DEFAULT 0;
-- Which daemon instance holds the row while it is 'publishing', and since when.
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS claimed_by text;
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS claimed_at timestamptz;
-- Checkpoints an adapter keeps across attempts (e.g. an Instagram container id),
-- so a retry never repeats a step that may already have taken effect.
ALTER TABLE content_posts ADD COLUMN IF NOT EXISTS publish_state jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE INDEX IF NOT EXISTS content_posts_scheduled_idx
    ON content_posts (status) WHERE status IN ('scheduled', 'publishing');
CREATE INDEX IF NOT EXISTS content_posts_campaign_idx ON content_posts (campaign_id);

CREATE TABLE IF NOT EXISTS publish_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id uuid NOT NULL REFERENCES content_posts (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    platform text NOT NULL,
    instance text,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    outcome text NOT NULL,
    error_message text,
    platform_post_id text,
    platform_post_url text
);
-- One row per attempt, even if an outcome write is retried after its commit went unacknowledged.
CREATE UNIQUE INDEX IF NOT EXISTS publish_attempts_once_idx ON publish_attempts (post_id, attempt, started_at);
