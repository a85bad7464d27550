#!/usr/bin/env bash
# bench/run.sh: lb side by side with HAProxy, nginx and Caddy (see bench/README.md).
#
# One command: installs what is missing (Debian packages), builds lb and the
# bench backend, starts 3 backends and every proxy on loopback, runs wrk
# against each target in interleaved rounds for three modes, and writes
# bench/results/RESULTS.md (also printed).
#
# Environment (all optional):
#   BENCH_QUICK=1        2 rounds of 2 s instead of 5 rounds of 5 s
#   BENCH_ROUNDS=N       rounds per mode (default 5; quick 2)
#   BENCH_DURATION=S     seconds per wrk run (default 5; quick 2)
#   BENCH_MODES="..."    subset of: http https hs h2 http-pinned (default all five)
#   BENCH_H2_CONNS=32 BENCH_H2_STREAMS=10      h2load -c / -m (mode h2)
#   BENCH_LOAD_CPU=0 BENCH_PROXY_CPU=1         the pinned modes (h2, http-pinned): load on one
#                        CPU, the proxy and the backends on the other
#   BENCH_TARGETS="..."  subset of: direct lb haproxy nginx caddy (default all)
#   BENCH_CONNS=64 BENCH_THREADS=2   wrk -c / -t
#   BENCH_PORT_BASE=23400            first of the loopback ports used (base..base+49)
#   BENCH_OUT=DIR        results directory (default bench/results)
#   BENCH_LB_ENV="K=V ..."           extra environment for lb (e.g. "GOGC=200")
#   BENCH_LB_BIN=PATH    use this lb binary instead of building ./cmd/lb
#   BENCH_LBX_BIN=PATH BENCH_LBX_ENV="K=V ..."  a second lb (target "lbx", e.g. a
#                        candidate optimisation) benchmarked beside lb; add lbx to BENCH_TARGETS
#   BENCH_LBX_PATCH=FILE lbx = the working tree with this patch (-p1) applied;
#                        lbx is added to the targets
#   BENCH_KEEP=1         keep the temporary work directory (configs, logs)
#   BENCH_E2E=0          skip the failover/rollout figures from internal/e2e (default: run them, ~30 s)
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_tools
export PATH="$PATH:/usr/sbin:/sbin"
command -v go >/dev/null || die "go is not on PATH"
check_ports
build_backend
mkdir -p "$OUT"
want_lb=0
for t in "${TARGETS[@]}"; do [[ $t == lb ]] && want_lb=1; done
LB_BIN=""
if ((want_lb)); then
	if [[ -n "${BENCH_LB_BIN:-}" ]]; then
		LB_BIN=$BENCH_LB_BIN
	elif (cd "$ROOT" && go build -o "$WORK/bin/lb" ./cmd/lb) 2>"$WORK/logs/lb-build.err"; then
		LB_BIN=$WORK/bin/lb
	else
		log "lb does not build yet; lb left out (see below)"
		cat "$WORK/logs/lb-build.err" >&2
	fi
fi

LBX_DESC=${BENCH_LBX_BIN:+$BENCH_LBX_BIN${BENCH_LBX_ENV:+ with $BENCH_LBX_ENV}}
# A candidate optimisation: the working tree with a patch applied, built as lbx.
if [[ -n "${BENCH_LBX_PATCH:-}" ]]; then
	patch_file=$(cd "$(dirname "$BENCH_LBX_PATCH")" && pwd)/$(basename "$BENCH_LBX_PATCH")
	log "building lbx: the working tree with $BENCH_LBX_PATCH"
	mkdir -p "$WORK/lbx-src"
	tar -C "$ROOT" --exclude=./.git --exclude=./bench/results --exclude=./bin -cf - . | tar -C "$WORK/lbx-src" -xf -
	(cd "$WORK/lbx-src" && patch -s -p1 <"$patch_file" && go build -o "$WORK/bin/lbx" ./cmd/lb) ||
		die "could not apply $BENCH_LBX_PATCH or build lbx"
	BENCH_LBX_BIN=$WORK/bin/lbx
	LBX_DESC="lb + $BENCH_LBX_PATCH${BENCH_LBX_ENV:+ with $BENCH_LBX_ENV}"
	[[ " ${TARGETS[*]} " == *" lbx "* ]] || TARGETS+=(lbx)
fi
make_tls

TCK=$(getconf CLK_TCK)
RUNS="$OUT/runs.tsv"
printf 'mode\ttarget\tround\trps\trequests\tp50_us\tp99_us\tmax_us\terrors\trss_kb\tcpu_us_per_req\n' >"$RUNS"

