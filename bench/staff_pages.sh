#!/usr/bin/env bash
# Staff pages at the size of a large list: 1,000,000 subscribers (names and statuses spread over
# three years, with their consent ledger) and about 5,000,000 deliveries (six sent digests to the
# 800,000 confirmed, plus the confirmation mails). Times the dashboard, the subscriber search and
# the other pages as one signed-in person views them, on each backend (release build, default
# settings). N and DIGESTS change the size; ROUNDS the views per page.
source "$(dirname "$0")/common.sh"
N="${N:-1000000}"
DIGESTS="${DIGESTS:-6}"
ROUNDS="${ROUNDS:-200}"
BACKENDS="${BACKENDS:-sqlite postgres}"
install_tools
build

for backend in $BACKENDS; do
  url=$(fresh_db "$backend" staff)
  export NEWSLETTER__DATABASE__URL="$url" RUST_LOG=warn
  "$BIN" migrate >/dev/null
  start=$(now)
  python3 "$ROOT/bench/staff_pages.py" fill "$url" "$N" "$DIGESTS"
  filled=$(now)
  echo "staff pages[$backend]: $(sql "$url" "SELECT count(*) FROM subscribers") subscribers, $(sql "$url" "SELECT count(*) FROM deliveries") deliveries (filled in $(elapsed "$start" "$filled") s)"
  echo "a long passphrase for the bench" | "$BIN" staff add bench@clinic.example --password-stdin >/dev/null
  port=$(free_port)
  NEWSLETTER__SERVER__PORT=$port NEWSLETTER__SERVER__BASE_URL="http://127.0.0.1:$port" \
    NEWSLETTER__MAIL__OUTBOX__DIR="$WORK/outbox" "$BIN" serve &
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port"
  python3 "$ROOT/bench/staff_pages.py" measure "http://127.0.0.1:$port" bench@clinic.example "a long passphrase for the bench" "$ROUNDS" "$N"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [ "$backend" = postgres ] && psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS bench_staff WITH (FORCE)" >/dev/null
done
