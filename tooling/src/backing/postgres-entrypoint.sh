#!/bin/sh
# The official postgres image's contract, as far as deploy/compose.yaml uses
# it: POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB make the cluster on
# the first start, in PGDATA; then the server runs in the foreground.
set -eu
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "error: POSTGRES_PASSWORD is not set" >&2
		exit 1
	fi
	printf '%s\n' "$POSTGRES_PASSWORD" >/tmp/pwfile
	initdb --username="$user" --pwfile=/tmp/pwfile --auth-local=trust \
		--auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA"
	rm -f /tmp/pwfile
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	if [ "$database" != postgres ]; then
		pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
		createdb --username="$user" "$database"
		pg_ctl -D "$PGDATA" -m fast -w stop
	fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
