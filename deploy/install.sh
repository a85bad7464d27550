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
# Before it changes anything it checks, in one ssh call, that the VM answers, that every tool
# the steps need is there (bash, install, mktemp, cmp, ln, mv, rm, curl, systemctl; sudo that
# runs `bash -s` without a password), and that INSTALL_UNIT is installed; a failure names the cause (host
# unreachable, host key unknown, key refused, tool missing, ...) and leaves the VM as it was.
# ssh runs with BatchMode (never a prompt: an unknown host key is an error, see OPERATIONS.md
# on known_hosts), a connect timeout, and keepalives that end a dead connection.
#
# Environment:
#   LB_BACKEND_HOST   the VM's address (set by lb rollout); the ssh target
#   LB_BACKEND_URL    the app's base URL as the LB sees it (set by lb rollout)
#   INSTALL_SSH_USER  ssh user (default: ssh's own choice, e.g. from ~/.ssh/config)
#   INSTALL_SSH_CONNECT_TIMEOUT  seconds to wait for the VM's ssh to answer, default 10
#   INSTALL_SUDO      privilege prefix on the VM (default: sudo, run with -n: it must not ask for a
#                     password; empty when logging in as root)
#   INSTALL_ROOT      default /opt/outrigger
#   INSTALL_NAME      binary name inside a release, default app
#   INSTALL_UNIT      default app.service
#   INSTALL_TIMEOUT   seconds to wait for the new version on /healthz, default 60
#   INSTALL_POLL      seconds between /healthz polls, default 1
# Exit status: 0 done; 1 a step failed (the message says which and why); 2 bad usage.
set -euo pipefail

prog=install.sh

die_usage() {
	printf '%s: %s\nusage: %s VERSION BINARY (with LB_BACKEND_HOST and LB_BACKEND_URL set)\n' "$prog" "$1" "$prog" >&2
	exit 2
}

# remote_preflight runs on the VM as the ssh user (sh -s; no bash assumed yet) before anything
# changes: it reports missing tools, sudo that will not run `bash -s` without a password, and a
# missing unit on stdout
# (MISSING ..., NOSUDO, NOUNIT) with exit 3, else prints a fresh temporary file for the upload.
# shellcheck disable=SC2016 # expanded on the VM
remote_preflight='
	sudo=$1 unit=$2 missing=""
	for tool in bash install mktemp cmp ln mv rm curl systemctl $sudo; do
		command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
	done
	if [ -n "$missing" ]; then echo "MISSING$missing"; exit 3; fi
	# the very command the install runs as root (sudoers may allow only that), with nothing to do
	if [ -n "$sudo" ] && ! "$sudo" -n bash -s </dev/null >/dev/null 2>&1; then echo NOSUDO; exit 3; fi
	systemctl cat -- "$unit" >/dev/null 2>&1 || { echo NOUNIT; exit 3; }
	mktemp -t outrigger-install.XXXXXXXXXX
'

# debian_packages names the Debian packages that provide the tools in $1 (space-separated).
debian_packages() {
	local tool pkg out=""
	for tool in $1; do
		case $tool in
		systemctl) pkg=systemd ;;
		cmp) pkg=diffutils ;;
		install | mktemp | ln | mv | rm) pkg=coreutils ;;
		*) pkg=$tool ;;
		esac
		[[ " $out " == *" $pkg "* ]] || out="$out $pkg"
	done
	printf '%s' "$out"
}

# ssh_cause turns ssh's own error (exit status 255; its stderr in $1) into the cause, in words.
ssh_cause() {
	local err=$1 host=$2 timeout=$3
	case $err in
	*"Could not resolve hostname"*) printf 'cannot resolve %s (DNS or /etc/hosts)' "$host" ;;
	*"REMOTE HOST IDENTIFICATION HAS CHANGED"*)
		printf "%s's host key differs from the one in known_hosts: a reinstalled VM, or someone in between; check its fingerprint before replacing the entry (OPERATIONS.md, known_hosts)" "$host" ;;
	*"Host key verification failed"*)
		printf "%s's host key is not in known_hosts: add it after checking its fingerprint (OPERATIONS.md, known_hosts)" "$host" ;;
	*"Connection timed out"* | *"Operation timed out"*)
		printf '%s did not answer on its ssh port within %ss (host down, or a firewall drops the packets)' "$host" "$timeout" ;;
	*"Connection refused"*) printf '%s refused the ssh connection (sshd not running, or another port)' "$host" ;;
	*"No route to host"* | *"Network is unreachable"*) printf 'no route to %s' "$host" ;;
	*"Permission denied"*) printf '%s refused the ssh key (wrong user or key; BatchMode allows no password)' "$host" ;;
	*"not responding"* | *"Broken pipe"* | *"Connection reset"* | *"closed by remote host"*)
		printf 'lost the ssh connection to %s (it stopped answering)' "$host" ;;
	*) printf 'ssh to %s failed: %s' "$host" "$(printf '%s' "$err" | tail -n 1)" ;;
	esac
}

