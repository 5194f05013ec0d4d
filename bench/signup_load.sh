#!/usr/bin/env bash
# Signup load: 32 connections POST unique addresses for a fixed time, on SQLite and PostgreSQL.
# Prints requests/s, p50/p99 latency, errors, peak RSS of the server, whether the subscribers
# stored equal the 2xx answers, and how many confirmations the service's own worker sent
# meanwhile. As in production, confirmations go over SMTP (into Postfix's smtp-sink): the
# outbox folder is for trying the service out, and ext4 creating tens of thousands of files in
# one folder was most of the server's CPU time when the benchmark used it.
source "$(dirname "$0")/common.sh"
DURATION="${DURATION:-20s}"
CONNECTIONS="${CONNECTIONS:-32}"
BACKENDS="${BACKENDS:-sqlite postgres}"
install_tools
build

start_smtp_sink

for backend in $BACKENDS; do
  url=$(fresh_db "$backend" signup)
  port=$(free_port)
  NEWSLETTER__DATABASE__URL="$url" NEWSLETTER__SERVER__PORT="$port" \
  NEWSLETTER__SERVER__BASE_URL="http://127.0.0.1:$port" \
  NEWSLETTER__SIGNUP__RATE_LIMIT_PER_MINUTE=100000000 RUST_LOG=warn \
    "$BIN" serve >"$WORK/serve-$backend.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port"
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$ROOT/bench/signup.lua" "http://127.0.0.1:$port")
  rss=$(peak_rss_mb "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  non2xx=$(awk '/Non-2xx/ { print $5 }' <<<"$out"); non2xx=${non2xx:-0}
  sockerr=$(awk '/Socket errors/ { print $0 }' <<<"$out"); sockerr=${sockerr:-none}
  accepted=$(awk '/ACCEPTED/ { print $2 }' <<<"$out")
  requested=$(awk '/^SENT/ { print $2 }' <<<"$out")
  stored=$(sql "$url" "SELECT count(*) FROM subscribers")
  confirmations=$(sql "$url" "SELECT count(*) FROM deliveries WHERE kind = 'confirmation' AND status = 'sent'")
  if [ "$accepted" -le "$stored" ] && [ "$stored" -le "$requested" ]; then check=consistent; else check=INCONSISTENT; fi
  echo "signup[$backend]: ${rps} req/s, p50 ${p50}, p99 ${p99}, non-2xx ${non2xx}, socket errors: ${sockerr}, peak RSS ${rss} MB at ${CONNECTIONS} connections; 2xx ${accepted} <= stored ${stored} <= sent ${requested}: ${check} (the difference is requests in flight when wrk stopped); ${confirmations} confirmations sent over SMTP meanwhile"
done
