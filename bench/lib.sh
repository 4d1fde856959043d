# Shared by the bench scripts (sourced, with WORK, GH and BIN set): a free port, a bench
# gatehouse's configuration, and starting and stopping it.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Writes $WORK/gatehouse.toml: gatehouse on port $GH (its metrics on $GHM, when set) in
# development mode (dev tokens), no rate limit,
# and its private PostgreSQL and audit spool in $WORK, the audit's durability from
# AUDIT_DURABILITY (default sync); then the sections given on stdin.
gatehouse_config() {
  {
    cat <<CONF
[server]
listen = "127.0.0.1:$GH"
${GHM:+metrics_listen = \"127.0.0.1:$GHM\"}
threads = 2
grace_period_seconds = 0
[policy]
bundle = "policies"
reload_interval_seconds = 0
[identity]
issuer = "https://id.bench"
audience = "gatehouse"
development = true
dev_secret_file = "$WORK/dev-hs256.secret"
[limits]
default_requests_per_second = 100000000
[database]
data_dir = "$WORK/postgres"
[audit]
spool = "$WORK/audit.spool"
durability = "${AUDIT_DURABILITY:-sync}"
CONF
    cat
  } > "$WORK/gatehouse.toml"
}

# Starts gatehouse with $WORK/gatehouse.toml (its pid in GH_PID) and waits until ready.
start_gatehouse() {
  RUST_LOG=warn "$BIN/gatehouse" --config "$WORK/gatehouse.toml" >> "$WORK/gatehouse.log" 2>&1 &
  GH_PID=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$GH/readyz" >/dev/null && return; sleep 0.2; done
  echo "error: gatehouse did not start" >&2; cat "$WORK/gatehouse.log" >&2; exit 1
}

stop_gatehouse() {
  if [ -n "${GH_PID:-}" ]; then kill -TERM "$GH_PID" 2>/dev/null && wait "$GH_PID" 2>/dev/null || true; fi
  GH_PID=
}
