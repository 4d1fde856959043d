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
# Three measures: the latency each adds at the same fixed RATE (bench/src/bin/loadgen.rs,
# open loop, timed from when each request was due); the most each serves (wrk, closed
# loop, CONNECTIONS connections); and the CPU time the proxy's own processes spend per
# request served in that wrk run (utime + stime from /proc, over requests), PostgreSQL's
# share apart, with gatehouse's time per phase from its own histograms
# (gatehouse_phase_seconds). Every configuration runs REPEAT times, interleaved; the
# tables give the median and the range. Latency goes first: after a saturating run the
# audit log's PostgreSQL is still busy for a while.
#
#   bench/gateway/run.sh [seconds per run, default 15] [connections, default 64] [rate, default 2000] [repeat, default 3]
#
# Needs: nginx and wrk (Debian packages), PostgreSQL server binaries. Builds what it runs
# (`--profile dist`: release with thin LTO). Every process it starts is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-15}
CONNECTIONS=${2:-64}
RATE=${3:-2000}
REPEAT=${4:-3}
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

UP=$(free_port); NGX=$(free_port); PT=$(free_port); GH=$(free_port); GHM=$(free_port)

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

# The CPU time (utime + stime, in clock ticks) the processes $@ have used so far.
cpu_ticks() {
  local total=0 pid stat fields
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -r -a fields <<< "${stat##*) }" # after the command name, which may hold spaces
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}
# The pids of nginx's master (pid file $1) and its workers.
nginx_pids() { local master; master=$(cat "$1"); echo "$master" $(pgrep -P "$master"); }
# The pids of gatehouse's private PostgreSQL: the postmaster and its children.
postgres_pids() {
  local postmaster; postmaster=$(head -1 "$WORK/postgres/postmaster.pid" 2>/dev/null) || return 0
  echo "$postmaster" $(pgrep -P "$postmaster")
}
phases() { curl -sf "http://127.0.0.1:$GHM/metrics" | grep -E '^gatehouse_phase_seconds_(sum|count)' || true; }

saturate() { # label, run, port, proxy pids -> a line of $WORK/saturated.txt
  local label=$1 run=$2 port=$3; shift 3
  local pids=("$@") pg_pids=() before pg_before after pg_after
  [[ $label == gatehouse* ]] && { read -r -a pg_pids <<< "$(postgres_pids)"; phases > "$WORK/phases-$label-$run-before"; }
  before=$(cpu_ticks "${pids[@]}"); pg_before=$(cpu_ticks "${pg_pids[@]}")
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$WORK/rotate.lua" "http://127.0.0.1:$port/" > "$WORK/$label-$run.wrk"
  after=$(cpu_ticks "${pids[@]}"); pg_after=$(cpu_ticks "${pg_pids[@]}")
  [[ $label == gatehouse* ]] && phases > "$WORK/phases-$label-$run-after"
  local requests rps non2xx
  requests=$(awk '/requests in/ {print $1}' "$WORK/$label-$run.wrk")
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$label-$run.wrk")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/$label-$run.wrk")
  echo "$label $run $rps $requests $((after - before)) $((pg_after - pg_before)) ${non2xx:-0} ${#pids[@]}" >> "$WORK/saturated.txt"
}
at_rate() { # label, run, port -> a line of $WORK/latency.txt
  echo "$1 $2 $("$BIN/loadgen" --url "http://127.0.0.1:$3" --requests "$WORK/requests.txt" \
    --rate "$RATE" --seconds "$SECONDS_PER_RUN" --connections "$CONNECTIONS" --json)" >> "$WORK/latency.txt"
}

echo "on $(nproc) cores; wrk: 2 threads, $CONNECTIONS connections; loadgen: $RATE requests/s; ${SECONDS_PER_RUN}s per run; $REPEAT runs of each"
: > "$WORK/saturated.txt"; : > "$WORK/latency.txt"
for run in $(seq "$REPEAT"); do
  echo "run $run of $REPEAT" >&2
  at_rate direct "$run" "$UP"; saturate direct "$run" "$UP" $(nginx_pids "$WORK/upstream.pid")
  at_rate nginx "$run" "$NGX"; saturate nginx "$run" "$NGX" $(nginx_pids "$WORK/proxy.pid")
  at_rate pingora "$run" "$PT"; saturate pingora "$run" "$PT" "$PT_PID"
  for durability in sync async; do
    for alg in EdDSA HS256; do
      AUDIT_DURABILITY=$durability gatehouse_conf "$alg"
      start_gatehouse
      sleep 5 # let the previous run's audit writes and autovacuum settle
      label="gatehouse-$alg-$durability"
      at_rate "$label" "$run" "$GH"; saturate "$label" "$run" "$GH" "$GH_PID"
      stop_gatehouse
    done
  done
