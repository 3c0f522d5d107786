"""moto server for the local stack, the tests and the benchmarks, with two fixes to moto's
Kinesis: its shard made O(1) per record, and no in-line Lambda invocation per record.

moto 5.2.5 keeps a shard's records in an OrderedDict keyed by sequence number, but
`Shard.put_record` finds the newest key with `list(self.records.keys())[-1]` and
`Shard.get_records` walks the shard from its oldest record on every call. Both cost
O(records in the shard), so a stream slows down linearly as it fills: after 60,000 records a
PutRecords of 100 took 210 ms instead of 27 ms here, and the local pipeline fell behind at
about 300 records/s. Nothing trims a moto stream, so every long run hits it.

moto also pushes every record put into a stream straight into each Lambda event source mapping
on that stream, invoking the function in Docker once per record. The local stack creates its
mappings in moto (so `robofleet dev` reads them back like Lambda would) and polls the streams
itself, as Lambda's pollers do; moto's push is a second, fake delivery that can't even run here
(no Docker). It cost about 3 ms of moto CPU per record in failed Docker calls and capped the
local pipeline at about 270 records/s. The launcher turns that push off.

This launcher replaces those three shard methods with versions that give the same results
(`tools/test_moto_server.py` checks them against moto's own on random workloads, splits and
merges included) and then runs moto's own `moto_server` entry point. Sequence numbers in a
moto shard are consecutive integers (each record gets the newest + 1, and splits and merges
re-put the parent's records), so a read walks the keys from the iterator's position; if it ever
meets a gap it falls back to moto's scan.

    python tools/moto_server.py -H 127.0.0.1 -p 5000     # same arguments as moto_server
    python tools/moto_server.py --keepalive -H 127.0.0.1 -p 5000

`--keepalive` serves the same moto application through waitress instead of werkzeug's
development server. werkzeug answers every request with `Connection: close`, so every SDK call
against it pays a new TCP connection; AWS endpoints keep connections alive, and so does waitress.
The function benchmark (`make bench`) uses it so that the CPU it measures per record is what the
function spends on a kept-alive connection, as in Lambda. The tests and the local stack keep
moto's own server.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from moto.awslambda import models as _lambda
from moto.kinesis import models as _kinesis

_ORIGINAL_GET_RECORDS = _kinesis.Shard.get_records


def _get_min_sequence_number(self: Any) -> int:
    if self.records:
        return next(iter(self.records))
    return 0


def _get_max_sequence_number(self: Any) -> int:
    if self.records:
        return next(reversed(self.records))
    return 0


def _get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list, int, int]:
    records = self.records
    last = int(last_sequence_id)
    if limit is not None and limit < 1:  # the real API refuses these; keep moto's answer
        return _ORIGINAL_GET_RECORDS(self, last_sequence_id, limit)
    if not records:
        return [], last, 0
    newest_seq = next(reversed(records))
    seq = max(last + 1, next(iter(records)))
    results = []
    while seq <= newest_seq and (limit is None or len(results) < limit):
        record = records.get(seq)
        if record is None:  # not consecutive: let moto scan
            return _ORIGINAL_GET_RECORDS(self, last_sequence_id, limit)
        results.append(record)
        last = seq
        seq += 1
    if not results:
        return [], last, 0
    behind_s = records[newest_seq].created_at - results[-1].created_at
    return results, last, int(behind_s * 1000)


def _send_kinesis_message(self: Any, *args: Any, **kwargs: Any) -> None:
    """Records reach the functions through the local stack's own pollers, not through moto."""


def apply() -> None:
    """Installs the O(1) shard methods and turns off moto's per-record Lambda push."""
    _lambda.LambdaBackend.send_kinesis_message = _send_kinesis_message
    _kinesis.Shard.get_min_sequence_number = _get_min_sequence_number
    _kinesis.Shard.get_max_sequence_number = _get_max_sequence_number
    _kinesis.Shard.get_records = _get_records


def serve_keepalive(argv: list[str]) -> None:
    """moto's application on waitress (HTTP/1.1 keep-alive, a pool of 8 threads)."""
    import argparse

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress import serve

    parser = argparse.ArgumentParser(prog="moto_server.py --keepalive")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    print(f"moto (keep-alive, waitress) on http://{args.host}:{args.port}", flush=True)
    # Every SDK client keeps a pool of connections: allow many more than waitress's default 100.
    serve(app, host=args.host, port=args.port, threads=8, connection_limit=1000, ident="moto", _quiet=True)


if __name__ == "__main__":
    apply()
    argv = sys.argv[1:]
    if "--keepalive" in argv:
        argv.remove("--keepalive")
        serve_keepalive(argv)
    else:
        from moto.server import main

        main(argv)
