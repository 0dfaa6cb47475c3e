#!/usr/bin/env bash
# Proxy benchmark: starts an upstream, the Connectors proxy (test/bench/proxyd)
# twice (net/http's upstream transport, and the upstream fast path),
# nginx and HAProxy as reverse proxies that add a fixed Authorization header
# (each with an access log), Caddy (Debian's, a Go peer) doing the same, and the
# reference points of test/bench/baseline (a bare httputil.ReverseProxy, the
# same with a synchronous HTTP/1.1 client, and a TCP relay), all on loopback, drives them with wrk and test/bench/load, and
# prints one table: small keep-alive GETs direct / through nginx / the
# baselines / reverse / forward / MITM with the CPU time each proxy spends
# per request, 1 GiB bodies streamed through each with the proxy's RSS
# growth, review API calls for one reused token, and leaf certificates for
# 1,000 MITM connections.
#
# Every measurement runs BENCH_RUNS times (interleaved); the table shows the
# median (and the largest RSS growth). Everything it starts, it stops.
#
# Environment: BENCH_DURATION (seconds per small-GET run, default 10),
# BENCH_RUNS (default 3), BENCH_CONNS (default "50 100"), BENCH_STREAM_BYTES
# (default 1 GiB), BENCH_PORT_BASE (twelve ports from here, default 18400),
# BENCH_SMALL_ONLY=1 (only the small-GET wrk rows, for quick comparisons),
# BENCH_GOGC (the proxy's and the floors' GOGC, default 400: high enough
# that the difference is the proxy's work, not the collector's; the
# DaemonSet's 100 is measured with BENCH_GOGC=100), BENCH_PPROF=1 (serve pprof on the proxy's ops port), BENCH_KEEP=1 (keep
# the work directory).
set -euo pipefail

DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNS:-"50 100"}
STREAM=${BENCH_STREAM_BYTES:-1073741824}
BASE=${BENCH_PORT_BASE:-18400}
UP_HTTP=$BASE UP_HTTPS=$((BASE + 1)) PROXY=$((BASE + 2)) OPS=$((BASE + 3)) NGINX=$((BASE + 4))
FLOOR=$((BASE + 5)) RELAY=$((BASE + 6)) SYNC=$((BASE + 7)) HAPROXY=$((BASE + 8)) CADDY=$((BASE + 9))
FAST=$((BASE + 10)) FAST_OPS=$((BASE + 11))
SMALL_ONLY=${BENCH_SMALL_ONLY:-0}
NODE_GOGC=${BENCH_GOGC:-400}
GO=${GO:-go}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d /tmp/proxy-bench.XXXXXX)
chmod 755 "$work"
pids=()

log() { printf '%s\n' "$*" >&2; }

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		log "work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		port_open "$1" && return 0
		sleep 0.1
	done
	log "nothing listens on port $1"
	return 1
}

for p in $UP_HTTP $UP_HTTPS $PROXY $OPS $NGINX $FLOOR $RELAY $SYNC $HAPROXY $CADDY $FAST $FAST_OPS; do
	if port_open "$p"; then
		log "port $p is in use; set BENCH_PORT_BASE"
		exit 1
	fi
done
for tool in wrk nginx haproxy caddy pgrep curl; do
	command -v "$tool" >/dev/null || { log "$tool is not installed: run hack/install-deps.sh bench (make bench-proxy does)"; exit 1; }
done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "building into $work/bin"
(cd "$root" && "$GO" build -o "$work/bin/" ./test/bench/upstream ./test/bench/proxyd ./test/bench/load ./test/bench/baseline)

"$work/bin/upstream" -http "127.0.0.1:$UP_HTTP" -https "127.0.0.1:$UP_HTTPS" -ca-out "$work/upstream-ca.pem" \
	2>"$work/upstream.log" &
pids+=($!)
wait_port "$UP_HTTP"
wait_port "$UP_HTTPS"

