#!/usr/bin/env bash
# Gateway overhead: the same upstream reached directly, through nginx as a plain reverse
# proxy, and through gatehouse (authentication, Cedar decision, signed context, audit to
# PostgreSQL), one after the other in one run, with wrk on loopback.
#
#   bench/gateway/run.sh [seconds per run, default 15] [connections, default 64]
#
# Needs: nginx and wrk (Debian packages), PostgreSQL server binaries, a release build
# (`cargo build --release -p gatehouse-gateway`; this script builds it). Loopback only;
# every process it starts is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-15}
CONNECTIONS=${2:-64}
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done
cargo build --release -q -p gatehouse-gateway
GATEHOUSE=target/release/gatehouse

WORK=$(mktemp -d)
chmod 755 "$WORK"
cleanup() {
  for conf in upstream proxy; do
    [ -f "$WORK/$conf.pid" ] && nginx -q -p "$WORK" -c "$WORK/$conf.conf" -s quit 2>/dev/null || true
  done
  [ -n "${GH_PID:-}" ] && kill -TERM "$GH_PID" 2>/dev/null && wait "$GH_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); NGX=$(free_port); GH=$(free_port)

nginx_conf() { # name, port, location body
  cat > "$WORK/$1.conf" <<CONF
worker_processes 2;
pid $WORK/$1.pid;
error_log $WORK/$1.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1.body;
  proxy_temp_path $WORK/$1.proxy;
  upstream app { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$2;
    location / { $3 }
  }
}
CONF
  nginx -q -p "$WORK" -c "$WORK/$1.conf"
}
nginx_conf upstream "$UP" 'default_type application/json; return 200 "{\"ok\":true}";'
nginx_conf proxy "$NGX" 'proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";'

cat > "$WORK/gatehouse.toml" <<CONF
[server]
listen = "127.0.0.1:$GH"
threads = 2
grace_period_seconds = 0
[policy]
bundle = "policies"
reload_interval_seconds = 0
[entities]
file = "policy-tests/fixtures/three-tenants.json"
[identity]
issuer = "https://id.bench"
audience = "gatehouse"
allow_hs256 = true
hs256_secret = "bench-only-secret"
[limits]
default_requests_per_second = 100000000
[database]
data_dir = "$WORK/postgres"
[audit]
spool = "$WORK/audit.spool"
[[upstream]]
name = "app"
address = "127.0.0.1:$UP"
[[route]]
method = "GET"
path = "/documents/{id}"
action = "document:read"
resource = "Document"
upstream = "app"
CONF
RUST_LOG=warn "$GATEHOUSE" --config "$WORK/gatehouse.toml" > "$WORK/gatehouse.log" 2>&1 &
GH_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GH/healthz" >/dev/null && break; sleep 0.2; done

# Requests rotate over users (viewer, editor, admin, group member) and documents.
LUA="$WORK/rotate.lua"
{
  echo "local tokens = {"
  for user in acme-vera acme-ed acme-ada acme-olive; do
    echo "  \"$("$GATEHOUSE" --config "$WORK/gatehouse.toml" dev-token --user "$user" --tenant acme)\","
  done
  echo "}"
  cat <<'LUA'
local docs = { "acme-plan", "acme-public", "acme-contract", "acme-roadmap", "acme-olive-notes" }
local n = 0
request = function()
  n = n + 1
  local headers = { ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] }
  return wrk.format("GET", "/documents/" .. docs[(n % #docs) + 1], headers)
end
LUA
} > "$LUA"

run() { # label, port
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$LUA" "http://127.0.0.1:$2/" > "$WORK/$1.wrk"
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$1.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/$1.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/$1.wrk")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/$1.wrk")
  echo "$1|$rps|$p50|$p99|${non2xx:-0}"
}

echo "wrk: 2 threads, $CONNECTIONS connections, ${SECONDS_PER_RUN}s per run, on $(nproc) cores"
direct=$(run direct "$UP")
nginx=$(run nginx "$NGX")
perf record -F 999 -g -p $GH_PID -o /tmp/perf.data -- sleep 6 & gatehouse=$(run gatehouse "$GH"); wait
echo
echo "| path | requests/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
for line in "$direct" "$nginx" "$gatehouse"; do
  IFS='|' read -r label rps p50 p99 non2xx <<< "$line"
  echo "| $label | $rps | $p50 | $p99 | $non2xx |"
done
python3 - "$direct" "$nginx" "$gatehouse" <<'PY'
import sys
def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit): return float(v[: -len(unit)]) * f
    return float(v)
rows = {l.split("|")[0]: l.split("|") for l in sys.argv[1:]}
g, n, d = rows["gatehouse"], rows["nginx"], rows["direct"]
print()
print(f"throughput gatehouse/nginx: {float(g[1]) / float(n[1]):.2f}x")
print(f"added latency vs nginx: p50 {ms(g[2]) - ms(n[2]):+.3f} ms, p99 {ms(g[3]) - ms(n[3]):+.3f} ms")
print(f"added latency vs direct: p50 {ms(g[2]) - ms(d[2]):+.3f} ms, p99 {ms(g[3]) - ms(d[3]):+.3f} ms")
PY
audited=$(grep -c . "$WORK/audit.spool" 2>/dev/null || true)
echo "(gatehouse audited every request to PostgreSQL; spooled records at the end: ${audited:-0})"
