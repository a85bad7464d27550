#!/bin/sh
# backup.sh [full|diff|incr]: a pgBackRest backup of the stanza outrigger, taken on the
# primary. Runs on every data node from pgbackrest-backup@.service; on the standby it does
# nothing, so whichever node is primary after a failover takes the backups.
#
# As postgres. Reads pgBackRest's config (/etc/pgbackrest.conf, or $PGBACKREST_CONFIG)
# and connects to the local PostgreSQL over its socket (PGHOST, PGPORT if not the
# defaults). deploy/OPERATIONS.md section 15.
set -eu

type=${1:-incr}
case $type in
full | diff | incr) ;;
*)
	echo "usage: backup.sh [full|diff|incr]" >&2
	exit 2
	;;
esac
stanza=${PGBACKREST_STANZA:-outrigger}

if ! recovery=$(psql -X -A -t -q -d postgres -c 'SELECT pg_is_in_recovery()'); then
	echo "backup: PostgreSQL on this node does not answer" >&2
	exit 1
fi
if [ "$recovery" != f ]; then
	echo "backup: this node is a standby: the primary takes the backups"
	exit 0
fi
pgbackrest --stanza="$stanza" --type="$type" backup
# Expiring old backups (repo1-retention-full) is part of the backup command. Once a week,
# with the full backup, read back every file of the repository and check its checksum.
if [ "$type" = full ]; then
	pgbackrest --stanza="$stanza" verify
fi
pgbackrest --stanza="$stanza" info
