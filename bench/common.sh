# Shared by the benchmark scripts: installs, builds, starts and stops things, reads figures.
# Everything runs on loopback and is stopped on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# BIN=/path/to/another/build compares two builds back to back (nothing is built then).
BIN="${BIN:-$ROOT/target/release/newsletter}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}"
WORK="$(mktemp -d /tmp/newsletter-bench.XXXXXX)"
PIDS=()
# Digests are not sent without a postal address in their footer.
export NEWSLETTER__SITE__POSTAL_ADDRESS="${NEWSLETTER__SITE__POSTAL_ADDRESS:-1 Example Street, Springfield}"

cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

install_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v smtp-sink >/dev/null || missing+=(postfix)
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  command -v psql >/dev/null || missing+=(postgresql-client)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # smtp-sink and smtp-source live outside PATH on Debian.
  export PATH="$PATH:/usr/sbin:/usr/lib/postfix/sbin"
}

build() {
  [ "$BIN" = "$ROOT/target/release/newsletter" ] || return 0
  (cd "$ROOT" && cargo build --release --quiet)
}

# Starts Postfix's smtp-sink on a free loopback port (in sink_port) and points the service's
# mail at it, as production points it at a relay.
start_smtp_sink() {
  sink_port=$(free_port)
  smtp-sink -u nobody "127.0.0.1:$sink_port" 1024 &
  PIDS+=("$!")
  sleep 0.5
  export NEWSLETTER__MAIL__TRANSPORT=smtp NEWSLETTER__MAIL__SMTP__HOST=127.0.0.1 \
    NEWSLETTER__MAIL__SMTP__PORT="$sink_port" NEWSLETTER__MAIL__SMTP__TLS=none
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A fresh database URL for a backend (sqlite|postgres).
fresh_db() {
  local backend=$1 name=$2
  if [ "$backend" = sqlite ]; then
    echo "sqlite://$WORK/$name.db"
  else
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS bench_$name WITH (FORCE)" >/dev/null
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE bench_$name" >/dev/null
    echo "${PG_ADMIN_URL%/*}/bench_$name"
  fi
}

# Runs SQL against a database URL.
sql() {
  local url=$1 query=$2
  case "$url" in
    sqlite://*) sqlite3 -cmd ".timeout 10000" "${url#sqlite://}" "$query" ;;
    *) psql "$url" -Atqc "$query" ;;
  esac
}

# Adds N confirmed subscribers in one statement.
seed_confirmed() {
  local url=$1 n=$2
  case "$url" in
    sqlite://*) sql "$url" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $n)
      INSERT INTO subscribers (email, email_key, name, status, created_at, updated_at, confirmed_at)
      SELECT 'reader' || i || '@example.org', 'reader' || i || '@example.org', 'Reader ' || i, 'confirmed', datetime('now'), datetime('now'), datetime('now') FROM n;" ;;
    *) sql "$url" "INSERT INTO subscribers (email, email_key, name, status, created_at, updated_at, confirmed_at)
      SELECT 'reader' || i || '@example.org', 'reader' || i || '@example.org', 'Reader ' || i, 'confirmed', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
      FROM generate_series(1, $n) AS i;" ;;
  esac
}

# When the last delivery was recorded sent, in seconds since the epoch (timestamps are UTC).
last_sent_at() {
  case "$1" in
    sqlite://*) sql "$1" "SELECT printf('%.3f', (julianday(max(sent_at)) - 2440587.5) * 86400.0) FROM deliveries" ;;
    *) sql "$1" "SELECT extract(epoch FROM max(sent_at)) FROM deliveries" ;;
  esac
}

# Peak resident memory of a process, in MB (VmHWM).
peak_rss_mb() {
  awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

wait_http() {
  for _ in $(seq 1 100); do
    curl -fs "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "service at $1 did not come up" >&2
  return 1
}

# Time in seconds with milliseconds.
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

# A sentence of a study's summary, repeated to the length wanted.
summary() {
  python3 -c "import sys; s='Of 120 patients followed for twelve months after treatment, 91% were better or no worse, and the effect held at the two-year visit. '; print((s * 40)[:int(sys.argv[1])].strip())" "$1"
}

# Makes the digest of a kind, in the database NEWSLETTER__DATABASE__URL names: "small" (two
# articles, about 4 KB a message), "real" (eight articles with their summaries and a longer
# introduction, about 13 KB, a real "Latest research") or "large" (twelve articles, long
# summaries, an introduction with images as links, about 50 KB).
prepare_digest() {
  local kind=$1 articles summary_chars intro
  case "$kind" in
    small) articles=2; summary_chars=70; intro="Two new **studies** this month." ;;
    real) articles=8; summary_chars=330
      intro="$(summary 500)

Read on for eight new studies, from prolotherapy after failed back surgery to PRP for the sacroiliac joint." ;;
    large) articles=12; summary_chars=1500
      intro="$(summary 2500)

![The clinic's new treatment room](https://clinic.example/images/room.jpg)
![Before and after: twelve months](https://clinic.example/images/chart.png)" ;;
    *) echo "unknown digest kind $kind (small, real, large)" >&2; exit 2 ;;
  esac
  "$BIN" migrate >/dev/null
  for i in $(seq 1 "$articles"); do
    "$BIN" articles add --title "Study $i: prolotherapy after failed back surgery, a follow-up" \
      --url "https://clinic.example/research/study-$i" --published-at 2026-11-2$((i % 9)) \
      --summary "$(summary "$summary_chars")" >/dev/null
  done
  "$BIN" digest create --subject "Latest research" --intro "$intro" >/dev/null
}
