#!/usr/bin/env bash
# The decision API over HTTP: `POST /gatehouse/v1/authorize` at a fixed rate of checks
# (bench/src/bin/loadgen.rs, open loop, timed from when each check was due), against a
# `gatehouse` with its entities in PostgreSQL (a private cluster, seeded with the demo
# tenants) and every check audited there. Checks rotate over users, agents (two decisions
# each: the agent and its user), documents and actions; half ask about oneself, half are a
# service (an admin) asking about others (one more decision: may it ask?). Then AuthZEN's
# `/access/v1/evaluation` at the same rate, and `/gatehouse/v1/authorize/batch` with 100
# checks per call at RATE/100 calls per second.
#
#   bench/pdp/run.sh [seconds per run, default 15] [checks per second, default 10000] [connections, default 32]
#
# Needs PostgreSQL server binaries. Builds what it runs (`--profile dist`: release with thin LTO).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-15}
RATE=${2:-10000}
CONNECTIONS=${3:-32}
cargo build --profile dist -q -p gatehouse-gateway -p gatehouse-bench --bin gatehouse --bin loadgen
BIN=target/dist

WORK=$(mktemp -d)
chmod 755 "$WORK"
source bench/lib.sh
cleanup() {
  stop_gatehouse
  rm -rf "$WORK"
}
trap cleanup EXIT
GH=$(free_port)
gatehouse_config <<CONF
[entities]
source = "postgres"
file = "policy-tests/fixtures/three-tenants.json"
CONF
start_gatehouse

token() { "$BIN/gatehouse" --config "$WORK/gatehouse.toml" dev-token --user "$1" --tenant acme ${2:+--agent "$2"}; }
ADMIN=$(token acme-ada)
declare -A TOKENS
for user in acme-vera acme-ed acme-ada acme-olive; do TOKENS[$user]=$(token "$user"); done
TOKENS[acme-bot-reader]=$(token acme-ed acme-bot-reader)
SUBJECTS=("User acme-vera" "User acme-ed" "User acme-ada" "User acme-olive" "Agent acme-bot-reader")
DOCS=(acme-plan acme-public acme-contract acme-roadmap acme-olive-notes)
ACTIONS=(document:read document:write document:delete)
check() { # type id document action -> JSON
  printf '{"subject":{"type":"%s","id":"%s"},"action":{"name":"%s"},"resource":{"type":"Document","id":"%s"}}' "$1" "$2" "$4" "$3"
}
for n in $(seq 0 59); do
  set -- ${SUBJECTS[$((n % 5))]}
  body=$(check "$1" "$2" "${DOCS[$(((n / 5 + n) % 5))]}" "${ACTIONS[$((n % 3))]}")
  if [ $((n % 2)) -eq 0 ]; then auth="Bearer ${TOKENS[$2]}"; else auth="Bearer $ADMIN"; fi
  printf '%s\t%s\n' "$auth" "$body"
done > "$WORK/checks.tsv"
while IFS=$'\t' read -r auth body; do printf 'POST\t/gatehouse/v1/authorize\t%s\t%s\n' "$auth" "$body"; done < "$WORK/checks.tsv" > "$WORK/authorize.txt"
while IFS=$'\t' read -r auth body; do printf 'POST\t/access/v1/evaluation\t%s\t%s\n' "$auth" "$body"; done < "$WORK/checks.tsv" > "$WORK/evaluation.txt"
python3 - "$WORK/checks.tsv" "$ADMIN" > "$WORK/batch.txt" <<'PY'
import json, sys
checks = [json.loads(line.split("\t", 1)[1]) for line in open(sys.argv[1])]
body = {"evaluations": [checks[i % len(checks)] for i in range(100)]}
print(f"POST\t/gatehouse/v1/authorize/batch\tBearer {sys.argv[2]}\t{json.dumps(body, separators=(',', ':'))}")
PY

# Every line must be answered 200 before anything is timed.
for file in authorize evaluation batch; do
  while IFS=$'\t' read -r _ path auth body; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: $auth" -H 'content-type: application/json' --data "$body" "http://127.0.0.1:$GH$path")
    [ "$code" = 200 ] || { echo "error: $path answered $code for $body" >&2; exit 1; }
  done < "$WORK/$file.txt"
done

run() { # label file rate checks-per-call
  local out
  out=$("$BIN/loadgen" --url "http://127.0.0.1:$GH" --requests "$WORK/$2.txt" --rate "$3" \
    --seconds "$SECONDS_PER_RUN" --connections "$CONNECTIONS" --json)
  echo "$1|$4|$out"
}
echo "on $(nproc) cores (gatehouse, its PostgreSQL and the load generator share them); ${SECONDS_PER_RUN}s per run, $CONNECTIONS connections"
rows=()
rows+=("$(run authorize authorize "$RATE" 1)")
sleep 3
rows+=("$(run authzen-evaluation evaluation "$RATE" 1)")
sleep 3
rows+=("$(run authorize-batch-100 batch $((RATE / 100)) 100)")
spooled=$( (tr -d '\0' < "$WORK/audit.spool" | grep -c .) 2>/dev/null || true) # the records, not the zeros ahead of them

python3 - "${rows[@]}" <<'PY'
import json, sys
print("\n| endpoint | checks/call | calls/s | checks/s | p50 ms | p90 ms | p99 ms | p99.9 ms | non-2xx | errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
for row in sys.argv[1:]:
    label, per_call, out = row.split("|", 2)
    r = json.loads(out)
    l = r["latency_ms"]
    calls = r["responses"] / r["seconds"]
    print(f"| {label} | {per_call} | {calls:,.0f} | {calls * int(per_call):,.0f} | {l['p50']:.3f} | {l['p90']:.3f} | "
          f"{l['p99']:.3f} | {l['p99.9']:.3f} | {r['non_2xx']} | {r['errors']} |")
PY
echo
echo "(every check audited to PostgreSQL; records still spooled at the end: ${spooled:-0})"
