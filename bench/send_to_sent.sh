#!/usr/bin/env bash
# Send to "sent" as staff see it: a running `serve` (HTTP and its worker, as in production),
# a digest for N confirmed readers (the "real" 15 KB digest of digest_throughput.sh) sent with
# the staff API, into Postfix's smtp-sink. From the times the service itself records, prints
# how long the API took to queue it, from the send to the first and the last acceptance by the
# relay, and from the last acceptance to the digest's status `sent`; the overhead (queuing,
# waking the worker, the last batch's bookkeeping) is everything but first-to-last.
source "$(dirname "$0")/common.sh"
N="${N:-100000}"
BACKENDS="${BACKENDS:-sqlite postgres}"
DIGEST="${DIGEST:-real}"
install_tools
build
start_smtp_sink
source <(sed -n '/^summary() {/,/^}/p;/^prepare_digest() {/,/^}/p' "$ROOT/bench/digest_throughput.sh")

# Seconds since the epoch of a timestamp expression of the database (timestamps are UTC).
epoch() {
  case "$1" in
    sqlite://*) sql "$1" "SELECT printf('%.3f', (julianday($2) - 2440587.5) * 86400.0) FROM $3" ;;
    *) sql "$1" "SELECT extract(epoch FROM $2) FROM $3" ;;
  esac
}

for backend in $BACKENDS; do
  url=$(fresh_db "$backend" "send_to_sent")
  port=$(free_port)
  export NEWSLETTER__DATABASE__URL="$url" NEWSLETTER__SERVER__PORT="$port" \
    NEWSLETTER__SERVER__BASE_URL="http://127.0.0.1:$port" NEWSLETTER__DELIVERY__BATCH_SIZE=500 \
    NEWSLETTER__MAIL__FROM="Clinic research <news@clinic.example>" RUST_LOG=warn
  prepare_digest "$DIGEST"
  seed_confirmed "$url" "$N"
  token=$("$BIN" token create bench 2>/dev/null)
  "$BIN" serve >"$WORK/serve-$backend.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port"
  sleep 1
  asked=$(now)
  curl -fs -X POST -H "Authorization: Bearer $token" "http://127.0.0.1:$port/admin/api/digests/1/send" >/dev/null
  answered=$(now)
  until [ "$(curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/admin/api/digests/1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = sent ]; do
    sleep 0.5
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  started=$(epoch "$url" started_at "digests WHERE id = 1")
  finished=$(epoch "$url" finished_at "digests WHERE id = 1")
  first=$(epoch "$url" "min(sent_at)" "deliveries WHERE digest_id = 1")
  last=$(epoch "$url" "max(sent_at)" "deliveries WHERE digest_id = 1")
  python3 - "$asked" "$answered" "$started" "$first" "$last" "$finished" "$backend" "$N" <<'PY'
import sys
asked, answered, started, first, last, finished = map(float, sys.argv[1:7])
backend, n = sys.argv[7], sys.argv[8]
print(f"send to sent[{backend}, {n}]: API answered in {answered - asked:.3f} s; "
      f"send to first acceptance {first - asked:.3f} s, first to last {last - first:.3f} s, "
      f"last acceptance to status sent {finished - last:.3f} s; "
      f"send to sent {finished - asked:.3f} s, of which overhead {finished - asked - (last - first):.3f} s")
PY
done
