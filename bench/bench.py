#!/usr/bin/env python3
"""Benchmarks of the ticketing service: see bench/README.md.

Each subcommand builds nothing: run `cargo build --release -p api -p worker --bins` and
`cargo build --release -p worker --example lettre_pool` first (bench/run does). Uses the
machine's PostgreSQL (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432), wrk,
pgbench and postfix's smtp-sink; only the Python standard library.
"""

import argparse
import base64
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
# The `api` and `worker` measured: the release build, or another build's copies in BENCH_BIN_DIR
# (to compare two commits in one sitting).
BIN = os.environ.get("BENCH_BIN_DIR") or RELEASE
PG = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
API_ADDR = "127.0.0.1:18080"
SINK_ADDR = "127.0.0.1:12525"
BENCH = os.path.dirname(os.path.abspath(__file__))


def log(*args):
    print(*args, flush=True)


def psql(db, sql, *extra):
    out = subprocess.run(
        ["psql", f"{PG}/{db}", "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql, *extra],
        check=True, capture_output=True, text=True)
    return out.stdout.strip()


def fresh_pg(name):
    psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql("postgres", f"CREATE DATABASE {name}")
    # Server and database share the machine, as in a one-host deployment: no TLS to the
    # database (libpq's and sqlx's default `prefer` would encrypt loopback traffic; measured
    # 1,053-1,195 -> 1,351 mails/s on the worker drain). pgbench gets the same URL.
    return f"{PG}/{name}?sslmode=disable"


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def base_env(db_url, **more):
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": db_url,
        "LISTEN_ADDR": API_ADDR,
        "METRICS_LISTEN_ADDR": "127.0.0.1:0",
        "RUST_LOG": "warn",
        "WIDGET_RATE_LIMIT_PER_MINUTE": "0",
        "CLIENT_RATE_LIMIT_PER_MINUTE": "0",
        "SMTP_URL": f"smtp://{SINK_ADDR}",
        "POLL_INTERVAL_MS": "100",
    })
    env.update({k: str(v) for k, v in more.items()})
    return env


