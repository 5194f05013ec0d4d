#!/usr/bin/env python3
"""Fills a database to the size of a large list and times the staff pages over HTTP.

    staff_pages.py fill URL N_SUBSCRIBERS N_DIGESTS     (sqlite://PATH or postgres://...)
    staff_pages.py measure BASE EMAIL PASSWORD ROUNDS N_SUBSCRIBERS

`fill` writes subscribers with names and statuses spread over three years, their consent
ledger, and N_DIGESTS sent digests with one delivery per confirmed subscriber each (plus the
confirmation mails), in set-based SQL through the sqlite3 or psql command line. `measure` signs
in, views each page once (cold), then ROUNDS times one after another as one person would, and
prints p50 / p95 / max in milliseconds.
"""
import http.client
import statistics
import subprocess
import sys
import time
import urllib.parse

FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas",
         "Karin", "Lukas", "Mia", "Nils", "Olga", "Paul", "Rosa", "Sven", "Tilda", "Ulf"]
LAST = ["Berg", "Holm", "Lind", "Sand", "Nord", "Stone", "Meyer", "Weber", "Wolf", "Fischer",
        "Keller", "Vogel", "Brandt", "Roth", "Lang", "Frank", "Graf", "Kraus", "Huber", "Moser"]


def run_sql(url, script):
    if url.startswith("sqlite://"):
        cmd = ["sqlite3", "-cmd", ".timeout 60000", url[len("sqlite://"):]]
    else:
        cmd = ["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-o", "/dev/null"]
    subprocess.run(cmd, input=script, text=True, check=True)


def fill(url, n, digests):
    sqlite = url.startswith("sqlite://")
    names = "\n".join(
        f"INSERT INTO bench_first VALUES ({i}, '{f}');" for i, f in enumerate(FIRST)
    ) + "\n" + "\n".join(
        f"INSERT INTO bench_last VALUES ({i}, '{l}');" for i, l in enumerate(LAST)
    )
    if sqlite:
        numbers = f"WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n})"
        ago = "datetime('2026-12-01 12:00:00', '-' || (g.i % 1095) || ' days', '-' || (g.i % 86400) || ' seconds')"
        lower = "lower"
    else:
        numbers = f"WITH g(i) AS (SELECT generate_series(1, {n}))"
        ago = "(TIMESTAMP '2026-12-01 12:00:00' - (g.i % 1095) * INTERVAL '1 day' - (g.i % 86400) * INTERVAL '1 second')"
        lower = "lower"
    status = ("CASE WHEN g.i % 50 < 40 THEN 'confirmed' WHEN g.i % 50 < 44 THEN 'pending' "
              "WHEN g.i % 50 < 49 THEN 'unsubscribed' ELSE 'bounced' END")
    script = f"""
CREATE TEMP TABLE bench_first (k INTEGER, name TEXT);
CREATE TEMP TABLE bench_last (k INTEGER, name TEXT);
{names}
{numbers}
INSERT INTO subscribers (email, email_key, name, status, created_at, updated_at, confirmed_at, unsubscribed_at)
SELECT {lower}(f.name) || '.' || {lower}(l.name) || g.i || '@example.org',
       {lower}(f.name) || '.' || {lower}(l.name) || g.i || '@example.org',
       f.name || ' ' || l.name, {status}, {ago}, {ago},
       CASE WHEN {status} IN ('confirmed', 'unsubscribed', 'bounced') THEN {ago} END,
       CASE WHEN {status} = 'unsubscribed' THEN {ago} END
FROM g JOIN bench_first f ON f.k = g.i % 20 JOIN bench_last l ON l.k = (g.i / 20) % 20;
INSERT INTO subscriber_events (subscriber_id, kind, ip, user_agent, source, created_at)
SELECT id, 'subscribed', '192.0.2.1', 'Mozilla/5.0', 'form', created_at FROM subscribers;
INSERT INTO subscriber_events (subscriber_id, kind, ip, user_agent, source, created_at)
SELECT id, 'confirmed', '192.0.2.1', 'Mozilla/5.0', 'link', confirmed_at FROM subscribers WHERE confirmed_at IS NOT NULL;
INSERT INTO subscriber_events (subscriber_id, kind, ip, user_agent, source, created_at)
SELECT id, 'unsubscribed', NULL, NULL, 'link', unsubscribed_at FROM subscribers WHERE unsubscribed_at IS NOT NULL;
INSERT INTO deliveries (kind, priority, subscriber_id, status, attempts, next_attempt_at, created_at, sent_at)
SELECT 'confirmation', 0, id, 'sent', 1, created_at, created_at, created_at FROM subscribers;
"""
    for d in range(1, digests + 1):
        started = f"'2026-{(d % 11) + 1:02d}-15 09:00:00'"
        if not sqlite:
            started = "TIMESTAMP " + started
        script += f"""
INSERT INTO digests (id, subject, intro, status, recipients, created_at, started_at, finished_at, failure_streak)
VALUES ({d}, 'Latest research {d}', 'Two new studies.', 'sent', 0, {started}, {started}, {started}, 0);
INSERT INTO deliveries (kind, priority, subscriber_id, digest_id, status, attempts, next_attempt_at, created_at, sent_at, failure, last_error)
SELECT 'digest', 1, id, {d},
       CASE WHEN id % 400 = 0 THEN 'failed' WHEN id % 250 = 0 THEN 'skipped' ELSE 'sent' END, 1,
       {started}, {started}, CASE WHEN id % 400 = 0 OR id % 250 = 0 THEN NULL ELSE {started} END,
       CASE WHEN id % 400 = 0 THEN 'bounce' END,
       CASE WHEN id % 400 = 0 THEN '550 5.1.1 user unknown' END
FROM subscribers WHERE status = 'confirmed';
UPDATE digests SET recipients = (SELECT count(*) FROM deliveries WHERE digest_id = {d}) WHERE id = {d};
"""
    if not sqlite:
        script += "SELECT setval(pg_get_serial_sequence('digests', 'id'), (SELECT max(id) FROM digests));\nVACUUM ANALYZE;\n"
    run_sql(url, script)


