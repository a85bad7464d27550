#!/usr/bin/env bash
# bench/profile.sh: CPU and allocation profiles of lb under load (see bench/README.md).
#
# Builds cmd/lb with one extra file added through `go build -overlay`
# (bench/profile/pprof_overlay.go.txt: a pprof listener on BENCH_PPROF_ADDR),
# starts the bench backends and lb as run.sh does, drives lb with wrk and
# takes a CPU profile and a delta allocation profile over the same window.
#
# Environment: BENCH_PROFILE_MODE (http | https | hs | h2 | http-pinned, default http; h2 is
# driven by h2load, the pinned modes pin as run.sh does),
# BENCH_PROFILE_SECONDS (default 15), BENCH_LB_ENV, BENCH_PORT_BASE, BENCH_OUT,
# BENCH_KEEP as for run.sh; BENCH_PROFILE_TARGET=leanproxy profiles the
# bench/leanproxy prototype instead. Output: $BENCH_OUT/profile-MODE/ (cpu.pprof,
# allocs.pprof, the binary as "lb" and text summaries).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_tools
export PATH="$PATH:/usr/sbin:/sbin"
command -v go >/dev/null || die "go is not on PATH"
check_ports
build_backend
make_tls

MODE=${BENCH_PROFILE_MODE:-http}
SECS=${BENCH_PROFILE_SECONDS:-15}
POUT="$OUT/profile-$MODE"
mkdir -p "$POUT"

cat >"$WORK/overlay.json" <<EOF
{"Replace": {"$ROOT/cmd/lb/zz_bench_pprof.go": "$BENCH/profile/pprof_overlay.go.txt"}}
EOF
if [[ "${BENCH_PROFILE_TARGET:-lb}" == leanproxy ]]; then
	POUT="$OUT/profile-leanproxy-$MODE"
	mkdir -p "$POUT"
	log "building bench/leanproxy (pprof built in)"
	(cd "$ROOT" && go build -o "$POUT/lb" ./bench/leanproxy)
else
	log "building lb with the pprof overlay"
	(cd "$ROOT" && go build -overlay "$WORK/overlay.json" -o "$POUT/lb" ./cmd/lb)
fi

start_backend "$MODE"
CUR_MODE=$MODE
set_pin "$MODE"
write_lb "$MODE"
# shellcheck disable=SC2086
start lb "${PIN[@]}" env LOG_FORMAT=json BENCH_PPROF_ADDR="127.0.0.1:$P_PPROF" ${BENCH_LB_ENV:-} "$POUT/lb" serve -config "$WORK/lb.yaml"
wait_http "$(url lb "$MODE")" || die "lb did not come up: $(tail -n 20 "$(errlog lb)")"

load "$MODE" "$(url lb "$MODE")" 1 "$POUT/warmup.txt" # warm-up
pp="http://127.0.0.1:$P_PPROF/debug/pprof"
log "load for $((SECS + 4)) s against lb ($MODE); profiling the middle $SECS s"
load "$MODE" "$(url lb "$MODE")" $((SECS + 4)) "$POUT/wrk.txt" &
wrk_pid=$!
sleep 2
curl -sf -m $((SECS + 20)) -o "$POUT/cpu.pprof" "$pp/profile?seconds=$SECS" &
cpu_pid=$!
curl -sf -m $((SECS + 20)) -o "$POUT/allocs.pprof" "$pp/allocs?seconds=$SECS" &
alloc_pid=$!
wait "$cpu_pid" || die "CPU profile failed"
wait "$alloc_pid" || die "allocation profile failed"
wait "$wrk_pid" || true
curl -sf -m 10 -o "$POUT/heap.pprof" "$pp/heap" || true
curl -sf -m 10 "$pp/goroutine?debug=1" | head -n 1 >"$POUT/goroutines.txt" || true
awk '/^VmHWM|^VmRSS/' "/proc/${PIDS[lb]}/status" >"$POUT/rss.txt"
stop lb

read -r -a result < <(grep '^WRKRESULT' "$POUT/wrk.txt" | tail -n 1)
set -- "${result[@]}"
rps=$(awk -v r="$2" -v d="$3" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
reqs=$((rps * SECS))
{
	echo "lb profile, mode $MODE, ${SECS}s window, ~$rps req/s (~$reqs requests in the window)"
	echo "lb env: LOG_FORMAT=json ${BENCH_LB_ENV:-}"
	cat "$POUT/rss.txt" "$POUT/goroutines.txt"
	echo
	echo "== CPU, flat"
	go tool pprof -top -nodecount=45 "$POUT/lb" "$POUT/cpu.pprof" 2>/dev/null
	echo
	echo "== CPU, cumulative"
	go tool pprof -top -cum -nodecount=60 "$POUT/lb" "$POUT/cpu.pprof" 2>/dev/null
	echo
	echo "== allocations: objects (divide by ~$reqs requests)"
	go tool pprof -top -sample_index=alloc_objects -nodecount=45 "$POUT/lb" "$POUT/allocs.pprof" 2>/dev/null
	echo
	echo "== allocations: bytes"
	go tool pprof -top -sample_index=alloc_space -nodecount=30 "$POUT/lb" "$POUT/allocs.pprof" 2>/dev/null
} >"$POUT/summary.txt"
total=$(go tool pprof -top -sample_index=alloc_objects -nodecount=1 "$POUT/lb" "$POUT/allocs.pprof" 2>/dev/null |
	awk '/Total samples =/ {print $NF + 0}')
bytes=$(go tool pprof -top -sample_index=alloc_space -unit=B -nodecount=1 "$POUT/lb" "$POUT/allocs.pprof" 2>/dev/null |
	awk '/Total samples =/ {v = $NF; sub(/B$/, "", v); print v + 0}')
perreq=$(awk -v t="${total:-0}" -v b="${bytes:-0}" -v r="$reqs" 'BEGIN {if (r > 0) printf "%.0f objects, %.0f bytes", t / r, b / r; else print "?"}')
log "allocated per request (sampled estimate over the window): $perreq"
echo "allocated per request (sampled estimate over the window): $perreq" >>"$POUT/summary.txt"
log "profile written to $POUT (summary.txt, cpu.pprof, allocs.pprof, lb)"
head -n 60 "$POUT/summary.txt"
