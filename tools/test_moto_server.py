"""Checks tools/moto_server.py's shard methods against moto's own on random workloads.

Each step runs a random operation on a moto Kinesis stream model (puts, shard splits, merges,
resharding) and then asks both implementations the same questions on the same shards: the min
and max sequence numbers, and GetRecords from random positions with random limits. Any
difference fails.

    .venv/bin/python tools/test_moto_server.py
"""

from __future__ import annotations

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moto_server  # noqa: E402
from moto.awslambda import models as _lambda  # noqa: E402
from moto.kinesis import models  # noqa: E402

ORIGINAL = {
    name: getattr(models.Shard, name)
    for name in ("get_records", "get_min_sequence_number", "get_max_sequence_number")
}
PATCHED = {
    "get_records": moto_server._get_records,
    "get_min_sequence_number": moto_server._get_min_sequence_number,
    "get_max_sequence_number": moto_server._get_max_sequence_number,
}


def use(impl: dict) -> None:
    for name, fn in impl.items():
        setattr(models.Shard, name, fn)


def ask(shard: models.Shard, impl: dict, queries: list) -> list:
    use(impl)
    answers = [shard.get_min_sequence_number(), shard.get_max_sequence_number()]
    for last, limit in queries:
        records, new_last, behind = shard.get_records(str(last), limit)
        answers.append(([r.sequence_number for r in records], new_last, behind))
    return answers


class ShardMethodsAgree(unittest.TestCase):
    maxDiff = None

    def tearDown(self) -> None:
        use(ORIGINAL)

    def check_stream(self, stream: models.Stream, rng: random.Random) -> None:
        for shard in stream.shards.values():
            top = shard.get_max_sequence_number() + 3
            queries = [(rng.randint(-1, top), rng.choice([None, 0, 1, 7, 100, 10_000])) for _ in range(12)]
            queries.append((0, None))
            self.assertEqual(ask(shard, PATCHED, queries), ask(shard, ORIGINAL, queries), shard.shard_id)

    def test_random_workloads(self) -> None:
        for seed in range(40):
            rng = random.Random(seed)
            use(PATCHED)  # the stream runs on the patched methods, as it does in the server
            stream = models.Stream(f"s{seed}", rng.randint(1, 4), None, None, "123456789012", "us-east-1")
            for _ in range(rng.randint(5, 25)):
                use(PATCHED)
                op = rng.random()
                if op < 0.7:
                    for _ in range(rng.randint(1, 200)):
                        key = f"robot-{rng.randint(0, 50)}"
                        stream.put_record(key, "", "ZGF0YQ==")
                elif op < 0.85:
                    open_shards = [s for s in stream.shards.values() if s.is_open]
                    shard = rng.choice(open_shards)
                    middle = (shard.starting_hash + shard.ending_hash) // 2
                    stream.split_shard(shard.shard_id, str(middle))
                else:
                    stream.update_shard_count(rng.randint(1, 6))
                self.check_stream(stream, rng)

    def test_gap_falls_back_to_moto_scan(self) -> None:
        shard = models.Shard(0, 0, 2**128 - 1)
        use(PATCHED)
        for _ in range(10):
            shard.put_record("k", "ZGF0YQ==", "")
        del shard.records[4]
        queries = [(0, None), (2, 3), (3, None), (4, 2), (9, None)]
        self.assertEqual(ask(shard, PATCHED, queries), ask(shard, ORIGINAL, queries))


class NoLambdaPush(unittest.TestCase):
    def test_put_record_does_not_invoke_mapped_functions(self) -> None:
        # A mapping whose function doesn't exist: moto's push raises on the first put.
        class Mapping:
            function_arn = "arn:aws:lambda:us-east-1:123456789012:function:nowhere"

        stream = models.Stream("pushed", 1, None, None, "123456789012", "us-east-1")
        stream.lambda_event_source_mappings = {
            "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:1": Mapping()
        }
        original = _lambda.LambdaBackend.send_kinesis_message
        try:
            with self.assertRaises(Exception):
                stream.put_record("k", "", "ZGF0YQ==")
            moto_server.apply()
            for _ in range(3):
                stream.put_record("k", "", "ZGF0YQ==")
        finally:
            _lambda.LambdaBackend.send_kinesis_message = original
            use(ORIGINAL)
        self.assertEqual(len(stream.shards["shardId-000000000000"].records), 4)


class KeepAlive(unittest.TestCase):
    def test_keepalive_server_answers_many_calls_on_one_connection(self) -> None:
        import http.client
        import socket
        import subprocess
        import time

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_server.py")
        server = subprocess.Popen(
            [sys.executable, launcher, "--keepalive", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 30
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.connect()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.1)
            headers = {
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "Authorization": "AWS4-HMAC-SHA256 Credential=x/20261124/us-east-1/dynamodb/aws4_request, "
                "SignedHeaders=host, Signature=0",
            }
            for _ in range(3):
                conn.request("POST", "/", body=b"{}", headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                self.assertEqual(resp.status, 200, body)
                self.assertIn(b"TableNames", body)
                self.assertNotEqual((resp.getheader("Connection") or "").lower(), "close")
            # Still the first connection: the server never closed it.
            self.assertIsNotNone(conn.sock)
            conn.close()
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
