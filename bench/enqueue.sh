#!/usr/bin/env bash
# Enqueue: time to queue one digest for 1,000,000 confirmed subscribers (one INSERT ... SELECT),
# on each backend. The time is that of `newsletter digest send`, process start included.
source "$(dirname "$0")/common.sh"
N="${N:-1000000}"
install_tools
build

for backend in sqlite postgres; do
  url=$(fresh_db "$backend" enqueue)
  export NEWSLETTER__DATABASE__URL="$url" RUST_LOG=warn
  "$BIN" migrate >/dev/null
  "$BIN" articles add --title "Prolotherapy" --url https://clinic.example/p --published-at 2026-11-23 >/dev/null
  "$BIN" digest create --subject "Latest research" >/dev/null
  seed_start=$(now)
  seed_confirmed "$url" "$N"
  seed_end=$(now)
  start=$(now)
  "$BIN" digest send 1 >/dev/null
  end=$(now)
  queued=$(sql "$url" "SELECT count(*) FROM deliveries WHERE digest_id = 1")
  echo "enqueue[$backend]: $queued deliveries queued in $(elapsed "$start" "$end") s (seeding $N subscribers took $(elapsed "$seed_start" "$seed_end") s)"
done