pprof=()
[[ ${BENCH_PPROF:-0} == 1 ]] && pprof=(-pprof)
# GOMEMLIMIT as deploy/base/daemonset.yaml sets it; GOGC as BENCH_GOGC
# says, the same for the floors below.
GOGC=$NODE_GOGC GOMEMLIMIT=192MiB "$work/bin/proxyd" -listen "127.0.0.1:$PROXY" -ops "127.0.0.1:$OPS" \
	-upstream-http "127.0.0.1:$UP_HTTP" -upstream-https "127.0.0.1:$UP_HTTPS" \
	-upstream-ca "$work/upstream-ca.pem" -ca-out "$work/proxy-ca.pem" -log "$work/proxy-audit.log" "${pprof[@]}" \
	2>"$work/proxyd.log" &
proxy_pid=$!
pids+=("$proxy_pid")
wait_port "$PROXY"
wait_port "$OPS"
# The same proxy with the upstream fast path (proxy/upstream), for the
# reverse-fast and forward-fast rows.
GOGC=$NODE_GOGC GOMEMLIMIT=192MiB "$work/bin/proxyd" -upstream-fast-path -listen "127.0.0.1:$FAST" -ops "127.0.0.1:$FAST_OPS" \
	-upstream-http "127.0.0.1:$UP_HTTP" -upstream-https "127.0.0.1:$UP_HTTPS" \
	-upstream-ca "$work/upstream-ca.pem" -ca-out "$work/proxy-fast-ca.pem" -log "$work/proxy-fast-audit.log" "${pprof[@]}" \
	2>"$work/proxyd-fast.log" &
fast_pid=$!
pids+=("$fast_pid")
wait_port "$FAST"
wait_port "$FAST_OPS"

# nginx as the reverse proxy a user would pick: keep-alive to the upstream,
# a fixed Authorization header, an access log like the proxy's audit log.
nginx_cred=$(printf 'bench:bench-pass' | base64)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
user $(id -un) $(id -gn);
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log $work/nginx/access.log;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	upstream up { server 127.0.0.1:$UP_HTTP; keepalive 128; }
	server {
		listen 127.0.0.1:$NGINX;
		location / {
			proxy_pass http://up;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Authorization "Basic $nginx_cred";
			proxy_max_temp_file_size 0;
		}
	}
}
EOF
nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_port "$NGINX"

# HAProxy (Debian's) doing the same: one thread per core like nginx's
# workers, keep-alive to the upstream, the fixed Authorization header, and an
# access log line per request written to a file.
mkdir -p "$work/haproxy"
cat >"$work/haproxy/haproxy.cfg" <<EOF
global
	nbthread $(nproc)
	maxconn 4096
	log stdout format raw local0
defaults
	mode http
	log global
	option httplog
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend bench
	bind 127.0.0.1:$HAPROXY
	default_backend up
backend up
	http-request set-header Authorization "Basic $nginx_cred"
	server up 127.0.0.1:$UP_HTTP
EOF
haproxy -db -f "$work/haproxy/haproxy.cfg" >"$work/haproxy/access.log" 2>"$work/haproxy/error.log" &
haproxy_pid=$!
pids+=("$haproxy_pid")
wait_port "$HAPROXY"

# Caddy (Debian's), a reverse proxy written in Go like the Connectors proxy,
# doing the same as shipped (its own GOGC and GOMAXPROCS): keep-alive to the
# upstream, the fixed Authorization header, an access log line per request
# written to a file; no admin endpoint, no automatic HTTPS, its state in the
# work directory.
mkdir -p "$work/caddy"
cat >"$work/caddy/Caddyfile" <<EOF
{
	admin off
	auto_https off
}
http://127.0.0.1:$CADDY {
	log {
		output file $work/caddy/access.log
	}
	reverse_proxy 127.0.0.1:$UP_HTTP {
		header_up Authorization "Basic $nginx_cred"
	}
}
EOF
XDG_CONFIG_HOME=$work/caddy XDG_DATA_HOME=$work/caddy caddy run --adapter caddyfile --config "$work/caddy/Caddyfile" \
	>"$work/caddy/caddy.log" 2>&1 &
