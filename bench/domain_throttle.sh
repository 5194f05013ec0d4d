#!/usr/bin/env bash
# Per-domain throttling: does one domain that asks us to slow down slow the others?
#
# One digest (the "real" one, about 13 KB a message) to N confirmed readers: 30 % at
# slow.example, the rest spread over six other domains, interleaved in the queue. It goes over
# SMTP into bench/throttle_sink.rs with the default settings (8 connections). Two runs,
# alternating ROUNDS times:
# - "plain": the sink accepts everything;
# - "421": the sink answers 421 (and closes the connection) to every other recipient at
#   slow.example, as a domain that rate-limits us does.
# Each prints the rate to the other domains (their mail, from the worker's start to the last of
# it accepted), what slow.example got meanwhile (tries, accepted), and the 421 run's rate to the
# others as a share of the plain run's before it. The worker is stopped once the others have
# everything: at slow.example's pace the rest takes hours.
source "$(dirname "$0")/common.sh"
N="${N:-100000}"
BACKENDS="${BACKENDS:-postgres sqlite}"
ROUNDS="${ROUNDS:-2}"
install_tools
build
(cd "$ROOT" && cargo build --release --quiet --example throttle_sink)
SINK="$ROOT/target/release/examples/throttle_sink"

# N readers, every tenth of them 0-2 at slow.example, the others at d0.example .. d5.example.
seed_domains() {
  local url=$1 n=$2
  local email="'reader' || i || '@' || CASE WHEN i % 10 < 3 THEN 'slow.example' ELSE 'd' || (i % 6) || '.example' END"
  case "$url" in
    sqlite://*) sql "$url" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $n)
      INSERT INTO subscribers (email, email_key, name, status, created_at, updated_at, confirmed_at)
      SELECT $email, $email, 'Reader ' || i, 'confirmed', datetime('now'), datetime('now'), datetime('now') FROM n;" ;;
    *) sql "$url" "INSERT INTO subscribers (email, email_key, name, status, created_at, updated_at, confirmed_at)
      SELECT $email, $email, 'Reader ' || i, 'confirmed', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
      FROM generate_series(1, $n) AS i;" ;;
  esac
}

epoch() {
  case "$1" in
    sqlite://*) echo "(julianday($2) - 2440587.5) * 86400.0" ;;
    *) echo "extract(epoch FROM $2)" ;;
  esac
}

# Of the digest's mail to the other domains (others) or to slow.example (slow): a figure.
of_domain() {
  local url=$1 which=$2 what=$3 match="LIKE"
  [ "$which" = others ] && match="NOT LIKE"
  sql "$url" "SELECT $what FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
    WHERE d.digest_id = 1 AND s.email $match '%@slow.example'"
}

declare -A last_plain
for round in $(seq 1 "$ROUNDS"); do
for backend in $BACKENDS; do
  for mode in plain 421; do
    url=$(fresh_db "$backend" "throttle_${mode}_$round")
    export NEWSLETTER__DATABASE__URL="$url" NEWSLETTER__SERVER__BASE_URL=https://news.clinic.example \
      NEWSLETTER__MAIL__FROM="Clinic research <news@clinic.example>" RUST_LOG=warn
    prepare_digest real
    seed_domains "$url" "$N"
    "$BIN" digest send 1 >/dev/null

    port=$(free_port)
    slow=-; [ "$mode" = 421 ] && slow=slow.example
    "$SINK" "127.0.0.1:$port" "$slow" &
    sink=$!
    PIDS+=("$sink")
    sleep 0.3
    export NEWSLETTER__MAIL__TRANSPORT=smtp NEWSLETTER__MAIL__SMTP__HOST=127.0.0.1 \
      NEWSLETTER__MAIL__SMTP__PORT="$port" NEWSLETTER__MAIL__SMTP__TLS=none

    start=$(now)
    "$BIN" worker >"$WORK/worker-$backend-$mode.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    until [ "$(of_domain "$url" others "count(*) FILTER (WHERE d.status <> 'sent')")" = 0 ]; do
      sleep 1
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    kill "$sink"; wait "$sink" 2>/dev/null || true
    end=$(of_domain "$url" others "$(epoch "$url" "max(d.sent_at)")")
    others=$(of_domain "$url" others "count(*)")
    slow_figures=$(of_domain "$url" slow "sum(d.attempts) || ' tries, ' || count(*) FILTER (WHERE d.status = 'sent') || ' accepted of ' || count(*)")
    seconds=$(elapsed "$start" "$end")
    rate=$(python3 -c "print(f'{$others / $seconds:.0f}')")
    share=""
    if [ "$mode" = plain ]; then
      last_plain[$backend]=$rate
    else
      share="; $(python3 -c "print(f'{$rate / ${last_plain[$backend]}:.2f}')") of the plain run's"
    fi
    echo "throttle[$backend, $mode, round $round]: $others to the other domains in ${seconds}s = $rate msg/s$share; slow.example meanwhile: $slow_figures"
  done
done
done
