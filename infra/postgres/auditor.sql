-- A read-only role for auditors (internal audit, the regulator's inspectors), to run in the
-- platform's database as its owner, once the service has created its tables (any `recovery`
-- command does):  psql "$RECOVERY_DATABASE_URL" -f infra/postgres/auditor.sql
-- Then give each auditor a login of their own in it (role settings are not inherited, so the
-- read-only default goes on the login):
--   CREATE ROLE auditor_wang LOGIN PASSWORD '...' IN ROLE recovery_auditor;
--   ALTER ROLE auditor_wang SET default_transaction_read_only = on;
-- The role can read the event log, its hash chains and every read model; it cannot write, create
-- or delete anything, and it cannot read the per-customer keys (personal data).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'recovery_auditor') THEN
        CREATE ROLE recovery_auditor NOLOGIN;
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO recovery_auditor', current_database());
END
$$;
REVOKE CREATE ON SCHEMA public FROM recovery_auditor;
GRANT USAGE ON SCHEMA public TO recovery_auditor;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO recovery_auditor;
-- Tables created later (a new read model) are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO recovery_auditor;
-- Key material stays out of reach: the per-customer keys and the lookup secret.
REVOKE ALL ON recovery_keys, recovery_secrets FROM recovery_auditor;