class Session:
    def __init__(self, base):
        self.host = urllib.parse.urlparse(base)
        self.conn = http.client.HTTPConnection(self.host.hostname, self.host.port, timeout=60)
        self.cookie = ""

    def request(self, method, path, body=None):
        headers = {"Cookie": self.cookie, "Origin": f"http://{self.host.netloc}"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        start = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        return response, data, elapsed


def measure(base, email, password, rounds, n):
    s = Session(base)
    body = urllib.parse.urlencode({"email": email, "password": password, "next": "/admin"})
    response, _, _ = s.request("POST", "/admin/login", body)
    assert response.status == 303, response.status
    s.cookie = response.getheader("Set-Cookie").split(";")[0]
    terms = ["anna", "berg", "mia.k", "olga.", "sven.huber1", "Ben Stone", "karin.lind12",
             "tilda", "ulf.m", "hugo.weber77", "nils", "rosa.graf3", "felix.roth", "ida.b",
             "emma.vogel", "paul.lang1", "greta", "lukas.moser99", "clara.frank", "david.k"]
    pages = [
        ("dashboard", lambda i: "/admin"),
        ("subscriber search", lambda i: "/admin/subscribers?" + urllib.parse.urlencode({"q": terms[i % len(terms)]})),
        ("subscribers, first page", lambda i: "/admin/subscribers"),
        ("a person's page", lambda i: f"/admin/subscribers/{1 + (i * 7919) % n}"),
        ("digests", lambda i: "/admin/digests"),
        ("a sent digest's page", lambda i: "/admin/digests/1"),
    ]
    print(f"{'page':<26} {'cold':>8} {'p50':>8} {'p95':>8} {'max':>8}  (ms, {rounds} views)")
    for name, path in pages:
        response, data, cold = s.request("GET", path(0))
        assert response.status == 200, (name, response.status, data[:300])
        times = []
        for i in range(rounds):
            response, data, elapsed = s.request("GET", path(i))
            assert response.status == 200, (name, response.status)
            times.append(elapsed)
        times.sort()
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(f"{name:<26} {cold:8.1f} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f}")


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        fill(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        measure(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