# bench MODE TARGET ROUND SECONDS RECORD(0|1)
bench() {
	local mode=$1 target=$2 round=$3 secs=$4 record=$5 u pids before after sys_before sys_after line raw
	u=$(url "$target" "$mode")
	mapfile -t pids < <(pids_of "$target")
	before=$(cpu_ticks "${pids[@]}")
	sys_before=$(rw_syscalls "${pids[@]}")
	raw="$WORK/raw/$mode-$target-$round.txt"
	load "$mode" "$u" "$secs" "$raw"
	after=$(cpu_ticks "${pids[@]}")
	sys_after=$(rw_syscalls "${pids[@]}")
	((record)) || return 0
	line=$(grep '^WRKRESULT' "$raw" | tail -n 1 || true)
	if [[ -z "$line" ]]; then
		log "no result from the load generator for $mode $target round $round: $(tail -n 3 "$raw")"
		return 0
	fi
	# shellcheck disable=SC2086
	set -- $line
	local requests=$2 dur=$3 p50=$4 p99=$5 max=$6 errs=$(($7 + $8 + $9 + ${10} + ${11}))
	local rps cpu rss sysc
	rps=$(awk -v r="$requests" -v d="$dur" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
	cpu=$(awk -v t="$((after - before))" -v hz="$TCK" -v r="$requests" 'BEGIN {if (r > 0) printf "%.1f", t * 1e6 / hz / r; else print 0}')
	rss=$(hwm_kb "${pids[@]}")
	sysc=$(awk -v n="$((sys_after - sys_before))" -v r="$requests" 'BEGIN {if (r > 0) printf "%.2f", n / r; else print 0}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$target" "$round" "$rps" "$requests" "$p50" "$p99" "$max" "$errs" "$rss" "$cpu" "$sysc" >>"$RUNS"
	log "$(printf '%-5s %-7s round %d: %7s req/s  p50 %6s us  p99 %6s us  cpu %6s us/req  r+w %5s/req  rss %6s kB  errors %s' \
		"$mode" "$target" "$round" "$rps" "$p50" "$p99" "$cpu" "$sysc" "$rss" "$errs")"
}

# ---------------------------------------------------------------- run
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "start: modes=${MODES[*]} targets=${TARGETS[*]} rounds=$ROUNDS duration=${DURATION}s wrk -t$THREADS -c$CONNS"
BACKEND_PINNED=""
for mode in "${MODES[@]}"; do
	case $mode in http | https | hs | h2 | http-pinned) ;; *) die "unknown mode $mode" ;; esac
	# The backend runs pinned beside the proxy in the pinned modes, on both CPUs otherwise.
	if pinned "$mode"; then want=1; else want=0; fi
	if [[ "$BACKEND_PINNED" != "$want" ]]; then
		stop backend
		start_backend "$mode"
		BACKEND_PINNED=$want
	fi
	start_proxies "$mode"
	log "mode $mode: targets up: ${ACTIVE[*]}"
	for t in "${ACTIVE[@]}"; do bench "$mode" "$t" 0 1 0; done # warm-up, not recorded
	n=${#ACTIVE[@]}
	for ((r = 1; r <= ROUNDS; r++)); do
		# Rotate the order every round so no target always runs first or last.
		for ((i = 0; i < n; i++)); do
			bench "$mode" "${ACTIVE[$(((i + r - 1) % n))]}" "$r" "$DURATION" 1
		done
	done
	stop_proxies
done

# Failover and deploy figures from the end-to-end tests (real lb, app, PostgreSQL).
E2E_FILE=""
if [[ "${BENCH_E2E:-1}" == 1 ]]; then
	stop backend
	log "end-to-end failover and rollout figures (go test ./internal/e2e -run 'TestOutage|TestRollout')"
	E2E_FILE="$OUT/e2e.txt"
	if "$ROOT/scripts/ensure-postgres.sh" >&2 &&
		(cd "$ROOT" && timeout --kill-after=10 600 go test -count=1 -p 1 -v -run '^(TestOutage|TestRollout)$' -timeout 9m ./internal/e2e/) >"$OUT/e2e-full.txt" 2>&1; then
		e2e_status="passed"
	else
		e2e_status="FAILED (see bench/results/e2e-full.txt)"
	fi
	{
		echo "status: $e2e_status"
		grep -E 'kill -9 app-2:|SIGSTOP app-3:|rollout v1 -> v2:|lb rollout took|lb marked .* down|healthy in lb' "$OUT/e2e-full.txt" |
			sed -E 's/^ *[a-z_]+_test\.go:[0-9]+: //; s/; its output:$//' || true
	} >"$E2E_FILE"
fi

{
	echo "started=$START"
	echo "finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "command=${BENCH_CMD:-bench/run.sh} (BENCH_QUICK=$QUICK rounds=$ROUNDS duration=${DURATION}s modes=${MODES[*]} targets=${TARGETS[*]}${BENCH_LB_ENV:+ lb_env=$BENCH_LB_ENV}${LBX_DESC:+ lbx=$LBX_DESC})"
	echo "wrk=wrk -t$THREADS -c$CONNS -d${DURATION}s --timeout $WRK_TIMEOUT --latency"
	echo "h2load=h2load -D $DURATION -c $H2_CONNS -m $H2_STREAMS -t 1 (mode h2)"
	echo "pinned modes=h2 http-pinned: load generator on cpu $LOAD_CPU, proxy and backends on cpu $PROXY_CPU (taskset; one worker each)"
	echo "machine=$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "versions=$(haproxy -v 2>/dev/null | head -n1 | awk '{print "HAProxy " $3}'), $(nginx -v 2>&1 | sed 's|.*nginx/|nginx |'), Caddy $(caddy version 2>/dev/null | awk '{print $1}'), $(go version | awk '{print $3}'), lb $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
} >"$OUT/meta.txt"
"$WORK/bin/report" -runs "$RUNS" -meta "$OUT/meta.txt" ${E2E_FILE:+-e2e "$E2E_FILE"} -out "$OUT/RESULTS.md"
cat "$OUT/RESULTS.md"
