# bench/lib.sh: settings and functions shared by bench/run.sh and bench/profile.sh.
# Sourced, not run; see run.sh for the environment variables.


ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then dr=2 dd=2; else dr=5 dd=5; fi
ROUNDS=${BENCH_ROUNDS:-$dr}
DURATION=${BENCH_DURATION:-$dd}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNS:-64}
read -r -a MODES <<<"${BENCH_MODES:-http https hs h2 http-pinned}"
read -r -a TARGETS <<<"${BENCH_TARGETS:-direct lb haproxy nginx caddy}"
IP=127.0.0.1
# Below the kernel's ephemeral range (32768-60999 here): a port in it can be
# taken as the local end of one of the many outgoing connections.
BASE=${BENCH_PORT_BASE:-23400}
OUT=${BENCH_OUT:-$BENCH/results}
WRK_TIMEOUT=2s
# h2: h2load's clients and streams per client (HTTP/2 over TLS).
H2_CONNS=${BENCH_H2_CONNS:-32}
H2_STREAMS=${BENCH_H2_STREAMS:-10}
# The pinned modes run the load generator on LOAD_CPU and the proxy and backends on PROXY_CPU.
LOAD_CPU=${BENCH_LOAD_CPU:-0}
PROXY_CPU=${BENCH_PROXY_CPU:-1}

# Ports (all on 127.0.0.1).
P_B1=$((BASE + 1)) P_B2=$((BASE + 2)) P_B3=$((BASE + 3)) P_BTLS=$((BASE + 4))
P_LB=$((BASE + 10)) P_LBADMIN=$((BASE + 11)) P_PPROF=$((BASE + 12))
P_LBX=$((BASE + 13)) P_LBXADMIN=$((BASE + 14))
P_HAPROXY=$((BASE + 20)) P_NGINX=$((BASE + 30)) P_CADDY=$((BASE + 40))

log() { printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- clean-up
WORK=$(mktemp -d /tmp/outrigger-bench.XXXXXX)
declare -A PIDS=()   # name -> pid of every process we started
cleanup() {
	local rc=$? name pid
	trap - EXIT INT TERM
	for name in "${!PIDS[@]}"; do
		pid=${PIDS[$name]}
		kill -TERM "$pid" 2>/dev/null || true
	done
	for name in "${!PIDS[@]}"; do
		pid=${PIDS[$name]}
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop NAME: TERM the process, wait up to 5 s, then KILL.
stop() {
	local name=$1 pid=${PIDS[$1]:-}
	[[ -n "$pid" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "PIDS[$name]"
}

# ---------------------------------------------------------------- tools
ensure_tools() {
	local missing=() cmd pkg
	for pair in haproxy:haproxy nginx:nginx-light caddy:caddy wrk:wrk h2load:nghttp2-client openssl:openssl curl:curl ss:iproute2 taskset:util-linux; do
		cmd=${pair%%:*} pkg=${pair#*:}
		command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0
	local sudo=()
	[[ $(id -u) == 0 ]] || sudo=(sudo)
	log "installing from Debian: ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
# check_ports: fail early if another program holds one of our ports.
check_ports() {
	local p
	for p in $P_B1 $P_B2 $P_B3 $P_BTLS $P_LB $P_LBADMIN $P_PPROF $P_LBX $P_LBXADMIN $P_HAPROXY $P_NGINX $P_CADDY; do
		if [[ -n "$(ss -Htln "sport = :$p" 2>/dev/null)" ]]; then
			die "port $p is in use; set BENCH_PORT_BASE to another free range"
		fi
	done
}

# build_backend: the bench backend and the report tool into $WORK/bin.
build_backend() {
	mkdir -p "$WORK/bin" "$WORK/raw" "$WORK/logs"
	log "building backend and report (work dir $WORK)"
	(cd "$ROOT" && go build -o "$WORK/bin/backend" ./bench/backend && go build -o "$WORK/bin/report" ./bench/report)
}

# make_tls: one self-signed ECDSA P-256 certificate for every TLS listener, and the lb admin token (0600).
make_tls() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
	cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"
	chmod 600 "$WORK/key.pem" "$WORK/haproxy.pem"
	(umask 077 && openssl rand -hex 24 >"$WORK/admin-token")
}

# pinned MODE: whether MODE runs the load on LOAD_CPU and everything it measures on PROXY_CPU.
pinned() { [[ $1 == h2 || $1 == http-pinned ]]; }

# set_pin MODE: PIN is the command prefix of what MODE measures (taskset, which execs the
# program, so that PIDS holds the program's pid), LOADPIN the load generator's; both empty
# unless MODE is pinned.
PIN=() LOADPIN=()
set_pin() {
	PIN=() LOADPIN=()
	if pinned "$1"; then
		PIN=(taskset -c "$PROXY_CPU") LOADPIN=(taskset -c "$LOAD_CPU")
	fi
}

# workers MODE N: how many threads or workers a proxy gets: 1 on its one CPU when pinned.
workers() { if pinned "$1"; then echo 1; else echo "$2"; fi; }

# ---------------------------------------------------------------- load
# load MODE URL SECONDS RAW: one run of the load generator, its result line (requests
# duration_us p50_us p99_us max_us and five error counts, as report.lua prints it for wrk)
# as the last line of RAW, prefixed WRKRESULT.
load() {
	local mode=$1 u=$2 secs=$3 raw=$4
	local hdr=()
	[[ $mode == hs ]] && hdr=(-H "Connection: close")
	if [[ $mode == h2 ]]; then
		local lat="$raw.latency"
		timeout --kill-after=5 $((secs + 20)) "${LOADPIN[@]}" h2load -D "$secs" -c "$H2_CONNS" -m "$H2_STREAMS" -t 1 \
			--log-file "$lat" "$u" >"$raw" 2>&1 || log "h2load $mode exited non-zero"
		h2result "$raw" "$lat" >"$raw.result"
		cat "$raw.result" >>"$raw"
		rm -f "$lat" "$raw.result"
		return
	fi
	timeout --kill-after=5 $((secs + 20)) "${LOADPIN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout "$WRK_TIMEOUT" \
		--latency -s "$BENCH/report.lua" "${hdr[@]}" "$u" >"$raw" 2>&1 || log "wrk $mode exited non-zero"
}

# h2result OUT LATENCIES: the WRKRESULT line of an h2load run, from its output and its
# per-request log (start, status, microseconds to the end of the response).
h2result() {
	local out=$1 lat=$2 secs requests errs p50 p99 max
	secs=$(awk '/^finished in/ {sub(/s,$/, "", $3); print $3}' "$out")
	read -r requests errs < <(awk '/^requests:/ {print $8, $10 + $12 + $14}' "$out")
	[[ -n "$secs" && -n "$requests" && -s "$lat" ]] || return 0
	read -r p50 p99 max < <(cut -f3 "$lat" | sort -n | awk '{v[NR] = $1} END {
		if (NR == 0) { print 0, 0, 0; exit }
		print v[int((NR - 1) * 0.50) + 1], v[int((NR - 1) * 0.99) + 1], v[NR] }')
	local bad
	bad=$(awk -F'\t' '$2 < 200 || $2 >= 400 {n++} END {print n + 0}' "$lat")
	printf 'WRKRESULT %s %.0f %s %s %s %s %s 0 0 0 0\n' "$requests" "$(awk -v s="$secs" 'BEGIN {print s * 1e6}')" \
		"$p50" "$p99" "$max" "$errs" "$bad"
}

# ---------------------------------------------------------------- processes
# wait_http URL: until URL answers 200 (3 times in a row), at most 20 s.
wait_http() {
	local url=$1 ok=0 deadline=$((SECONDS + 20)) code
	while ((SECONDS < deadline)); do
		code=$(curl -sk -o /dev/null -m 1 -w '%{http_code}' "$url" 2>/dev/null || true)
		LAST_CODE=$code
		if [[ "$code" == 200 ]]; then
			ok=$((ok + 1))
			((ok >= 3)) && return 0
		else
			ok=0
		fi
		sleep 0.2
	done
	return 1
}

# errlog NAME: the stderr file of NAME in the current mode.
errlog() { echo "$WORK/logs/$1${CUR_MODE:+-$CUR_MODE}.err"; }

# start NAME CMD...: run CMD in the background with stdout to /dev/null.
start() {
	local name=$1
	shift
	"$@" >/dev/null 2>"$(errlog "$name")" &
	PIDS[$name]=$!
}

# start_backend [MODE]: the backend process (3 plain ports and one TLS port), pinned for a
# pinned MODE.
start_backend() {
	local mode=${1:-http}
	set_pin "$mode"
	start backend "${PIN[@]}" env GOMAXPROCS="$(workers "$mode" 2)" "$WORK/bin/backend" \
		-listen "$IP:$P_B1" -listen "$IP:$P_B2" -listen "$IP:$P_B3" \
		-tls-listen "$IP:$P_BTLS" -cert "$WORK/cert.pem" -key "$WORK/key.pem"
	wait_http "http://$IP:$P_B1/" && wait_http "http://$IP:$P_B3/healthz" && wait_http "https://$IP:$P_BTLS/" ||
		die "backend did not start: $(cat "$(errlog backend)")"
}

# Config writers; $1 = mode (http | https | hs), TLS for everything but http.
# write_lb MODE [NAME PORT ADMINPORT]: $WORK/NAME.yaml (default lb).
write_lb() {
	local tls="" name=${2:-lb} port=${3:-$P_LB} aport=${4:-$P_LBADMIN}
	[[ $1 != http && $1 != http-pinned ]] && tls="tls:
  cert_file: $WORK/cert.pem
  key_file: $WORK/key.pem"
	cat >"$WORK/$name.yaml" <<EOF
listen: "$IP:$port"
$tls
admin:
  listen: "127.0.0.1:$aport"
  token_file: $WORK/admin-token
policy: round_robin
health_check:
  path: /healthz
  interval: 2s
backends:
  - name: b1
    url: http://$IP:$P_B1
  - name: b2
    url: http://$IP:$P_B2
  - name: b3
    url: http://$IP:$P_B3
EOF
}

write_haproxy() {
	local bind="bind $IP:$P_HAPROXY"
	case $1 in
	h2) bind="$bind ssl crt $WORK/haproxy.pem alpn h2,http/1.1" ;;
	https | hs) bind="$bind ssl crt $WORK/haproxy.pem alpn http/1.1" ;;
	esac
	cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 4096
    nbthread $(workers "$1" 2)
defaults
    mode http
    log stdout format raw local0
    option httplog
    option http-keep-alive
    option forwardfor
    timeout connect 2s
    timeout client 120s
    timeout server 10s
    timeout http-keep-alive 120s
frontend fe
    $bind
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /healthz
    server b1 $IP:$P_B1 check inter 2s
    server b2 $IP:$P_B2 check inter 2s
    server b3 $IP:$P_B3 check inter 2s
EOF
}

write_nginx() {
	local listen="listen $IP:$P_NGINX;" tls="" user=""
	case $1 in
	h2) listen="listen $IP:$P_NGINX ssl http2;" ;;
	https | hs) listen="listen $IP:$P_NGINX ssl;" ;;
	esac
	[[ $1 != http && $1 != http-pinned ]] && tls="ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;"
	[[ $(id -u) == 0 ]] && user="user root;"
	mkdir -p "$WORK/nginx/tmp"
	cat >"$WORK/nginx/nginx.conf" <<EOF
$user
worker_processes $(workers "$1" auto);
pid $WORK/nginx/nginx.pid;
error_log $WORK/logs/nginx-error.log warn;
events { worker_connections 4096; }
http {
    log_format bench escape=json '{"time":"\$time_iso8601","method":"\$request_method","path":"\$uri","status":\$status,"duration":\$request_time,"client_ip":"\$remote_addr","backend":"\$upstream_addr","bytes":\$bytes_sent}';
    access_log /dev/stdout bench;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    keepalive_timeout 120s;
    keepalive_requests 100000000;
    upstream backends {
        server $IP:$P_B1;
        server $IP:$P_B2;
        server $IP:$P_B3;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 60s;
    }
    server {
        $listen
        $tls
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
}

write_caddy() {
	local site="http://:$P_CADDY" tls=""
	[[ $1 != http && $1 != http-pinned ]] && site="https://:$P_CADDY" && tls="tls $WORK/cert.pem $WORK/key.pem"
	cat >"$WORK/Caddyfile" <<EOF
{
    admin off
    auto_https off
}
$site {
    bind $IP
    $tls
    log {
        output stdout
        format json
    }
    reverse_proxy $IP:$P_B1 $IP:$P_B2 $IP:$P_B3 {
        lb_policy round_robin
        health_uri /healthz
        health_interval 2s
        transport http {
            keepalive 60s
            keepalive_idle_conns_per_host 64
        }
    }
}
EOF
}

# url TARGET MODE
url() {
	local scheme=https port
	[[ $2 == http || $2 == http-pinned ]] && scheme=http
	case $1 in
	direct) port=$P_B1 && [[ $scheme == https ]] && port=$P_BTLS ;;
	lb) port=$P_LB ;;
	lbx) port=$P_LBX ;;
	haproxy) port=$P_HAPROXY ;;
	nginx) port=$P_NGINX ;;
	caddy) port=$P_CADDY ;;
	esac
	echo "$scheme://$IP:$port/"
}

