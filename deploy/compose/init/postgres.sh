#!/bin/sh
# SPDX-License-Identifier: MIT
# One database and one login role per Agora service, each role owning its
# own database only: NOSUPERUSER NOCREATEDB NOCREATEROLE, CONNECT on the
# database revoked from PUBLIC, so no service can open another's database
# (DESIGN.md section 1). PostgreSQL 15 no longer lets PUBLIC create in the
# public schema. Idempotent. Runs in the postgres:15 image (compose.yaml's
# init-postgres, and deploy/k8s's init Job); PGHOST, PGUSER, PGPASSWORD
# name the administrator; <SERVICE>_DB_PASSWORD each service's password.
set -eu
for svc in $AGORA_SERVICES; do
    var=$(echo "$svc" | tr 'a-z-' 'A-Z_')_DB_PASSWORD
    eval "pw=\${$var:?$var is not set}"
    psql -v ON_ERROR_STOP=1 -q -d postgres -v svc="$svc" -v pw="$pw" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'svc')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'svc') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %L',
              :'svc', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'svc', :'svc')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'svc') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'svc') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'svc', :'svc') \gexec
SQL
    echo "init-postgres: database and role '$svc' ready"
done