done
audited=$( (tr -d '\0' < "$WORK/audit.spool" | grep -c .) 2>/dev/null || true) # the records, not the zeros ahead of them

python3 - "$WORK" "$(getconf CLK_TCK)" <<'PY'
import glob, json, os, statistics, sys
work, tick = sys.argv[1], int(sys.argv[2])
order, runs = [], {}
for line in open(os.path.join(work, "saturated.txt")):
    label, run, rps, requests, ticks, pg_ticks, non2xx, _ = line.split()
    if label not in order: order.append(label)
    runs.setdefault(label, []).append({
        "run": run, "rps": float(rps), "requests": int(requests), "non2xx": int(non2xx),
        "cpu_us": int(ticks) * 1e6 / tick / int(requests),
        "pg_us": int(pg_ticks) * 1e6 / tick / int(requests)})
latency = {}
for line in open(os.path.join(work, "latency.txt")):
    label, run, doc = line.split(" ", 2)
    latency.setdefault(label, []).append(json.loads(doc))
def med(values): return statistics.median(values)
def spread(values, fmt): return f"{fmt.format(med(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"
rps = {l: med([r["rps"] for r in runs[l]]) for l in order}
cpu = {l: med([r["cpu_us"] for r in runs[l]]) for l in order}

print("\nmost served (wrk, closed loop), and the proxy's own CPU per request in that run: median (range)\n")
print("| path | requests/s | vs nginx | vs pingora | CPU µs/request | CPU vs pingora | PostgreSQL CPU µs/request | non-2xx |")
print("|---|---|---|---|---|---|---|---|")
for l in order:
    rs = runs[l]
    gh = l.startswith("gatehouse")
    print(f"| {l} | {spread([r['rps'] for r in rs], '{:,.0f}')} | {rps[l] / rps['nginx']:.2f}x | {rps[l] / rps['pingora']:.2f}x | "
          + (f"{spread([r['cpu_us'] for r in rs], '{:.1f}')} | {cpu[l] / cpu['pingora']:.2f}x | " if l != "direct" else "– | – | ")
          + (f"{spread([r['pg_us'] for r in rs], '{:.1f}')}" if gh else "–") + f" | {sum(r['non2xx'] for r in rs)} |")

print(f"\nlatency at the fixed rate (loadgen, open loop): median (range) over runs, in ms\n")
print("| path | p50 | p99 | p99.9 | added p50 vs nginx | added p99 vs nginx | non-2xx | errors |")
print("|---|---|---|---|---|---|---|---|")
base = {q: med([d["latency_ms"][q] for d in latency["nginx"]]) for q in ("p50", "p99")}
for l in order:
    ds = latency[l]
    q = lambda k: [d["latency_ms"][k] for d in ds]
    print(f"| {l} | {spread(q('p50'), '{:.3f}')} | {spread(q('p99'), '{:.3f}')} | {spread(q('p99.9'), '{:.3f}')} | "
          f"{med(q('p50')) - base['p50']:+.3f} | {med(q('p99')) - base['p99']:+.3f} | "
          f"{sum(d['non_2xx'] for d in ds)} | {sum(d['errors'] for d in ds)} |")

def scrape(path):
    values = {}
    for line in open(path):
        name, value = line.rsplit(" ", 1)
        phase = name.split('phase="')[1].split('"')[0]
        kind = "sum" if name.startswith("gatehouse_phase_seconds_sum") else "count"
        values[(phase, kind)] = float(value)
    return values
phase_names = ["identify", "route", "decide", "audit_record", "sign", "audit_durable"]
print("\ngatehouse's time per request in each phase, in the wrk runs (µs; median over runs; "
      "audit_durable is time waited, not CPU)\n")
print("| path | " + " | ".join(phase_names) + " |")
print("|---|" + "---|" * len(phase_names))
for l in order:
    if not l.startswith("gatehouse"): continue
    per_phase = {p: [] for p in phase_names}
    for r in runs[l]:
        before = scrape(os.path.join(work, f"phases-{l}-{r['run']}-before"))
        after = scrape(os.path.join(work, f"phases-{l}-{r['run']}-after"))
        for p in phase_names:
            n = after.get((p, "count"), 0) - before.get((p, "count"), 0)
            if n > 0:
                per_phase[p].append((after[(p, "sum")] - before.get((p, "sum"), 0)) / n * 1e6)
    print(f"| {l} | " + " | ".join(f"{med(v):.1f}" if v else "–" for v in per_phase.values()) + " |")
PY
echo
echo "(gatehouse audited every request to PostgreSQL; records still spooled at the end: ${audited:-0})"
