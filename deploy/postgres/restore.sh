#!/bin/sh
# restore.sh PGDATA [TARGET-TIME]: restore stanza outrigger's latest backup into PGDATA
# (absent or empty) and set it up to replay the archived WAL, to its end or, with
# TARGET-TIME (e.g. "2026-03-01 09:59:00+00"), to that moment, and then to promote.
# Start PostgreSQL on PGDATA to run the recovery. The copy does not archive
# (archive_mode=off): it must not write into the repository until it is made the new
# primary on purpose (deploy/OPERATIONS.md section 15).
#
# As postgres. Reads pgBackRest's config (/etc/pgbackrest.conf, or $PGBACKREST_CONFIG).
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
	echo "usage: restore.sh PGDATA [TARGET-TIME]" >&2
	exit 2
fi
pgdata=$1
target=${2:-}
stanza=${PGBACKREST_STANZA:-outrigger}

if [ -d "$pgdata" ] && [ -n "$(ls -A "$pgdata")" ]; then
	echo "restore: $pgdata is not empty: restore into a new directory" >&2
	exit 2
fi
mkdir -p "$pgdata"
chmod 0700 "$pgdata"

if [ -n "$target" ]; then
	set -- --type=time "--target=$target" --target-action=promote
else
	set -- --type=default
fi
pgbackrest --stanza="$stanza" "--pg1-path=$pgdata" --archive-mode=off "$@" restore
echo "restore: $pgdata is ready: start PostgreSQL on it to replay the WAL"
