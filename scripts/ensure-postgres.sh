#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, postgres) are installed,
# because tests and the demo start throwaway clusters from them when no
# DATABASE_URL is given. Installs them on Debian/Ubuntu when run as root;
# otherwise stops with the exact command to run.
set -euo pipefail

if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1; then
	exit 0
fi
if [ -n "${DATABASE_URL:-}" ]; then
	exit 0 # the tests will use that server; no local binaries needed
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "PostgreSQL server binaries not found: installing them (apt-get install postgresql)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq postgresql >/dev/null
	exit 0
fi
cat >&2 <<'MSG'
PostgreSQL server binaries (initdb, postgres) are not installed, and tests and
the demo need them to start a throwaway database. Install them with:

    sudo apt-get install -y postgresql

or point DATABASE_URL at a PostgreSQL server whose role may CREATE DATABASE.
MSG
exit 1
