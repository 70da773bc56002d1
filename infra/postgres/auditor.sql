-- A read-only role for auditors (internal audit, the regulator's inspectors), to run in the
-- platform's database as a superuser (taking the lock functions from PUBLIC needs one), once the
-- service has created its tables (any `recovery` command does):
--   psql "$RECOVERY_DATABASE_URL" -f infra/postgres/auditor.sql
-- Then give each auditor a login of their own in it. Role settings are not inherited, so the
-- read-only default and the time limits go on the login:
--   CREATE ROLE auditor_wang LOGIN PASSWORD '...' IN ROLE recovery_auditor;
--   ALTER ROLE auditor_wang SET default_transaction_read_only = on;
--   ALTER ROLE auditor_wang SET statement_timeout = '5min';
--   ALTER ROLE auditor_wang SET idle_in_transaction_session_timeout = '1min';
-- Running this script again sets both time limits on every login in the role that has none.
-- The role can read the event log, its hash chains and every read model; it cannot write, create
-- or delete anything, and it cannot read the per-customer keys (personal data). It cannot take
-- advisory locks (the read model's writer and the outbox relay hold theirs to work: an auditor's
-- session holding one would stall them) nor create temporary tables. Both are PUBLIC's by
-- default, so this database's PUBLIC loses them, and they are granted back to the role running
-- this script and to the database's owner: the service's role must be one of them (other roles
-- that need them must be granted them here too).

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

-- Advisory locks: every signature ((bigint) and (int, int)) of the lock functions, shared or not,
-- session or transaction, waiting or try_. pg_catalog's functions are per database: other
-- databases of the cluster keep PUBLIC's EXECUTE.
DO $$
DECLARE
    fn regprocedure;
    owner text := (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database());
BEGIN
    FOR fn IN SELECT oid::regprocedure FROM pg_proc
              WHERE pronamespace = 'pg_catalog'::regnamespace
                AND proname ~ '^pg_(try_)?advisory_(xact_)?lock(_shared)?$'
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I, %I', fn, current_user, owner);
    END LOOP;
END
$$;

-- Temporary tables: the service stages COPY in them (infra/sql.py); auditors need none.
DO $$
DECLARE
    owner text := (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database());
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO %I, %I', current_database(), current_user, owner);
END
$$;

-- Time limits on every auditor login that has none: a forgotten session (a query left running, a
-- transaction left open) would hold its snapshot and locks, keeping vacuum and rebuilds waiting.
DO $$
DECLARE
    login name;
    setting text;
BEGIN
    FOR login IN SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
                 WHERE m.roleid = 'recovery_auditor'::regrole AND r.rolcanlogin
    LOOP
        FOREACH setting IN ARRAY ARRAY['statement_timeout=5min', 'idle_in_transaction_session_timeout=1min']
        LOOP
            IF NOT EXISTS (SELECT FROM pg_db_role_setting s, unnest(s.setconfig) AS c
                           WHERE s.setrole = login::regrole AND s.setdatabase = 0
                             AND c LIKE split_part(setting, '=', 1) || '=%') THEN
                EXECUTE format('ALTER ROLE %I SET %s = %L', login, split_part(setting, '=', 1),
                               split_part(setting, '=', 2));
            END IF;
        END LOOP;
    END LOOP;
END
$$;