# remote_install runs on the VM as root (bash -s under sudo). It takes its arguments
# positionally so that nothing is interpolated into a command string.
# shellcheck disable=SC2317 # runs on the VM, sent there with declare -f
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
			printf '%s: %s/healthz did not report version %s within %ss; last answer: %s (the new release is installed and its unit restarted, but the app is not healthy: journalctl -u %s)\n' \
				"$prog" "$url" "$version" "$timeout" "${body:-none}" "$unit" >&2
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

	local connect_timeout=${INSTALL_SSH_CONNECT_TIMEOUT:-10}
	[[ $connect_timeout =~ ^[1-9][0-9]*$ ]] || die_usage "bad INSTALL_SSH_CONNECT_TIMEOUT '$connect_timeout'"
	local tool
	for tool in ssh scp; do
		command -v "$tool" >/dev/null || {
			printf '%s: %s is not installed on this machine (apt-get install openssh-client)\n' "$prog" "$tool" >&2
			exit 1
		}
	done

	local target=$host scp_host=$host
	[[ $host == *:* ]] && scp_host="[$host]" # IPv6 literal
	if [[ -n ${INSTALL_SSH_USER:-} ]]; then
		target="$INSTALL_SSH_USER@$host"
		scp_host="$INSTALL_SSH_USER@$scp_host"
	fi
	# Never a prompt (an unknown host key or a password request is an error), a bounded wait
	# for the VM to answer, and keepalives that end a connection to a VM that went silent.
	local -a opts=(-o BatchMode=yes -o ConnectTimeout="$connect_timeout"
		-o ServerAliveInterval=5 -o ServerAliveCountMax=3)
	local errf code out
	errf=$(mktemp)
	# shellcheck disable=SC2064 # expand now: errf is fixed for this run
	trap "rm -f -- '$errf'" EXIT

	printf '%s: %s %s -> %s:%s/releases/%s\n' "$prog" "$name" "$version" "$host" "$root" "$version"
	# 1. Preflight, and a temporary file for the upload. Nothing changes on the VM before this passes.
	code=0
	# ssh hands the remote shell one command line: quote the arguments for it (sudo may be empty).
	out=$(printf '%s' "$remote_preflight" |
		ssh "${opts[@]}" -- "$target" "sh -s -- $(printf '%q ' "$sudo" "$unit")" 2>"$errf") || code=$?
	case $code in
	0) ;;
	255)
		printf '%s: %s; nothing was changed on it\n' "$prog" "$(ssh_cause "$(cat "$errf")" "$host" "$connect_timeout")" >&2
		exit 1
		;;
	*)
		case $out in
		MISSING*) printf '%s: %s lacks%s (on Debian: apt-get install%s); nothing was changed on it\n' \
			"$prog" "$host" "${out#MISSING}" "$(debian_packages "${out#MISSING}")" >&2 ;;
		NOSUDO) printf '%s: %s on %s asks for a password: the deploy user needs NOPASSWD sudo (OPERATIONS.md); nothing was changed on it\n' "$prog" "$sudo" "$host" >&2 ;;
		NOUNIT) printf '%s: %s has no %s installed (deploy/systemd/app.service, OPERATIONS.md); nothing was changed on it\n' "$prog" "$host" "$unit" >&2 ;;
		*) printf '%s: the preflight check on %s failed (exit %s): %s\n' "$prog" "$host" "$code" "$(tail -n 3 "$errf")" >&2 ;;
		esac
		exit 1
		;;
	esac
	local staged=$out
	[[ $staged =~ ^/[A-Za-z0-9._/-]+$ ]] || {
		printf '%s: unexpected temporary file name from %s: %q\n' "$prog" "$host" "$staged" >&2
		exit 1
	}
	printf '%s: %s is reachable and has what the install needs\n' "$prog" "$host"

	# 2. Upload.
	code=0
	scp -q "${opts[@]}" -- "$binary" "$scp_host:$staged" 2>"$errf" || code=$?
	if ((code != 0)); then
		ssh "${opts[@]}" -- "$target" "rm -f -- '$staged'" 2>/dev/null || true
		if ((code == 255)); then
			printf '%s: copying %s to %s failed: %s; nothing was changed on it\n' "$prog" "$binary" "$host" \
				"$(ssh_cause "$(cat "$errf")" "$host" "$connect_timeout")" >&2
		else
			printf '%s: copying %s to %s failed: %s; nothing was changed on it\n' "$prog" "$binary" "$host" "$(tail -n 1 "$errf")" >&2
		fi
		exit 1
	fi

	# 3. Install, switch, restart, wait for health: as root on the VM.
	local args
	args=$(printf ' %q' "$root" "$name" "$version" "$staged" "$unit" "$url" "$timeout" "$poll")
	# The function travels on stdin; its arguments were checked above and are quoted with %q.
	code=0
	{
		declare -f remote_install
		printf 'prog=%q\n' "$prog"
		printf 'remote_install%s </dev/null\n' "$args"
	} | ssh "${opts[@]}" -- "$target" "${sudo:+$sudo -n }bash -s" 2>"$errf" || code=$?
	if ((code == 255)); then
		cat "$errf" >&2
		printf '%s: %s during the install: the VM may be half-way (re-running this is safe)\n' "$prog" \
			"$(ssh_cause "$(cat "$errf")" "$host" "$connect_timeout")" >&2
		exit 1
	fi
	cat "$errf" >&2
	exit "$code"
}

main "$@"
