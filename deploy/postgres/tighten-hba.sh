#!/bin/sh
# tighten-hba.sh PGDATA: after `pg_autoctl create`, remove the trust records initdb wrote
# for TCP from loopback (any local user could log in as any role, the superuser included)
# and make unix-socket logins peer (an OS user logs in only as the role of its name:
# pg_autoctl runs as postgres and logs in as postgres). pg_auto_failover's own records and
# yours stay. Then reload: sudo systemctl reload pgautofailover (or pg_ctl reload).
# deploy/OPERATIONS.md section 15.
set -eu

if [ $# -ne 1 ] || [ ! -f "$1/pg_hba.conf" ]; then
	echo "usage: tighten-hba.sh PGDATA (a data directory with a pg_hba.conf)" >&2
	exit 2
fi
hba=$1/pg_hba.conf
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed -E \
	-e '/^host[[:space:]]+(all|replication)[[:space:]]+all[[:space:]]+(127\.0\.0\.1\/32|::1\/128)[[:space:]]+trust([[:space:]]|$)/d' \
	-e 's/^(local[[:space:]]+(all|replication)[[:space:]]+all[[:space:]]+)trust([[:space:]]|$)/\1peer\3/' \
	"$hba" >"$tmp"
# Rewrite in place: the file keeps its owner (postgres) and mode, whoever runs this.
cat "$tmp" >"$hba"
if grep -Eq '^[^#]*[[:space:]]trust([[:space:]]|$)' "$hba"; then
	echo "tighten-hba.sh: $hba still trusts:" >&2
	grep -E '^[^#]*[[:space:]]trust([[:space:]]|$)' "$hba" >&2
fi