caddy_pid=$!
pids+=("$caddy_pid")
wait_port "$CADDY"

# The reference points: the standard library's floor, the same with a
# synchronous upstream client, and the TCP ceiling.
GOGC=$NODE_GOGC "$work/bin/baseline" -mode reverseproxy -listen "127.0.0.1:$FLOOR" -upstream "127.0.0.1:$UP_HTTP" &
floor_pid=$!
pids+=("$floor_pid")
"$work/bin/baseline" -mode relay -listen "127.0.0.1:$RELAY" -upstream "127.0.0.1:$UP_HTTP" &
relay_pid=$!
pids+=("$relay_pid")
GOGC=$NODE_GOGC "$work/bin/baseline" -mode syncproxy -listen "127.0.0.1:$SYNC" -upstream "127.0.0.1:$UP_HTTP" &
sync_pid=$!
pids+=("$sync_pid")
wait_port "$FLOOR"
wait_port "$RELAY"
wait_port "$SYNC"

# Tokens: the fake API server accepts any bench- token; each new token is a
# new ServiceAccount, so nothing is cached for it.
token="bench-load-$RANDOM$RANDOM"
rev="http://127.0.0.1:$PROXY/namespaces/bench/connectors/plain"
fwd_plain="http://bench%2Fplain:$token@127.0.0.1:$PROXY"
fwd_tls="http://bench%2Ftls:$token@127.0.0.1:$PROXY"
up_http="http://up.bench.test:$UP_HTTP"
up_https="https://up.bench.test:$UP_HTTPS"
ngx="http://127.0.0.1:$NGINX"
cas="$work/upstream-ca.pem,$work/proxy-ca.pem"
# wrk sends absolute-form requests to the forward proxy with this script.
cat >"$work/forward.lua" <<EOF
wrk.path = "$up_http/small"
wrk.headers["Host"] = "up.bench.test:$UP_HTTP"
wrk.headers["Proxy-Authorization"] = "Basic $(printf '%s' "bench/plain:$token" | base64 -w0)"
EOF
L="$work/bin/load"

stat() { # stat <json key>: a number from the proxy's /stats (the one on port $ops when set)
	curl -fsS "http://127.0.0.1:${ops:-$OPS}/stats" | grep -o "\"$1\":[0-9.e+]*" | cut -d: -f2
}
field() { # field <key> <key=value line>
	tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}
