#!/usr/bin/env bash
# install.sh VERSION BINARY: install one app release on one VM over ssh, restart it, and wait
# until its /healthz reports VERSION. `lb rollout` runs it once per backend, with the backend
# already drained:
#
#   lb rollout -expect-version v2 -- deploy/install.sh v2 ./bin/app
#
# Steps, all on the VM named by LB_BACKEND_HOST:
#   1. copy BINARY to INSTALL_ROOT/releases/VERSION/NAME (a new file is renamed into place; an
#      existing release must have the same bytes, else the script refuses: versions are immutable)
#   2. point INSTALL_ROOT/current at releases/VERSION atomically (ln -sfn to a temporary name,
#      then rename(2) over the old link with mv -T)
#   3. systemctl restart INSTALL_UNIT
#   4. poll LB_BACKEND_URL/healthz from the VM until it answers 200 with "version":"VERSION"
# Running it again with the same arguments is safe: it ends in the same state. Rolling back is
# the same command with the old VERSION and BINARY (the old release directory is reused).
#
# Environment:
#   LB_BACKEND_HOST   the VM's address (set by lb rollout); the ssh target
#   LB_BACKEND_URL    the app's base URL as the LB sees it (set by lb rollout)
#   INSTALL_SSH_USER  ssh user (default: ssh's own choice, e.g. from ~/.ssh/config)
#   INSTALL_SUDO      privilege prefix on the VM (default: sudo; empty when logging in as root)
#   INSTALL_ROOT      default /opt/outrigger
#   INSTALL_NAME      binary name inside a release, default app
#   INSTALL_UNIT      default app.service
#   INSTALL_TIMEOUT   seconds to wait for the new version on /healthz, default 60
#   INSTALL_POLL      seconds between /healthz polls, default 1
# Exit status: 0 done; 1 a step failed; 2 bad usage.
set -euo pipefail

prog=install.sh

die_usage() {
	printf '%s: %s\nusage: %s VERSION BINARY (with LB_BACKEND_HOST and LB_BACKEND_URL set)\n' "$prog" "$1" "$prog" >&2
	exit 2
}

# remote_install runs on the VM as root (bash -s under sudo). It takes its arguments
# positionally so that nothing is interpolated into a command string.
remote_install() {
	set -euo pipefail
	local root=$1 name=$2 version=$3 staged=$4 unit=$5 url=$6 timeout=$7 poll=$8
	local rel="$root/releases/$version"
	# shellcheck disable=SC2064 # expand now: staged is fixed for this run
	trap "rm -f -- '$staged'" EXIT

	install -d -m 0755 -- "$root" "$root/releases"
	if [[ -e $rel/$name ]]; then
		if ! cmp -s -- "$staged" "$rel/$name"; then
			printf '%s: %s exists with different content; a published version is never replaced (build a new version)\n' \
				"$prog" "$rel/$name" >&2
			return 1
		fi
		printf '%s: release %s already present\n' "$prog" "$version"
	else
		install -d -m 0755 -- "$rel"
		install -m 0755 -- "$staged" "$rel/.$name.new"
		mv -f -- "$rel/.$name.new" "$rel/$name"
		printf '%s: installed %s\n' "$prog" "$rel/$name"
	fi

	# Atomic switch: a relative link made under a temporary name, renamed over the old one.
	ln -sfn -- "releases/$version" "$root/.current.new"
	mv -T -- "$root/.current.new" "$root/current"
	printf '%s: current -> releases/%s\n' "$prog" "$version"

	systemctl restart -- "$unit"
	printf '%s: restarted %s\n' "$prog" "$unit"

	local deadline=$((SECONDS + timeout)) body=""
	while :; do
		body=$(curl -fsS --max-time 2 -- "$url/healthz" 2>/dev/null) || body=""
		if [[ ${body//[[:space:]]/} == *"\"version\":\"$version\""* ]]; then
			printf '%s: %s/healthz reports version %s\n' "$prog" "$url" "$version"
			return 0
		fi
		if ((SECONDS >= deadline)); then
			printf '%s: %s/healthz did not report version %s within %ss; last answer: %s\n' \
				"$prog" "$url" "$version" "$timeout" "${body:-none}" >&2
			return 1
		fi
		sleep "$poll"
	done
}

main() {
	[[ $# -eq 2 ]] || die_usage "want 2 arguments, got $#"
	local version=$1 binary=$2
	local host=${LB_BACKEND_HOST:-} url=${LB_BACKEND_URL:-}
	local root=${INSTALL_ROOT:-/opt/outrigger} name=${INSTALL_NAME:-app} unit=${INSTALL_UNIT:-app.service}
	local timeout=${INSTALL_TIMEOUT:-60} poll=${INSTALL_POLL:-1} sudo=${INSTALL_SUDO-sudo}

	[[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$ ]] || die_usage "bad VERSION '$version'"
	[[ -f $binary && -r $binary ]] || die_usage "BINARY '$binary' is not a readable file"
	[[ -n $host ]] || die_usage "LB_BACKEND_HOST is not set"
	[[ $host =~ ^[A-Za-z0-9.:_%-]+$ && $host != -* ]] || die_usage "bad LB_BACKEND_HOST '$host'"
	[[ $url =~ ^https?://[^[:space:]\'\"]+$ ]] || die_usage "bad LB_BACKEND_URL '$url'"
	[[ $root =~ ^/[A-Za-z0-9._/-]+$ ]] || die_usage "bad INSTALL_ROOT '$root'"
	[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die_usage "bad INSTALL_NAME '$name'"
	[[ $unit =~ ^[A-Za-z0-9@._-]+$ ]] || die_usage "bad INSTALL_UNIT '$unit'"
	[[ $timeout =~ ^[0-9]+$ ]] || die_usage "bad INSTALL_TIMEOUT '$timeout'"
	[[ $poll =~ ^[0-9]+(\.[0-9]+)?$ ]] || die_usage "bad INSTALL_POLL '$poll'"

	local target=$host scp_host=$host
	[[ $host == *:* ]] && scp_host="[$host]" # IPv6 literal
	if [[ -n ${INSTALL_SSH_USER:-} ]]; then
		target="$INSTALL_SSH_USER@$host"
		scp_host="$INSTALL_SSH_USER@$scp_host"
	fi

	printf '%s: %s %s -> %s:%s/releases/%s\n' "$prog" "$name" "$version" "$host" "$root" "$version"
	local staged
	staged=$(ssh -- "$target" 'mktemp -t outrigger-install.XXXXXXXXXX')
	[[ $staged =~ ^/[A-Za-z0-9._/-]+$ ]] || {
		printf '%s: unexpected temporary file name from %s: %q\n' "$prog" "$host" "$staged" >&2
		exit 1
	}
	if ! scp -q -- "$binary" "$scp_host:$staged"; then
		ssh -- "$target" "rm -f -- '$staged'" || true
		printf '%s: copying %s to %s failed\n' "$prog" "$binary" "$host" >&2
		exit 1
	fi

	local args
	args=$(printf ' %q' "$root" "$name" "$version" "$staged" "$unit" "$url" "$timeout" "$poll")
	# The function travels on stdin; its arguments were checked above and are quoted with %q.
	{
		declare -f remote_install
		printf 'prog=%q\n' "$prog"
		printf 'remote_install%s </dev/null\n' "$args"
	} | ssh -- "$target" "$sudo bash -s"
}

main "$@"
