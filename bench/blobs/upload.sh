#!/usr/bin/env bash
# A large upload and download through the gateway, measuring throughput and the gatehouse
# process's memory (the data plane asks that 500 MB work without holding the file in
# memory). Starts the release `gatehouse` with its built-in configuration from the
# repository root (embedded PostgreSQL, local S3) unless one already answers on :8080.
#
#   bench/blobs/upload.sh [MEGABYTES]      (default 500)
#
# Prints the upload and download rates, the peak resident memory of gatehouse before and
# after, and checks that the bytes came back unchanged. Exit code 0 when all held.
set -euo pipefail
cd "$(dirname "$0")/../.."
MB="${1:-500}"
BIN=target/dist/gatehouse
cargo build -q --profile dist -p gatehouse-gateway --bin gatehouse

started=""
if ! curl -sf localhost:8080/healthz >/dev/null; then
  "$BIN" > /tmp/gatehouse-upload-bench.log 2>&1 &
  started=$!
  trap '[ -n "$started" ] && kill "$started" 2>/dev/null; rm -f "$FILE" "$FILE.back"' EXIT
  for _ in $(seq 1 300); do curl -sf localhost:8080/healthz >/dev/null && break; sleep 0.2; done
  for _ in $(seq 1 100); do curl -s localhost:8083 >/dev/null 2>&1 && break; sleep 0.2; done
fi
PID="${started:-$(pgrep -f "$BIN" | head -1)}"
hwm() { awk '/VmHWM/ {print $2}' "/proc/$PID/status"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }

FILE=$(mktemp /tmp/upload-bench.XXXXXX)
head -c "${MB}M" /dev/urandom > "$FILE"
ED=$("$BIN" dev-token --user acme-ed --tenant acme)
VERA=$("$BIN" dev-token --user acme-vera --tenant acme)
before_hwm=$(hwm); before_rss=$(rss)

up=$(curl -s -o /tmp/upload-bench.answer -w '%{http_code} %{time_total}' -X PUT \
  -H "Authorization: Bearer $ED" -H "Content-Type: text/plain" -H "Expect:" \
  -T "$FILE" localhost:8080/documents/acme-plan/content)
read -r up_status up_seconds <<<"$up"
[ "$up_status" = 201 ] || { echo "upload answered $up_status: $(cat /tmp/upload-bench.answer)"; exit 1; }
after_up_hwm=$(hwm)

down=$(curl -s -o "$FILE.back" -w '%{http_code} %{time_total}' \
  -H "Authorization: Bearer $VERA" localhost:8080/documents/acme-plan/content)
read -r down_status down_seconds <<<"$down"
[ "$down_status" = 200 ] || { echo "download answered $down_status"; exit 1; }
after_down_hwm=$(hwm)

same=no
cmp -s "$FILE" "$FILE.back" && same=yes
awk -v mb="$MB" -v up="$up_seconds" -v down="$down_seconds" -v b="$before_hwm" -v br="$before_rss" \
    -v u="$after_up_hwm" -v d="$after_down_hwm" -v same="$same" 'BEGIN {
  printf "%d MB through the gateway (sealed into S3, opened on the way back)\n", mb
  printf "upload:   %.1f s, %.0f MB/s\n", up, mb / up
  printf "download: %.1f s, %.0f MB/s\n", down, mb / down
  printf "gatehouse resident memory: %.0f MB before (peak so far %.0f MB); peak %.0f MB after the upload, %.0f MB after the download\n", br/1024, b/1024, u/1024, d/1024
  printf "the same bytes back: %s\n", same
}'
[ "$same" = yes ]