record() { # record <name> <value>: one sample of a measurement
	printf '%s\n' "$2" >>"$work/r.$1"
}
median() {
	[[ -s $work/r.$1 ]] || { echo "-"; return; }
	sort -g "$work/r.$1" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
maximum() {
	[[ -s $work/r.$1 ]] || { echo "-"; return; }
	sort -g "$work/r.$1" | tail -n1
}

# Leaf certificates first, on a fresh proxy: 1,000 new MITM connections to
# one host.
leaves0=0 leaves1=0 leaf_conns=-
if [[ $SMALL_ONLY != 1 ]]; then
log "leaf: 1000 MITM connections to one host"
leaves0=$(stat leavesIssued)
timeout 300 "$L" -url "$up_https/small" -proxy "$fwd_tls" -ca "$cas" -c 8 -n 1000 -new-conn -d 240s >"$work/leaf.out"
leaves1=$(stat leavesIssued)
leaf_conns=$(field requests "$(cat "$work/leaf.out")")

# Review calls: a fresh token reused for 10,000 requests, reverse and MITM.
reviews() { # reviews <name> <load args...>
	local name=$1 tr0 sar0
	shift
	tr0=$(stat tokenReviews) sar0=$(stat subjectAccessReviews)
	timeout 300 "$L" -c 50 -n 10000 -d 240s "$@" >"$work/$name.out"
	record "$name.req" "$(field requests "$(cat "$work/$name.out")")"
	record "$name.tr" $(($(stat tokenReviews) - tr0))
	record "$name.sar" $(($(stat subjectAccessReviews) - sar0))
}
log "reviews: one fresh token for 10000 requests"
t1="bench-rev-$RANDOM$RANDOM"
reviews rev-reviews -url "$rev/small" -bearer "$t1"
t2="bench-mitm-$RANDOM$RANDOM"
reviews mitm-reviews -url "$up_https/small" -proxy "http://bench%2Ftls:$t2@127.0.0.1:$PROXY" -ca "$cas"
fi

cpu_ticks() { # cpu_ticks <pid>...: user + system clock ticks of these processes
	local pid t=0
	for pid in "$@"; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
	done
	echo "$t"
}

wrk_run() { # wrk_run <name> <conns> <url> <pids measured, comma-separated> [header or @script]
	local name=$1 c=$2 url=$3 out t0 t1 n
	local -a measured
	IFS=, read -ra measured <<<"$4"
	local args=(-t2 -c"$c" -d"${DURATION}s" --latency --timeout 10s)
	case ${5:-} in
	"") ;;
	@*) args+=(-s "${5#@}") ;;
	*) args+=(-H "$5") ;;
	esac
	local aw0 al0 ops=$OPS
	[[ $name == *-fast-* ]] && ops=$FAST_OPS
	aw0=$(stat auditWrites) al0=$(stat auditLines)
	t0=$(cpu_ticks "${measured[@]}")
	out=$(timeout $((DURATION + 30)) wrk "${args[@]}" "$url")
	t1=$(cpu_ticks "${measured[@]}")
	# Audit writes per line (only the proxy writes audit lines).
	record "$name.wpl" "$(awk -v w=$(($(stat auditWrites) - aw0)) -v l=$(($(stat auditLines) - al0)) 'BEGIN { if (l > 0) printf "%.3f", w / l; else print "-" }')"
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	record "$name.rps" "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
	record "$name.cpu" "$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
	record "$name.p99" "$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) print v / 1000; else if (v ~ /ms$/) print v + 0; else print v * 1000}' <<<"$out")"
	if grep -q 'Non-2xx' <<<"$out"; then
		log "wrk $name: non-2xx responses"
		grep -E 'Non-2xx|Socket errors' <<<"$out" >&2
	fi
}

load_run() { # load_run <name> <load args...>
	local name=$1 out
	shift
	out=$(timeout 600 "$L" "$@")
	record "$name.rps" "$(field rps "$out")"
	record "$name.p99" "$(field p99_ms "$out")"
	record "$name.mib" "$(field mib_s "$out")"
	local g
	g=$(field rss_growth_mib "$out")
	[[ -n $g ]] && record "$name.rss" "$g"
	return 0
}

