"""The peers of the benchmark: what a typical hand-written script does with the official
`customerio` library (3.x), single-threaded, reading its rows from PostgreSQL in the same
process. Started by bench/run.py, one process per measurement:

    .venv/bin/python bench/peers.py --mode identify|batch --url https://127.0.0.1:PORT \
        --site-id S --api-key K --rows 20000 [--max-rows N] [--max-seconds S]

`identify`: one `CustomerIO.identify()` per row (PUT /api/v1/customers/{id}).
`batch`:    `CustomerIO.batch()` with 1,000 identify operations per request (POST /api/v2/batch).

The library always speaks HTTPS; it trusts the benchmark server's local CA through
`REQUESTS_CA_BUNDLE` (set by the runner). Prints one JSON object: rows sent, seconds from the
query to the last answer, requests, errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal
from urllib.parse import urlsplit

import psycopg2
from customerio import CustomerIO

COLUMNS = ("person_id, email, first_name, plan, city, orders_count, age, lifetime_value, avg_order_value, "
           "is_vip, email_opt_in, created_at, last_order_at")
ATTRIBUTES = [c.strip() for c in COLUMNS.split(",")][1:]
CHUNK = 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("identify", "batch"), required=True)
    parser.add_argument("--url", required=True, help="https://127.0.0.1:PORT of the benchmark server")
    parser.add_argument("--site-id", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--schema", default="cio_bench_src")
    parser.add_argument("--rows", type=int, default=20_000, help="the sample: people with n <= rows")
    parser.add_argument("--max-rows", type=int, default=None, help="send at most this many of them")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long")
    args = parser.parse_args()

    url = urlsplit(args.url)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        print(json.dumps({"error": "the benchmark only talks to a server on loopback"}))
        return 2
    limit = min(args.rows, args.max_rows or args.rows)

    started = time.perf_counter()
    # As a script would: read the rows, convert what requests' JSON encoder cannot take (Decimal);
    # the library turns datetimes into Unix seconds itself.
    connection = psycopg2.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"), port=int(os.environ.get("PGPORT", "5432")),
        user=os.environ.get("PGUSER", "postgres"), password=os.environ.get("PGPASSWORD", ""),
        dbname=os.environ.get("PGDATABASE", "test"),
    )
    with connection, connection.cursor() as cursor:
        cursor.execute(f"select {COLUMNS} from {args.schema}.people where n <= %s order by n limit %s",
                       (args.rows, limit))
        rows = cursor.fetchall()
    connection.close()
    read = time.perf_counter()

    cio = CustomerIO(args.site_id, args.api_key, host=url.hostname, port=url.port)
    sent = requests = errors = 0
    deadline = started + args.max_seconds
    try:
        if args.mode == "identify":
            for row in rows:
                attributes = {name: float(v) if isinstance(v, Decimal) else v
                              for name, v in zip(ATTRIBUTES, row[1:], strict=True)}
                try:
                    cio.identify(row[0], **attributes)
                except Exception as exc:  # noqa: BLE001 - counted, as a script's log line would
                    errors += 1
                    print(f"identify {row[0]}: {exc}"[:300], file=sys.stderr)
                requests += 1
                sent += 1
                if time.perf_counter() > deadline:
                    break
        else:
            for start in range(0, len(rows), CHUNK):
                operations = []
                for row in rows[start:start + CHUNK]:
                    attributes = {name: float(v) if isinstance(v, Decimal) else v
                                  for name, v in zip(ATTRIBUTES, row[1:], strict=True)}
                    operations.append({"type": "person", "identifiers": {"id": row[0]}, "action": "identify",
                                       "attributes": attributes})
                try:
                    cio.batch(operations)
                except Exception as exc:  # noqa: BLE001
                    errors += 1
                    print(f"batch at {start}: {exc}"[:300], file=sys.stderr)
                requests += 1
                sent += len(operations)
                if time.perf_counter() > deadline:
                    break
    finally:
        cio.close()
    finished = time.perf_counter()
    print(json.dumps({
        "mode": args.mode,
        "rows": sent,
        "requests": requests,
        "errors": errors,
        "seconds": round(finished - started, 4),
        "read_seconds": round(read - started, 4),
        "rows_per_second": round(sent / (finished - started), 1) if finished > started else None,
    }))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
