#!/usr/bin/env bash
# Digest throughput: N confirmed subscribers (seeded in bulk SQL), one digest, delivered over
# SMTP into Postfix's smtp-sink. Prints messages/s from the worker's start to the last
# acceptance, the ceiling smtp-source reaches into the same sink with the same message size and
# concurrency, their ratio, and the worker's peak RSS.
#
# DIGESTS picks the digests: "small" (two articles, about 4 KB a message), "real" (eight
# articles with their summaries and a longer introduction, about 13 KB, a real "Latest research")
# and "large" (twelve articles, long summaries, an introduction with images as links, about
# 50 KB).
source "$(dirname "$0")/common.sh"
SIZES="${SIZES:-10000 100000}"
DIGESTS="${DIGESTS:-small}"
BACKENDS="${BACKENDS:-sqlite postgres}"
CONCURRENCY="${CONCURRENCY:-8}"
install_tools
build

start_smtp_sink

settings() {
  export NEWSLETTER__DATABASE__URL="$1" NEWSLETTER__DELIVERY__CONCURRENCY="$CONCURRENCY" \
    NEWSLETTER__DELIVERY__BATCH_SIZE=500 NEWSLETTER__SERVER__BASE_URL=https://news.clinic.example \
    NEWSLETTER__MAIL__FROM="Clinic research <news@clinic.example>" RUST_LOG=warn
}

for kind in $DIGESTS; do
for backend in $BACKENDS; do
  for n in $SIZES; do
    url=$(fresh_db "$backend" "digest_${kind}_$n")
    settings "$url"
    prepare_digest "$kind"
    seed_confirmed "$url" "$n"
    # The size of one real message, for smtp-source.
    outbox="$WORK/outbox-$kind-$backend-$n"
    NEWSLETTER__MAIL__TRANSPORT=outbox NEWSLETTER__MAIL__OUTBOX__DIR="$outbox" \
      "$BIN" digest test 1 --email reader1@example.org >/dev/null
    size=$(stat -c %s "$outbox"/*.eml | head -n1)
    "$BIN" digest send 1 >/dev/null

    start=$(now)
    "$BIN" worker >"$WORK/worker-$backend-$n.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    # Polled once a second (a psql process every 50 ms took 15 % of the CPU); the end is the
    # last acceptance as the worker recorded it.
    until [ "$(sql "$url" "SELECT status FROM digests WHERE id = 1")" = sent ]; do sleep 1; done
    end=$(last_sent_at "$url")
    rss=$(peak_rss_mb "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    seconds=$(elapsed "$start" "$end")
    sent=$(sql "$url" "SELECT count(*) FROM deliveries WHERE digest_id = 1 AND status = 'sent'")
    rate=$(python3 -c "print(f'{$sent / $seconds:.0f}')")

    source_start=$(now)
    smtp-source -s "$CONCURRENCY" -m "$n" -l "$size" -f news@clinic.example -t reader@example.org \
      "127.0.0.1:$sink_port"
    source_end=$(now)
    ceiling=$(python3 -c "print(f'{$n / ($source_end - $source_start):.0f}')")
    ratio=$(python3 -c "print(f'{$rate / $ceiling:.2f}')")
    echo "digest[$kind, $backend, $n]: $sent sent in ${seconds}s = $rate msg/s; smtp-source ceiling $ceiling msg/s (${size} B, $CONCURRENCY connections); ratio $ratio; worker peak RSS ${rss} MB"
  done
done
done