for ((run = 1; run <= RUNS; run++)); do
	log "run $run/$RUNS: small GETs (wrk, ${DURATION}s each)"
	nginx_workers=$(pgrep -d, -P "$nginx_pid")
	for c in $CONNS; do
		wrk_run "wrk-direct-$c" "$c" "http://127.0.0.1:$UP_HTTP/small" "${pids[0]}"
		wrk_run "wrk-nginx-$c" "$c" "$ngx/small" "$nginx_workers"
		wrk_run "wrk-haproxy-$c" "$c" "http://127.0.0.1:$HAPROXY/small" "$haproxy_pid"
		wrk_run "wrk-caddy-$c" "$c" "http://127.0.0.1:$CADDY/small" "$caddy_pid"
		wrk_run "wrk-floor-$c" "$c" "http://127.0.0.1:$FLOOR/small" "$floor_pid"
		wrk_run "wrk-sync-$c" "$c" "http://127.0.0.1:$SYNC/small" "$sync_pid"
		wrk_run "wrk-relay-$c" "$c" "http://127.0.0.1:$RELAY/small" "$relay_pid"
		wrk_run "wrk-reverse-$c" "$c" "$rev/small" "$proxy_pid" "Authorization: Bearer $token"
		wrk_run "wrk-forward-$c" "$c" "http://127.0.0.1:$PROXY/small" "$proxy_pid" "@$work/forward.lua"
		wrk_run "wrk-reverse-fast-$c" "$c" "http://127.0.0.1:$FAST/namespaces/bench/connectors/plain/small" "$fast_pid" "Authorization: Bearer $token"
		wrk_run "wrk-forward-fast-$c" "$c" "http://127.0.0.1:$FAST/small" "$fast_pid" "@$work/forward.lua"
	done
	[[ $SMALL_ONLY == 1 ]] && continue

	log "run $run/$RUNS: small GETs (Go load generator, 50 connections)"
	g=(-c 50 -d "${DURATION}s" -warmup 1s -ca "$cas")
	load_run go-direct "${g[@]}" -url "$up_http/small"
	load_run go-nginx "${g[@]}" -url "$ngx/small"
	load_run go-reverse "${g[@]}" -url "$rev/small" -bearer "$token"
	load_run go-forward "${g[@]}" -url "$up_http/small" -proxy "$fwd_plain"
	load_run go-direct-tls "${g[@]}" -url "$up_https/small"
	load_run go-mitm "${g[@]}" -url "$up_https/small" -proxy "$fwd_tls"

	log "run $run/$RUNS: $STREAM-byte bodies, one stream each"
	s=(-c 1 -n 1 -d 300s -ca "$cas")
	load_run dl-direct "${s[@]}" -url "$up_http/bytes?n=$STREAM"
	load_run dl-nginx "${s[@]}" -url "$ngx/bytes?n=$STREAM"
	load_run dl-floor "${s[@]}" -url "http://127.0.0.1:$FLOOR/bytes?n=$STREAM"
	load_run dl-relay "${s[@]}" -url "http://127.0.0.1:$RELAY/bytes?n=$STREAM"
	load_run dl-reverse "${s[@]}" -url "$rev/bytes?n=$STREAM" -bearer "$token" -rss-pid "$proxy_pid"
	load_run dl-forward "${s[@]}" -url "$up_http/bytes?n=$STREAM" -proxy "$fwd_plain" -rss-pid "$proxy_pid"
	load_run dl-direct-tls "${s[@]}" -url "$up_https/bytes?n=$STREAM"
	load_run dl-mitm "${s[@]}" -url "$up_https/bytes?n=$STREAM" -proxy "$fwd_tls" -rss-pid "$proxy_pid"
	load_run ul-direct "${s[@]}" -url "$up_http/sink" -upload "$STREAM"
	load_run ul-reverse "${s[@]}" -url "$rev/sink" -upload "$STREAM" -bearer "$token" -rss-pid "$proxy_pid"
	load_run ul-direct-tls "${s[@]}" -url "$up_https/sink" -upload "$STREAM"
	load_run ul-mitm "${s[@]}" -url "$up_https/sink" -upload "$STREAM" -proxy "$fwd_tls" -rss-pid "$proxy_pid"
done

# ---- the table ----
size_label() { awk -v b="$STREAM" 'BEGIN { if (b % 1073741824 == 0) printf "%d GiB", b / 1073741824; else printf "%d MiB", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "-") print "-"; else if ((op == ">=" && v >= t) || (op == "<=" && v <= t) || (op == "<" && v < t)) print "met"; else print "MISSED" }'; }
row() { printf '%-16s %-22s %6s %10s %9s %11s %9s  %-34s %s\n' "$@"; }