ACTIVE=()   # targets that are up for the current mode
start_proxies() {
	local mode=$1 t
	CUR_MODE=$mode
	ACTIVE=()
	set_pin "$mode"
	for t in "${TARGETS[@]}"; do
		case $t in
		direct) ACTIVE+=(direct) && continue ;;
		lb)
			[[ -n "$LB_BIN" ]] || continue
			write_lb "$mode"
			# shellcheck disable=SC2086
			start lb "${PIN[@]}" env LOG_FORMAT=json ${BENCH_LB_ENV:-} "$LB_BIN" serve -config "$WORK/lb.yaml"
			;;
		lbx)
			[[ -n "${BENCH_LBX_BIN:-}" ]] || die "target lbx needs BENCH_LBX_BIN"
			write_lb "$mode" lbx "$P_LBX" "$P_LBXADMIN"
			# shellcheck disable=SC2086
			start lbx "${PIN[@]}" env LOG_FORMAT=json ${BENCH_LBX_ENV:-} "$BENCH_LBX_BIN" serve -config "$WORK/lbx.yaml"
			;;
		haproxy)
			write_haproxy "$mode"
			start haproxy "${PIN[@]}" haproxy -db -f "$WORK/haproxy.cfg"
			;;
		nginx)
			write_nginx "$mode"
			start nginx "${PIN[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g "daemon off;"
			;;
		caddy)
			write_caddy "$mode"
			start caddy "${PIN[@]}" env HOME="$WORK/caddyhome" XDG_DATA_HOME="$WORK/caddyhome" XDG_CONFIG_HOME="$WORK/caddyhome" \
				caddy run --adapter caddyfile --config "$WORK/Caddyfile"
			;;
		*) die "unknown target $t" ;;
		esac
		if wait_http "$(url "$t" "$mode")"; then
			ACTIVE+=("$t")
		else
			log "$t did not come up for mode $mode (last answer: ${LAST_CODE:-none}); left out. stderr:"
			tail -n 20 "$(errlog "$t")" >&2 || true
			stop "$t"
		fi
	done
}

stop_proxies() {
	local t
	for t in lb lbx haproxy nginx caddy; do stop "$t"; done
}

# pids_of TARGET: the process and its direct children (nginx workers).
pids_of() {
	local name=$1 pid
	[[ $name == direct ]] && name=backend
	pid=${PIDS[$name]}
	# "env" execs the real program, so PIDS holds the program's pid.
	echo "$pid"
	ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' '
}

# cpu_ticks PIDS...: utime+stime summed (clock ticks).
cpu_ticks() {
	local sum=0 p
	for p in "$@"; do
		[[ -r /proc/$p/stat ]] || continue
		# Fields after the ")" of comm: state is $1, utime $12, stime $13.
		sum=$((sum + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
	done
	echo "$sum"
}

# rw_syscalls PIDS...: read+write system calls so far (syscr+syscw of /proc/PID/io), summed.
rw_syscalls() {
	local sum=0 p v
	for p in "$@"; do
		v=$(awk '/^sysc[rw]:/ {n += $2} END {print n + 0}' "/proc/$p/io" 2>/dev/null || echo 0)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# hwm_kb PIDS...: VmHWM summed (kB); shared pages of nginx workers count twice.
hwm_kb() {
	local sum=0 p v
	for p in "$@"; do
		v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