def wait_ready(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not become ready")


LOGS = os.path.join(tempfile.gettempdir(), "ticketing-bench-logs")


def spawn(binary, env):
    """Starts a release binary with its output in LOGS/<binary>.log."""
    os.makedirs(LOGS, exist_ok=True)
    out = open(os.path.join(LOGS, f"{binary}.log"), "ab")
    return subprocess.Popen([os.path.join(BIN, binary)], env=env, stdout=out, stderr=out)


def start_api(env):
    proc = spawn("api", env)
    wait_ready(f"http://{API_ADDR}/readyz")
    return proc


def start_worker(env, listen="127.0.0.1:19091"):
    env = dict(env, WORKER_LISTEN_ADDR=listen)
    proc = spawn("worker", env)
    wait_ready(f"http://{listen}/readyz")
    return proc


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_sink():
    # smtp-sink answers every command at once and keeps nothing: the fastest SMTP peer.
    host, port = SINK_ADDR.split(":")
    return subprocess.Popen(["smtp-sink", "-u", "nobody", f"{host}:{port}", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def create_account(env):
    out = subprocess.run([os.path.join(BIN, "api"), "create-account", "Bench"], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def gql(key, query, variables=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://{API_ADDR}/graphql", data=body, headers={
        "content-type": "application/json", "authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.loads(r.read())
    if answer.get("errors"):
        raise SystemExit(f"GraphQL error: {answer['errors']}")
    return answer["data"]


def seed(admin, recipients=4):
    """A flow with a ticket step and a `*` rule to `recipients` agents; the step id."""
    flow = gql(admin, 'mutation { createFlow(input: {name: "Destek"}) { id } }')["createFlow"]["id"]
    step = gql(admin, """mutation($f: ID!) { addStep(flowId: $f, step: { ticket: {
        topic: "offline_message", confirmationMessage: "Talep alındı" } }) { id } }""",
               {"f": flow})["addStep"]["id"]
    emails = [f"agent{i}@example.com" for i in range(recipients)]
    gql(admin, 'mutation($e: [String!]!) { createRoutingRule(input: {tag: "*", emails: $e}) { id } }',
        {"e": emails})
    return step


OPEN = "mutation($i: OpenTicketInput!) { openTicket(input: $i) { ticket { id number } } }"


def open_tickets(widget, step, count, threads=16):
    def one(i):
        gql(widget, OPEN, {"i": {"stepId": step, "message": f"bench ticket {i}"}})
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))


def pgbench(url, script, seconds):
    """Transactions/s of `script` (pgbench syntax) with 16 clients, as wrk's 16 connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    run = subprocess.run(["pgbench", "-n", "-c16", "-j2", f"-T{seconds}", "-M", "prepared",
                          "-f", f.name, url], capture_output=True, text=True)
    os.unlink(f.name)
    if run.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{run.stdout}\n{run.stderr}")
    return float(re.search(r"tps = ([\d.]+)", run.stdout).group(1))


def wrk(script, seconds, connections=16, env=None):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
         f"http://{API_ADDR}/graphql"],
        check=True, capture_output=True, text=True, env=env).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        factor = {"us": 0.001, "ms": 1, "s": 1000}[unit]
        lat[pct] = float(value) * factor
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat, int(errors.group(1)) if errors else 0, out


# ---------------------------------------------------------------------------------------------

def open_ticket_bench(args):
    """1 + 5: openTicket through the API (no worker) vs. the same rows in raw SQL."""
    db = "ticketing_bench_open"
    url = fresh_pg(db)
    env = base_env(url, EMBEDDED_WORKER="false", DATABASE_MAX_CONNECTIONS=args.pool)
    api = start_api(env)
    try:
        keys = create_account(env)
        step = seed(keys["adminKey"])
        time.sleep(1)
        idle = rss_mb(api.pid)
        wrk_env = dict(os.environ, BENCH_KEY=keys["widgetKey"], BENCH_STEP=step)
        script = os.path.join(BENCH, "open_ticket.lua")
        *_, warm_out = wrk(script, 3, env=wrk_env)  # warm-up
        rps, lat, bad, full_out = wrk(script, args.seconds, env=wrk_env)
        loaded = rss_mb(api.pid)
        # Half of that rate: each of the 16 connections waits between requests.
        delay_ms = 16 * 1000 / (rps / 2)
        half_env = dict(wrk_env, BENCH_DELAY_MS=f"{delay_ms:.2f}")
        half_rps, half_lat, half_bad, half_out = wrk(script, args.seconds, env=half_env)
        account = keys["accountId"]
        # A GraphQL error still answers 200: every request must have written its ticket.
        requests = sum(int(re.search(r"(\d+) requests in", o).group(1))
                       for o in (warm_out, full_out, half_out))
        written = int(psql(db, "SELECT count(*) FROM tickets"))
    finally:
        stop(api)
    # The same rows as openTicket writes, as raw SQL, two ways: the reference, one
    # transaction of three statements (the job, the account's ticket number, the ticket), and
    # the one statement the API itself runs on PostgreSQL (tickets::insert_ticket_postgres).
    job = ("INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, "
           "priority, metadata, idempotency_key) {} md5(random()::text), 'ticket-mail', "
           "'\\x7b7d', 'Pending', 0, 10, now(), 0, ''::hstore, 'pgbench:' || gen_random_uuid()")
    columns = ("id, account_id, number, flow_id, step_id, flow_name, topic_key, topic, status, "
               "message, forward_emails, created_at")
    values = (f"gen_random_uuid(), '{account}', {{}}, NULL, NULL, 'Destek', 'offline_message', "
              "'offline_message', 'OPEN', 'bench ticket', '[]', now()")
    transaction = (
        "BEGIN;\n"
        + job.format("VALUES (") + ");\n"
        + f"UPDATE accounts SET ticket_seq = ticket_seq + 1 WHERE id = '{account}' "
          "RETURNING ticket_seq AS seq \\gset\n"
        + f"INSERT INTO tickets ({columns}) VALUES ({values.format(':seq')});\n"
        + "COMMIT;\n")
    # The API's statement also gives the job its account's round of the fair pickup
    # (domain::infra::queue::next_round): the queue's head first, then the round.
    fetchable = ("job_type = 'ticket-mail' AND (status = 'Pending' OR "
                 "(status = 'Failed' AND attempts < max_attempts))")
    head = (f"SELECT COALESCE((SELECT -priority FROM apalis.jobs WHERE {fetchable} "
            "ORDER BY priority DESC LIMIT 1), (SELECT -priority FROM apalis.jobs WHERE "
            "status = 'Done' AND done_at IS NOT NULL AND job_type = 'ticket-mail' "
            "ORDER BY done_at DESC LIMIT 1), 0) AS r")
    rounds = ("queue_round = CASE WHEN queue_round < head.r THEN head.r "
              "WHEN queue_round_jobs >= 50 THEN queue_round + 1 ELSE queue_round END, "
              "queue_round_jobs = CASE WHEN queue_round < head.r OR queue_round_jobs >= 50 "
              "THEN 1 ELSE queue_round_jobs + 1 END")
    statement = (
        f"WITH head AS MATERIALIZED ({head}), "
        f"number AS (UPDATE accounts SET ticket_seq = ticket_seq + 1, {rounds} FROM head "
        f"WHERE id = '{account}' RETURNING ticket_seq, queue_round), "
        + f"ticket AS (INSERT INTO tickets ({columns}) SELECT {values.format('number.ticket_seq')} "
          "FROM number RETURNING *), "
        + "job AS (" + job.format("SELECT").replace(", 0, ''::hstore", ", -LEAST(number.queue_round, 2147483647), ''::hstore")
        + " FROM ticket, number) SELECT * FROM ticket;\n")
    tps = {name: pgbench(url, script, args.seconds)
           for name, script in (("transaction", transaction), ("statement", statement))}
    psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    log(json.dumps({
        "bench": "openTicket (PostgreSQL, API alone, 16 connections)",
        "api_requests_per_s": round(rps), "api_p50_ms": lat.get("50"), "api_p99_ms": lat.get("99"),
        "non_2xx": bad, "requests": requests, "tickets_written": written,
        "raw_sql_transaction_tps": round(tps["transaction"]),
        "api_share_of_raw_sql_transaction": round(rps / tps["transaction"], 3),
        "raw_sql_one_statement_tps": round(tps["statement"]),
        "api_share_of_raw_sql_one_statement": round(rps / tps["statement"], 3),
        "half_load_requests_per_s": round(half_rps), "half_load_p50_ms": half_lat.get("50"),
        "half_load_p99_ms": half_lat.get("99"), "half_load_non_2xx": half_bad,
        "api_rss_idle_mb": round(idle, 1), "api_rss_after_load_mb": round(loaded, 1),
    }, indent=1))


def worker_bench(args):
    """2 + 5: one worker process drains N tickets x 4 recipients into smtp-sink."""
    db = "ticketing_bench_worker"
    url = fresh_pg(db)
    env = base_env(url, EMBEDDED_WORKER="false", WORKER_CONCURRENCY=args.concurrency,
                   DATABASE_MAX_CONNECTIONS=args.pool)
    api = start_api(env)
    try:
        keys = create_account(env)
        step = seed(keys["adminKey"], recipients=4)
        log(f"queueing {args.tickets} tickets ...")
        open_tickets(keys["widgetKey"], step, args.tickets)
    finally:
        stop(api)
    expected = args.tickets * 4
    sink = start_sink()
    time.sleep(0.3)
    started = time.time()
    worker = spawn("worker", dict(env, WORKER_LISTEN_ADDR="127.0.0.1:19091"))
    try:
        sent = 0
        peak = 0.0
        while time.time() - started < 600:
            peak = max(peak, rss_mb(worker.pid))
            sent = int(psql(db, "SELECT count(*) FROM deliveries WHERE status = 'SENT'"))
            if sent >= expected:
                break
            time.sleep(0.2)
        last = float(psql(db, "SELECT extract(epoch FROM max(sent_at)) FROM deliveries"))
        rss_end = rss_mb(worker.pid)
        failed = int(psql(db, "SELECT count(*) FROM deliveries WHERE status <> 'SENT'"))
    finally:
        stop(worker)
    elapsed = last - started
    def baseline(*mode):
        out = subprocess.run(
            [os.path.join(RELEASE, "examples", "lettre_pool"), SINK_ADDR, str(expected),
             str(args.concurrency), *mode], check=True, capture_output=True, text=True).stdout
        return float(re.search(r"= (\d+) mails/s", out).group(1))
    lettre_rate = baseline()
    nodelay_rate = baseline("nodelay")
    stop(sink)
    psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    log(json.dumps({
        "bench": f"worker drain (PostgreSQL, 1 worker process, concurrency {args.concurrency})",
        "mails": expected, "sent": sent, "not_sent": failed,
        "seconds_start_to_last_mail": round(elapsed, 2),
        "worker_mails_per_s": round(sent / elapsed), "lettre_pooled_mails_per_s": lettre_rate,
        "ratio_to_lettre_pooled": round(sent / elapsed / lettre_rate, 2),
        "lettre_nodelay_mails_per_s": nodelay_rate,
        "ratio_to_lettre_nodelay": round(sent / elapsed / nodelay_rate, 2),
        "worker_rss_end_mb": round(rss_end, 1), "worker_rss_peak_mb": round(peak, 1),
    }, indent=1))


def pickup_bench(args):
    """3: ticket committed -> SMTP accepted, one ticket at a time, idle worker."""
    sink = start_sink()
    tmp = tempfile.mkdtemp(prefix="ticketing-bench-")
    worker = None
    if args.engine == "postgres":
        db = "ticketing_bench_pickup"
        url = fresh_pg(db)
        env = base_env(url, EMBEDDED_WORKER="false")
        api = start_api(env)
        worker = start_worker(env)
    else:
        url = f"sqlite://{tmp}/tickets.db"
        env = base_env(url, EMBEDDED_WORKER="true")
        api = start_api(env)
    try:
        keys = create_account(env)
        step = seed(keys["adminKey"], recipients=1)
        time.sleep(1)
        for i in range(args.tickets):
            gql(keys["widgetKey"], OPEN, {"i": {"stepId": step, "message": f"pickup {i}"}})
            time.sleep(args.gap_ms / 1000)
        time.sleep(2)
        query = ("SELECT (julianday(d.sent_at) - julianday(t.created_at)) * 86400000 FROM deliveries d "
                 "JOIN tickets t ON t.id = d.ticket_id WHERE d.status = 'SENT'")
        if args.engine == "postgres":
            rows = psql(db, "SELECT extract(epoch FROM d.sent_at - t.created_at) * 1000 FROM deliveries d "
                            "JOIN tickets t ON t.id = d.ticket_id WHERE d.status = 'SENT'").split()
            waits = [float(r) for r in rows]
        else:
            con = sqlite3.connect(f"{tmp}/tickets.db")
            waits = [r[0] for r in con.execute(query)]
            con.close()
    finally:
        stop(worker)
        stop(api)
        stop(sink)
    waits.sort()
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    log(json.dumps({
        "bench": f"pickup latency ({args.engine}), idle worker, {args.tickets} tickets "
                 f"{args.gap_ms} ms apart",
        "delivered": len(waits), "p50_ms": round(statistics.median(waits), 1),
        "p99_ms": round(p99, 1), "max_ms": round(waits[-1], 1),
    }, indent=1))
    if args.engine == "postgres":
        psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def tags_bench(args):
    """4: topicTags and routingRules for an account with 10,000 flows x 10 steps."""
    db = "ticketing_bench_tags"
    url = fresh_pg(db)
    env = base_env(url, EMBEDDED_WORKER="false")
    api = start_api(env)
    try:
        keys = create_account(env)
        account = keys["accountId"]
        admin = keys["adminKey"]
        for tag in ("topic_7", "never_defined"):
            gql(admin, 'mutation($t: String!) { createRoutingRule(input: {tag: $t, emails: ["a@example.com"]}) { id } }',
                {"t": tag})
        # Flows of 10 steps: a greeting, 8 questions and a ticket step whose topic is one of
        # `args.topics` tags.
        psql(db, f"""
INSERT INTO flows (id, account_id, name, created_at)
SELECT gen_random_uuid(), '{account}', 'flow ' || g, now() FROM generate_series(1, {args.flows}) g;
INSERT INTO steps (id, flow_id, account_id, position, kind, text, topic, topic_key,
                   confirmation_message, forward_emails, created_at, field)
SELECT gen_random_uuid(), f.id, f.account_id, p,
       CASE WHEN p = 9 THEN 'ticket' WHEN p = 0 THEN 'message' ELSE 'question' END,
       'text ' || p,
       CASE WHEN p = 9 THEN 'Topic_' || (abs(hashtext(f.name)) % {args.topics}) END,
       CASE WHEN p = 9 THEN 'topic_' || (abs(hashtext(f.name)) % {args.topics}) END,
       CASE WHEN p = 9 THEN 'Talep alındı' END, '[]', now(),
       CASE WHEN p BETWEEN 1 AND 8 THEN 'q' || p END
FROM flows f, generate_series(0, 9) p;
ANALYZE;""")
        steps = psql(db, "SELECT count(*) FROM steps")
        queries = {
            "topicTags": "{ topicTags { tag } }",
            "routingRules": "{ routingRules { id tag emails tagKnown } }",
        }
        result = {"bench": f"tag aggregation, {args.flows} flows x 10 steps ({steps} steps), "
                           f"{args.topics} distinct topics"}
        for name, query in queries.items():
            for _ in range(5):
                gql(admin, query)
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                gql(admin, query)
                times.append((time.perf_counter() - t0) * 1000)
            result[f"{name}_p50_ms"] = round(statistics.median(times), 2)
            result[f"{name}_p99_ms"] = round(sorted(times)[int(len(times) * 0.99) - 1], 2)
        # The statement of domain::rules::firsts (topicTags without steps), as the API runs it.
        a = f"'{account}'"
        plan = psql(db, "EXPLAIN WITH RECURSIVE k(topic_key) AS ("
                        f"SELECT (SELECT MIN(topic_key) FROM steps WHERE account_id = {a}) UNION ALL "
                        f"SELECT (SELECT MIN(s.topic_key) FROM steps s WHERE s.account_id = {a} "
                        "AND s.topic_key > k.topic_key) FROM k WHERE k.topic_key IS NOT NULL) "
                        f"SELECT k.topic_key, (SELECT s.topic FROM steps s WHERE s.account_id = {a} "
                        "AND s.topic_key = k.topic_key ORDER BY s.created_at, s.id LIMIT 1) AS topic "
                        "FROM k WHERE k.topic_key IS NOT NULL")
        result["plan_of_the_tag_query"] = plan.splitlines()
    finally:
        stop(api)
    psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    log(json.dumps(result, indent=1, ensure_ascii=False))


def history_bench(args):
    """Operations on a database with a long history: /metrics, queueStats and /ops over
    `--deliveries` deliveries and `--jobs` finished jobs, next to the API's memory."""
    db = "ticketing_bench_history"
    url = fresh_pg(db)
    token = "bench-ops-token"
    metrics_addr = "127.0.0.1:19090"
    env = base_env(url, EMBEDDED_WORKER="false", OPS_TOKEN=token,
                   METRICS_LISTEN_ADDR=metrics_addr)
    api = start_api(env)
    result = {"bench": "operations over history (PostgreSQL, API alone)"}
    try:
        keys = create_account(env)
        seed(keys["adminKey"])
        result["api_rss_start_mb"] = round(rss_mb(api.pid), 1)
        tickets = args.deliveries // 4
        log(f"writing {tickets} tickets, {args.deliveries} deliveries, {args.jobs} jobs ...")
        started = time.time()
        # A ticket every 2 s, 4 recipients each, one in 50 with a failed delivery: about six
        # days of a busy account, and 7,200 deliveries in the last hour.
        psql(db, f"""
            INSERT INTO tickets (id, account_id, number, flow_name, topic, topic_key, status,
                                 message, forward_emails, transcript_omitted, created_at)
            SELECT gen_random_uuid(), a.id, g, 'Destek', 'offline_message', 'offline_message',
                   'OPEN', 'history', '[]', 0, now() - g * interval '2 seconds'
            FROM accounts a, generate_series(1, {tickets}) g;
            UPDATE accounts SET ticket_seq = {tickets};
            INSERT INTO deliveries (id, ticket_id, account_id, recipient, recipient_key, sources,
                                    status, attempts, message_id, sent_at, created_at, updated_at)
            SELECT gen_random_uuid(), t.id, t.account_id, 'agent' || r || '@example.com',
                   'agent' || r || '@example.com', '[{{"kind":"forward"}}]',
                   CASE WHEN r = 0 AND t.number % 50 = 0 THEN 'FAILED' ELSE 'SENT' END, 1,
                   'm' || t.number || '.' || r,
                   CASE WHEN r = 0 AND t.number % 50 = 0 THEN NULL
                        ELSE t.created_at + interval '1 second' END,
                   t.created_at, t.created_at + interval '1 second'
            FROM tickets t, generate_series(0, 3) r;
            INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                     done_at, priority, metadata, idempotency_key)
            SELECT 'bench' || g, 'ticket-mail', '\\x7b7d'::bytea, 'Done', 1, 10,
                   now() - g * interval '1 second', now() - g * interval '1 second', 0,
                   ''::hstore, 'bench:' || g
            FROM generate_series(1, {args.jobs}) g;
        """)
        psql(db, "VACUUM ANALYZE")
        result["rows_written_s"] = round(time.time() - started, 1)
        result["deliveries"] = int(psql(db, "SELECT count(*) FROM deliveries"))
        result["finished_jobs"] = int(psql(db, "SELECT count(*) FROM apalis.jobs WHERE status = 'Done'"))
        peak = rss_mb(api.pid)

        def timed(call, n, pause=0.0):
            nonlocal peak
            took = []
            for _ in range(n):
                time.sleep(pause)
                t = time.perf_counter()
                call()
                took.append((time.perf_counter() - t) * 1000)
                peak = max(peak, rss_mb(api.pid))
            took.sort()
            return {"p50_ms": round(took[len(took) // 2], 1), "max_ms": round(took[-1], 1)}

        stats_query = """{ queueStats { deliveries { pending sending retrying sent failed }
            jobs { pending running done failed killed } oldestPendingAgeSeconds
            perMinute { minute sent failed }
            backlog { accounts ticketsWaiting deliveriesWaiting
                      top { accountId accountName ticketsWaiting deliveriesWaiting
                            oldestTicketWaitingSeconds } } } }"""
        # The floor: an operator request that reads nothing, through the same HTTP and
        # GraphQL path.
        result["floor_typename"] = timed(lambda: gql(token, "{ __typename }"), args.rounds)
        stats = gql(token, stats_query)["queueStats"]
        result["queue_stats_sent_failed"] = [stats["deliveries"]["sent"], stats["deliveries"]["failed"]]
        result["queue_stats"] = timed(lambda: gql(token, stats_query), args.rounds)

        def ops_page():
            auth = base64.b64encode(f"ops:{token}".encode()).decode()
            req = urllib.request.Request(f"http://{API_ADDR}/ops",
                                         headers={"authorization": f"Basic {auth}"})
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
        result["ops_page"] = timed(ops_page, args.rounds)

        def scrape():
            with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=60) as r:
                r.read()
        # Within the gauges' 5 s freshness, scrapes share one reading; each sample here
        # waits it out first, so every one refreshes from the database.
        result["metrics_scrape_refreshing"] = timed(scrape, max(3, args.rounds // 4), pause=5.2)
        result["metrics_scrape_shared"] = timed(scrape, args.rounds)
        result["api_rss_peak_mb"] = round(peak, 1)
    finally:
        stop(api)
    psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    log(json.dumps(result, indent=1, ensure_ascii=False))


def fairness_bench(args):
    """A backlog on one account, then a quiet account's tickets: how long each waits (opened
    -> its mail accepted by SMTP) while the backlog drains, and the drain's throughput."""
    db = "ticketing_bench_fairness"
    url = fresh_pg(db)
    token = "bench-ops-token"
    env = base_env(url, EMBEDDED_WORKER="false", WORKER_CONCURRENCY=args.concurrency,
                   OPS_TOKEN=token)
    api = start_api(env)
    sink = start_sink()
    workers = []
    result = {"bench": f"fairness (PostgreSQL, {args.workers} worker process(es), "
                       f"concurrency {args.concurrency} each)",
              "bin": BIN, "account_share": os.environ.get("WORKER_ACCOUNT_SHARE", "default")}
    try:
        noisy, quiet = create_account(env), create_account(env)
        noisy_step = seed(noisy["adminKey"], recipients=1)
        quiet_step = seed(quiet["adminKey"], recipients=1)
        log(f"queueing {args.backlog} tickets on one account ...")
        t = time.time()
        open_tickets(noisy["widgetKey"], noisy_step, args.backlog)
        result["backlog"] = args.backlog
        result["backlog_queued_s"] = round(time.time() - t, 1)
        # What operators pay to see the backlog with all of it waiting, next to a request
        # that reads nothing.
        psql(db, "VACUUM ANALYZE")

        def timed(query, n=20):
            took = []
            for _ in range(n):
                t = time.perf_counter()
                gql(token, query)
                took.append((time.perf_counter() - t) * 1000)
            took.sort()
            return {"p50_ms": round(took[len(took) // 2], 1), "max_ms": round(took[-1], 1)}
        backlog_query = """{ queueStats { backlog { accounts ticketsWaiting deliveriesWaiting
            top { accountId ticketsWaiting deliveriesWaiting oldestTicketWaitingSeconds } } } }"""
        if not args.no_backlog_reads:
            result["floor_typename"] = timed("{ __typename }")
            result["queue_stats_backlog"] = timed(backlog_query)
            result["backlog_seen"] = gql(token, backlog_query)["queueStats"]["backlog"]["ticketsWaiting"]
        started = time.time()
        for i in range(args.workers):
            workers.append(start_worker(env, listen=f"127.0.0.1:{19091 + i}"))
        if args.unguarded_fetch:
            # apalis' own fetch plan and acknowledgement lookup, for a before/after in one
            # build: undoes what every migrate applies (db::keep_job_fetches_independent_of_history).
            psql(db, "ALTER FUNCTION apalis.get_jobs(text, text, integer) RESET ALL; "
                     "DROP TRIGGER ticketing_release_finished_job ON apalis.jobs")
            result["unguarded_fetch"] = True
        # The quiet account opens a ticket every 200 ms while the backlog drains.
        for i in range(args.samples):
            gql(quiet["widgetKey"], OPEN, {"i": {"stepId": quiet_step, "message": f"quiet {i}"}})
            time.sleep(0.2)
        quiet_id = quiet["accountId"]
        deadline = time.time() + 120
        while time.time() < deadline:
            waiting = int(psql(db, f"SELECT count(*) FROM deliveries WHERE account_id = '{quiet_id}' "
                                   "AND status = 'SENT'"))
            if waiting >= args.samples:
                break
            time.sleep(0.2)
        latencies = sorted(float(x) * 1000 for x in psql(db, f"""
            SELECT extract(epoch FROM d.sent_at - t.created_at) FROM deliveries d
            JOIN tickets t ON t.id = d.ticket_id
            WHERE d.account_id = '{quiet_id}' AND d.status = 'SENT'""").split())
        backlog_left = int(psql(db, "SELECT count(*) FROM tickets WHERE routed_at IS NULL"))
        result["quiet_tickets"] = args.samples
        result["quiet_mailed"] = len(latencies)
        if latencies:
            result["quiet_latency_ms"] = {
                "p50": round(latencies[len(latencies) // 2], 1),
                "p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
                "max": round(latencies[-1], 1)}
        result["backlog_not_yet_routed_after_samples"] = backlog_left
        expected = args.backlog + args.samples
        while time.time() - started < 900:
            sent = int(psql(db, "SELECT count(*) FROM deliveries WHERE status = 'SENT'"))
            if sent >= expected:
                break
            time.sleep(0.5)
        last = float(psql(db, "SELECT extract(epoch FROM max(sent_at)) FROM deliveries"))
        result["drain_mails_per_s"] = round(sent / (last - started))
    finally:
        for w in workers:
            stop(w)
        stop(api)
        stop(sink)
    psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    log(json.dumps(result, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="bench", required=True)
    p = sub.add_parser("open-ticket")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--pool", type=int, default=20)
    p.set_defaults(run=open_ticket_bench)
    p = sub.add_parser("worker")
    p.add_argument("--tickets", type=int, default=2500)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--pool", type=int, default=20)
    p.set_defaults(run=worker_bench)
    p = sub.add_parser("pickup")
    p.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--tickets", type=int, default=200)
    p.add_argument("--gap-ms", type=int, default=100)
    p.set_defaults(run=pickup_bench)
    p = sub.add_parser("fairness")
    p.add_argument("--backlog", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--no-backlog-reads", action="store_true",
                   help="skip timing queueStats' backlog (builds before it, e.g. 706fbcc)")
    p.add_argument("--unguarded-fetch", action="store_true",
                   help="drain with apalis' own fetch plan and ack lookup (before/after)")
    p.set_defaults(run=fairness_bench)
    p = sub.add_parser("history")
    p.add_argument("--deliveries", type=int, default=1_000_000)
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=20)
    p.set_defaults(run=history_bench)
    p = sub.add_parser("tags")
    p.add_argument("--flows", type=int, default=10_000)
    p.add_argument("--topics", type=int, default=200)
    p.add_argument("--rounds", type=int, default=200)
    p.set_defaults(run=tags_bench)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