echo
echo "Proxy benchmark: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), median of $RUNS runs (machine may be shared; numbers are noisy)"
echo "Load average (1, 5, 15 min): $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
row "section" "path" "conns" "req/s" "p99 ms" "cpu us/req" "MiB/s" "ratio" "target"
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%+.1f", a - b }'; }
# Each proxy's req/s as a ratio to nginx and to the floor (same run), and
# its CPU per request against the floor's. Target: the Connectors proxy at
# most the floor's CPU + 10 us and at least 0.5x nginx; audit writes per
# line at most 0.2.
for c in $CONNS; do
	ngx_rps=$(median "wrk-nginx-$c.rps") floor_rps=$(median "wrk-floor-$c.rps") floor_cpu=$(median "wrk-floor-$c.cpu")
	for t in direct nginx haproxy caddy floor sync relay reverse forward reverse-fast forward-fast; do
		rps=$(median "wrk-$t-$c.rps") p99=$(median "wrk-$t-$c.p99") cpu=$(median "wrk-$t-$c.cpu")
		nr=$(ratio "$rps" "$ngx_rps") fr=$(ratio "$rps" "$floor_rps") over=$(minus "$cpu" "$floor_cpu")
		np=$(ratio "$p99" "$(median "wrk-nginx-$c.p99")")
		case $t in
		reverse | forward | reverse-fast | forward-fast)
			wpl=$(median "wrk-$t-$c.wpl")
			v1=$(verdict "$nr" ">=" 0.5) v2=$(verdict "$over" "<=" 10) v3=$(verdict "$wpl" "<=" 0.2)
			row "small GET, wrk" "$t" "$c" "$rps" "$p99" "$cpu" "" "${nr}x nginx, ${fr}x floor, cpu ${over} us, p99 ${np}x, audit ${wpl} writes/line" "rps $v1, cpu $v2, audit $v3"
			;;
		direct) row "small GET, wrk" "$t" "$c" "$rps" "$p99" "$cpu" "" "" "" ;;
		*) row "small GET, wrk" "$t" "$c" "$rps" "$p99" "$cpu" "" "${nr}x nginx, ${fr}x floor, cpu ${over} us, p99 ${np}x" "" ;;
		esac
	done
done
[[ $SMALL_ONLY == 1 ]] && exit 0
for t in direct nginx reverse forward direct-tls mitm; do
	rps=$(median "go-$t.rps")
	case $t in
	reverse | nginx | forward) note="$(ratio "$rps" "$(median go-direct.rps)")x direct" ;;
	mitm) note="$(ratio "$rps" "$(median go-direct-tls.rps)")x direct-tls" ;;
	*) note="" ;;
	esac
	row "small GET, load" "$t" 50 "$rps" "$(median "go-$t.p99")" "" "" "$note" ""
done
for d in dl ul; do
	for t in direct nginx floor relay reverse forward direct-tls mitm; do
		[[ -s $work/r.$d-$t.mib ]] || continue
		mib=$(median "$d-$t.mib")
		base=direct
		[[ $t == mitm ]] && base=direct-tls
		note="" target=""
		if [[ $t != direct && $t != direct-tls ]]; then
			r=$(ratio "$mib" "$(median "$d-$base.mib")")
			note="${r}x $base"
			if [[ -s $work/r.$d-$t.rss ]]; then
				rss=$(maximum "$d-$t.rss")
				note="$note, RSS +${rss} MiB"
				[[ $t != forward ]] && target="tput $(verdict "$r" ">=" 0.8), rss $(verdict "$rss" "<" 32)"
			fi
		fi
		label="$(size_label) download"
		[[ $d == ul ]] && label="$(size_label) upload"
		row "$label" "$t" 1 "" "" "" "$mib" "$note" "$target"
	done
done
for t in rev mitm; do
	tr=$(maximum "$t-reviews.tr") sar=$(maximum "$t-reviews.sar")
	v="$(verdict "$tr" "<=" 2)/$(verdict "$sar" "<=" 2)"
	label=reverse
	[[ $t == mitm ]] && label=mitm
	row "review calls" "$label, 1 token" 50 "$(median "$t-reviews.req") req" "" "" "" "TokenReview $tr, SAR $sar" "$v"
done
leaves=$(awk -v a="$leaves0" -v b="$leaves1" 'BEGIN {print b - a}')
row "leaf certs" "mitm, new conn each" 8 "$leaf_conns conn" "" "" "" "leaves issued $leaves" "$(verdict "$leaves" "<=" 1)"
