-- Sandbox data: a quiet operator dashboard on an ordinary day, timestamps relative to now().
INSERT INTO profiles (id, email, display_name, role) VALUES
    ('00000000-0000-4000-8000-000000000001', 'alice@omnihub.test', 'Alice (SRE)', 'admin'),
    ('00000000-0000-4000-8000-000000000002', 'bob@omnihub.test', 'Bob (on-call)', 'operator'),
    ('00000000-0000-4000-8000-000000000003', 'carol@omnihub.test', 'Carol', 'viewer')
ON CONFLICT DO NOTHING;

INSERT INTO emergency_controls (id, reason, updated_by, updated_at)
VALUES (1, 'initial state', 'seed', now() - interval '3 days')
ON CONFLICT (id) DO NOTHING;

INSERT INTO workflows (name, status, created_by, created_at, started_at, completed_at, error)
SELECT
    'workflow-' || g,
    CASE WHEN g % 50 = 0 THEN 'failed' WHEN g % 7 = 0 THEN 'running' WHEN g % 11 = 0 THEN 'queued' ELSE 'completed' END,
    '00000000-0000-4000-8000-000000000002',
    now() - (g || ' minutes')::interval,
    now() - (g || ' minutes')::interval + interval '2 seconds',
    CASE WHEN g % 7 = 0 OR g % 11 = 0 THEN NULL ELSE now() - (g || ' minutes')::interval + interval '40 seconds' END,
    CASE WHEN g % 50 = 0 THEN 'executor timeout' END
FROM generate_series(1, 300) AS g;

INSERT INTO approval_queue (workflow_id, request_type, status, requested_at, expires_at, decided_at, decided_by)
SELECT w.id,
       (ARRAY['workflow_execution', 'trade_execution', 'config_change'])[1 + (row_number() OVER ()) % 3],
       CASE WHEN row_number() OVER () <= 7 THEN 'pending' ELSE 'approved' END,
       now() - ((row_number() OVER ()) * 2 || ' minutes')::interval,
       now() - ((row_number() OVER ()) * 2 || ' minutes')::interval + interval '24 hours',
       CASE WHEN row_number() OVER () <= 7 THEN NULL ELSE now() - ((row_number() OVER ()) || ' minutes')::interval END,
       CASE WHEN row_number() OVER () <= 7 THEN NULL ELSE '00000000-0000-4000-8000-000000000001'::uuid END
FROM (SELECT id FROM workflows ORDER BY created_at DESC LIMIT 40) AS w;

INSERT INTO audit_logs (created_at, actor, action, resource_type, resource_id, outcome, source, details) VALUES
    (now() - interval '2 days', 'alice@omnihub.test', 'emergency_control.disable', 'emergency_control', 'OMNIHUB_KILL_SWITCH', 'succeeded', 'app', '{"reason": "drill over"}'),
    (now() - interval '1 day', 'bob@omnihub.test', 'approval.approve', 'workflow', 'workflow-120', 'succeeded', 'app', '{}'),
    (now() - interval '3 hours', 'bob@omnihub.test', 'deploy.promote', 'deployment', 'omnihub-prod/api-gateway', 'succeeded', 'app', '{"revision": 7}');

INSERT INTO alembic_version (version_num) VALUES ('4f2a9c1d7e3b') ON CONFLICT DO NOTHING;
