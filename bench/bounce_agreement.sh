#!/usr/bin/env bash
# How often our bounce classes agree with Sisimai's on the 629 real messages of
# ../shared/data/bounces, and which of our hard bounces it does not call hard.
# Installs Debian's libsisimai-perl (Sisimai 4.25), writes its verdicts to
# tests/fixtures/bounces/sisimai-4.25.tsv (the test reads them from there, so CI needs no Perl),
# then runs the comparison test, which prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS="${CORPUS:-../shared/data/bounces}"
if ! perl -MSisimai -e1 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends libsisimai-perl >/dev/null
fi
perl bench/sisimai_reasons.pl "$CORPUS"/*.eml > tests/fixtures/bounces/sisimai-4.25.tsv
echo "sisimai: $(wc -l < tests/fixtures/bounces/sisimai-4.25.tsv) verdicts on $(ls "$CORPUS"/*.eml | wc -l) messages"
cargo test --test api bounce_corpus -- --nocapture 2>&1 | grep -E "messages|→|hard here|^  [a-z]"
