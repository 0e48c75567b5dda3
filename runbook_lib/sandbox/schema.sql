-- OmniHub tables the runbooks read and act on (sandbox schema; mirrors production names).
CREATE TABLE IF NOT EXISTS profiles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email        text NOT NULL UNIQUE,
    display_name text NOT NULL,
    role         text NOT NULL DEFAULT 'operator' CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS workflows (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL,
    status       text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    created_by   uuid REFERENCES profiles (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    completed_at timestamptz,
    error        text
);
CREATE INDEX IF NOT EXISTS workflows_status_created ON workflows (status, created_at);

CREATE TABLE IF NOT EXISTS approval_queue (
    id           bigserial PRIMARY KEY,
    workflow_id  uuid NOT NULL REFERENCES workflows (id),
    request_type text NOT NULL DEFAULT 'workflow_execution',
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    decided_at   timestamptz,
    decided_by   uuid REFERENCES profiles (id),
    reason       text
);
CREATE INDEX IF NOT EXISTS approval_queue_status ON approval_queue (status, requested_at);

-- One row: the three emergency switches of the operator dashboard.
CREATE TABLE IF NOT EXISTS emergency_controls (
    id                  int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    omnihub_kill_switch boolean NOT NULL DEFAULT false,
    execution_safe_mode boolean NOT NULL DEFAULT false,
    operator_takeover   boolean NOT NULL DEFAULT false,
    reason              text,
    updated_by          text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Append-only record of operator and runbook actions.
CREATE TABLE IF NOT EXISTS audit_logs (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    action        text NOT NULL,
    resource_type text,
    resource_id   text,
    outcome       text,
    source        text NOT NULL DEFAULT 'app',
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_logs_created ON audit_logs (created_at);

-- The migration tool's own table (alembic): the applied revision.
CREATE TABLE IF NOT EXISTS alembic_version (
    version_num varchar(32) PRIMARY KEY
);
