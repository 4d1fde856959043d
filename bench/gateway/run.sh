#!/usr/bin/env bash
# Gateway overhead, in one run, on loopback, against one upstream (nginx answering a
# small JSON body), reached:
#   direct       the upstream itself
#   nginx        nginx as a plain reverse proxy (the baseline of the target)
#   pingora      a plain Pingora proxy (bench/src/bin/pingora-passthrough.rs): what the
#                framework costs before Gatehouse does anything
#   gatehouse    authentication, tenant, route, Cedar decision, signed context and audit
#                to PostgreSQL: with an EdDSA context and with an HS256 context, each
#                with the durable audit (sync: no answer before its record is synced to
#                the spool) and with async (spooled just after the answer)
# Two measures: the latency each adds at the same fixed RATE (bench/src/bin/loadgen.rs,
# open loop, timed from when each request was due), then the most each serves (wrk,
# closed loop, CONNECTIONS connections). Latency goes first: after a saturating run the
# audit log's PostgreSQL is still busy for a while.
#
#   bench/gateway/run.sh [seconds per run, default 15] [connections, default 64] [rate, default 2000]
#
# Needs: nginx and wrk (Debian packages), PostgreSQL server binaries. Builds what it runs
# (`--profile dist`: release with thin LTO). Every process it starts is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-15}
CONNECTIONS=${2:-64}
RATE=${3:-2000}
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done
cargo build --profile dist -q -p gatehouse-gateway -p gatehouse-bench --bins
BIN=target/dist

WORK=$(mktemp -d)
chmod 755 "$WORK"
source bench/lib.sh
cleanup() {
  for conf in upstream proxy; do
    [ -f "$WORK/$conf.pid" ] && nginx -q -p "$WORK" -c "$WORK/$conf.conf" -s quit 2>/dev/null || true
  done
  stop_gatehouse
  [ -n "${PT_PID:-}" ] && kill "$PT_PID" 2>/dev/null && wait "$PT_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

UP=$(free_port); NGX=$(free_port); PT=$(free_port); GH=$(free_port)

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
nginx_conf upstream "$UP" 'keepalive_requests 1000000; default_type application/json; return 200 "{\"ok\":true}";'
nginx_conf proxy "$NGX" 'proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";'
"$BIN/pingora-passthrough" "127.0.0.1:$PT" "127.0.0.1:$UP" 2 > "$WORK/pingora.log" 2>&1 &
PT_PID=$!

gatehouse_conf() { # context algorithm
  gatehouse_config <<CONF
[entities]
file = "policy-tests/fixtures/three-tenants.json"
[forwarding]
algorithm = "$1"
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
}

# Requests rotate over users (viewer, editor, admin, group member) and documents.
gatehouse_conf EdDSA
mapfile -t TOKENS < <(for user in acme-vera acme-ed acme-ada acme-olive; do
  "$BIN/gatehouse" --config "$WORK/gatehouse.toml" dev-token --user "$user" --tenant acme
done)
DOCS=(acme-plan acme-public acme-contract acme-roadmap acme-olive-notes)
for n in $(seq 0 19); do
  echo "/documents/${DOCS[$((n % 5))]} Bearer ${TOKENS[$((n % 4))]}"
done > "$WORK/requests.txt"
{
  echo "local lines = {"
  while read -r path auth; do echo "  { \"$path\", \"$auth\" },"; done < "$WORK/requests.txt"
  cat <<'LUA'
}
local n = 0
request = function()
  n = n + 1
  local line = lines[(n % #lines) + 1]
  return wrk.format("GET", line[1], { ["Authorization"] = line[2] })
end
LUA
} > "$WORK/rotate.lua"

saturate() { # label, port -> label|rps|p50|p99|non2xx
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$WORK/rotate.lua" "http://127.0.0.1:$2/" > "$WORK/$1.wrk"
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$1.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/$1.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/$1.wrk")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/$1.wrk")
  echo "$1|$rps|$p50|$p99|${non2xx:-0}"
}
at_rate() { # label, port -> label|json
  echo "$1|$("$BIN/loadgen" --url "http://127.0.0.1:$2" --requests "$WORK/requests.txt" \
    --rate "$RATE" --seconds "$SECONDS_PER_RUN" --connections "$CONNECTIONS" --json)"
}

echo "on $(nproc) cores; wrk: 2 threads, $CONNECTIONS connections; loadgen: $RATE requests/s; ${SECONDS_PER_RUN}s per run"
results=() latencies=()
for target in "direct $UP" "nginx $NGX" "pingora $PT"; do
  set -- $target
  latencies+=("$(at_rate "$1" "$2")") results+=("$(saturate "$1" "$2")")
done
for durability in sync async; do
  for alg in EdDSA HS256; do
    AUDIT_DURABILITY=$durability gatehouse_conf "$alg"
    start_gatehouse
    sleep 5 # let the previous run's audit writes and autovacuum settle
    label="gatehouse-$alg-$durability"
    latencies+=("$(at_rate "$label" "$GH")") results+=("$(saturate "$label" "$GH")")
    stop_gatehouse
  done
done
audited=$(grep -c . "$WORK/audit.spool" 2>/dev/null || true)

python3 - "${results[@]}" -- "${latencies[@]}" <<'PY'
import json, sys
args = sys.argv[1:]
split = args.index("--")
saturated = [l.split("|") for l in args[:split]]
fixed = {l.split("|", 1)[0]: json.loads(l.split("|", 1)[1]) for l in args[split + 1:]}
def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit): return float(v[: -len(unit)]) * f
    return float(v)
rps = {row[0]: float(row[1]) for row in saturated}
print("\nmost served (wrk, closed loop)\n")
print("| path | requests/s | vs nginx | p50 | p99 | non-2xx |")
print("|---|---|---|---|---|---|")
for label, r, p50, p99, non2xx in saturated:
    print(f"| {label} | {float(r):,.0f} | {float(r) / rps['nginx']:.2f}x | {p50} | {p99} | {non2xx} |")
rate = next(iter(fixed.values()))["rate"]
print(f"\nlatency at {rate} requests/s (loadgen, open loop)\n")
print("| path | p50 ms | p90 ms | p99 ms | p99.9 ms | added p50 vs nginx | added p99 vs nginx | non-2xx | errors |")
print("|---|---|---|---|---|---|---|---|---|")
base = fixed["nginx"]["latency_ms"]
for label, run in fixed.items():
    l = run["latency_ms"]
    print(f"| {label} | {l['p50']:.3f} | {l['p90']:.3f} | {l['p99']:.3f} | {l['p99.9']:.3f} | "
          f"{l['p50'] - base['p50']:+.3f} | {l['p99'] - base['p99']:+.3f} | {run['non_2xx']} | {run['errors']} |")
PY
echo
echo "(gatehouse audited every request to PostgreSQL; records still spooled at the end: ${audited:-0})"
