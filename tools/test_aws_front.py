"""Tests of the AWS front (tools/aws_front): run with `.venv/bin/python tools/test_aws_front.py`.

One front is started in-process on free loopback ports, with moto in-process behind it and two
tiny HTTP stubs standing in for osmem (es) and the shadow service (iotdata). Requests are signed
by botocore (boto3 clients, or botocore's SigV4Auth for hand-built requests), never by the front's
own code, and every refusal is checked the way the SDKs see it: a boto3 ClientError code.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import boto3  # noqa: E402
import botocore.model  # noqa: E402
import cbor2  # noqa: E402
from botocore.auth import S3SigV4Auth, SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

import aws_front  # noqa: E402
from aws_front import policy as P  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
MIB = 1024 * 1024
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

FRONT: aws_front.Front
SERVER = None
PORTS: list[int] = []
STUBS: list[ThreadingHTTPServer] = []
ES_REQUESTS: list[dict] = []
IOT_REQUESTS: list[dict] = []
DEV: dict = {}


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log: list[dict] = []

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.log.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        payload = json.dumps({"method": self.command, "path": self.path, "length": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

    def log_message(self, *args) -> None:
        pass


def _stub(log: list[dict]) -> ThreadingHTTPServer:
    handler = type("Stub", (_Stub,), {"log": log})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    STUBS.append(server)
    return server


def setUpModule() -> None:
    global FRONT, SERVER, PORTS, DEV
    es = _stub(ES_REQUESTS)
    iot = _stub(IOT_REQUESTS)
    FRONT = aws_front.Front(
        region=REGION,
        account=ACCOUNT,
        opensearch_backend=f"http://127.0.0.1:{es.server_address[1]}",
        iot_backend=f"http://127.0.0.1:{iot.server_address[1]}",
    )
    SERVER, PORTS = aws_front.make_server(FRONT, "127.0.0.1", 0, 0, 0)
    threading.Thread(target=SERVER.run, daemon=True).start()
    DEV = register(f"arn:aws:iam::{ACCOUNT}:user/developer", [ALLOW_ALL])


def tearDownModule() -> None:
    # The waitress servers run on daemon threads and end with the process: closing them while a
    # worker thread finishes a kept-alive channel makes waitress log a spurious EBADF.
    for s in STUBS:
        s.shutdown()


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def aws_url() -> str:
    return f"http://127.0.0.1:{PORTS[0]}"


def admin(path: str, doc: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(aws_url() + path, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def register(arn: str, policies: list[dict], session: str | None = None) -> dict:
    doc = {"arn": arn, "policies": policies}
    if session:
        doc["sessionName"] = session
    status, creds = admin("/_front/principals", doc)
    assert status == 200, creds
    return creds


def role(name: str, *statements: dict) -> dict:
    policies = [{"Version": "2012-10-17", "Statement": list(statements)}] if statements else []
    return register(f"arn:aws:iam::{ACCOUNT}:role/{name}", policies)


def client(service: str, creds: dict, port: int | None = None, retry: bool = True):
    # retry=False: one attempt (botocore retries LimitExceededException after a random pause of up to 1 s).
    retries = {"max_attempts": 1} if retry else {"mode": "standard", "total_max_attempts": 1}
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{port or PORTS[0]}",
        region_name=REGION,
        aws_access_key_id=creds["accessKeyId"],
        aws_secret_access_key=creds["secretAccessKey"],
        aws_session_token=creds.get("sessionToken"),
        config=Config(retries=retries, s3={"addressing_style": "path"}),
    )


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def signed_request(creds: dict, service: str, method: str, url: str, headers: dict, body: bytes = b"", s3: bool = False,
                   context: dict | None = None) -> AWSRequest:
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    if context:
        request.context.update(context)
    signer = (S3SigV4Auth if s3 else SigV4Auth)(
        Credentials(creds["accessKeyId"], creds["secretAccessKey"], creds.get("sessionToken")), service, REGION
    )
    signer.add_auth(request)
    return request


def send(port: int, request: AWSRequest, drop: tuple[str, ...] = (), extra: dict | None = None, chunked: bool = False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = request.url.split(f":{port}", 1)[1]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in drop}
    headers.update(extra or {})
    body = request.body or b""
    if chunked:
        conn.putrequest(request.method, path, skip_accept_encoding=True, skip_host=True)
        conn.putheader("Host", f"127.0.0.1:{port}")
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for i in range(0, len(body), 1000):
            part = body[i : i + 1000]
            conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        conn.send(b"0\r\n\r\n")
    else:
        conn.request(request.method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def code_of(ctx) -> str:
    return ctx.exception.response["Error"]["Code"]


def dev_kinesis_stream(name: str) -> None:
    k = client("kinesis", DEV)
    k.create_stream(StreamName=name, ShardCount=1)


def shard_iterator(name: str) -> str:
    k = client("kinesis", DEV)
    shard = k.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    return k.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]


# ------------------------------------------------------------------------------------------
# authorization
# ------------------------------------------------------------------------------------------


class Authorization(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        d = client("dynamodb", DEV)
        cls.t1, cls.t2 = uniq("missions"), uniq("other")
        for t in (cls.t1, cls.t2):
            d.create_table(
                TableName=t,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )

    def test_role_puts_on_its_table_and_is_denied_on_another(self) -> None:
        creds = role(uniq("ingest"), {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": arn("dynamodb", f"table/{self.t1}")})
        self.assertTrue(creds["accessKeyId"].startswith("ASIA"))
        self.assertTrue(creds["sessionToken"])
        d = client("dynamodb", creds)
        d.put_item(TableName=self.t1, Item={"pk": {"S": "a"}})
        with self.assertRaises(ClientError) as ctx:
            d.put_item(TableName=self.t2, Item={"pk": {"S": "a"}})
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        msg = ctx.exception.response["Error"]["Message"]
        self.assertIn(f"assumed-role/", msg)
        self.assertIn(f"is not authorized to perform: dynamodb:PutItem on resource: {arn('dynamodb', 'table/' + self.t2)}", msg)
        self.assertIn("because no identity-based policy allows the dynamodb:PutItem action", msg)
        with self.assertRaises(ClientError) as ctx:  # GetItem was never granted
            d.get_item(TableName=self.t1, Key={"pk": {"S": "a"}})
        self.assertEqual(code_of(ctx), "AccessDeniedException")

    def test_explicit_deny_wins(self) -> None:
        creds = role(
            uniq("denied"),
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": arn("dynamodb", f"table/{self.t1}")},
        )
        d = client("dynamodb", creds)
        d.put_item(TableName=self.t2, Item={"pk": {"S": "b"}})
        with self.assertRaises(ClientError) as ctx:
            d.put_item(TableName=self.t1, Item={"pk": {"S": "b"}})
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        self.assertIn("with an explicit deny in an identity-based policy", ctx.exception.response["Error"]["Message"])

    def test_reregistering_replaces_policies_for_old_credentials(self) -> None:
        name = uniq("rereg")
        old = role(name, {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"})
        new = role(name, {"Effect": "Deny", "Action": "dynamodb:*", "Resource": "*"})
        self.assertNotEqual(old["accessKeyId"], new["accessKeyId"])
        for creds in (old, new):
            with self.assertRaises(ClientError) as ctx:
                client("dynamodb", creds).put_item(TableName=self.t1, Item={"pk": {"S": "c"}})
            self.assertEqual(code_of(ctx), "AccessDeniedException")

    def test_batch_write_needs_every_table(self) -> None:
        creds = role(uniq("batch"), {"Effect": "Allow", "Action": "dynamodb:BatchWriteItem", "Resource": arn("dynamodb", f"table/{self.t1}")})
        d = client("dynamodb", creds)
        d.batch_write_item(RequestItems={self.t1: [{"PutRequest": {"Item": {"pk": {"S": "x"}}}}]})
        with self.assertRaises(ClientError) as ctx:
            d.batch_write_item(RequestItems={
                self.t1: [{"PutRequest": {"Item": {"pk": {"S": "x"}}}}],
                self.t2: [{"PutRequest": {"Item": {"pk": {"S": "x"}}}}],
            })
        self.assertEqual(code_of(ctx), "AccessDeniedException")

    def test_query_on_index_uses_index_arn(self) -> None:
        table = uniq("indexed")
        client("dynamodb", DEV).create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "g", "AttributeType": "S"}],
            GlobalSecondaryIndexes=[{"IndexName": "byG", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}],
            BillingMode="PAY_PER_REQUEST",
        )
        creds = role(uniq("query"), {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": arn("dynamodb", f"table/{table}/index/*")})
        d = client("dynamodb", creds)
        d.query(TableName=table, IndexName="byG", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": {"S": "1"}})
        with self.assertRaises(ClientError) as ctx:
            d.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "1"}})
        self.assertEqual(code_of(ctx), "AccessDeniedException")

    def test_s3_bucket_policy_alone_allows(self) -> None:
        bucket = uniq("failed-batches")
        s3dev = client("s3", DEV)
        s3dev.create_bucket(Bucket=bucket)
        name = uniq("writer")
        creds = register(f"arn:aws:iam::{ACCOUNT}:role/{name}", [])
        status, _ = admin("/_front/resource-policies", {
            "resourceArn": f"arn:aws:s3:::{bucket}",
            "policy": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/{name}"}, "Action": ["s3:PutObject", "s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/*"},
                {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            ]},
        })
        self.assertEqual(status, 200)
        s3 = client("s3", creds)
        s3.put_object(Bucket=bucket, Key="a/b.json", Body=b"{}")
        self.assertEqual(s3.get_object(Bucket=bucket, Key="a/b.json")["Body"].read(), b"{}")
        with self.assertRaises(ClientError) as ctx:
            s3.list_objects_v2(Bucket=bucket)
        self.assertEqual(code_of(ctx), "AccessDenied")
        other = role(uniq("stranger"))  # no policy at all, not named by the bucket policy
        with self.assertRaises(ClientError) as ctx:
            client("s3", other).put_object(Bucket=bucket, Key="x", Body=b"1")
        self.assertEqual(code_of(ctx), "AccessDenied")

    def test_a_missing_key_is_access_denied_without_list_bucket(self) -> None:
        bucket = uniq("inputs")
        client("s3", DEV).create_bucket(Bucket=bucket)
        client("s3", DEV).put_object(Bucket=bucket, Key="inputs/there.jsonl", Body=b"{}")
        reader = client("s3", role(uniq("reader"), {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}))
        self.assertEqual(reader.head_object(Bucket=bucket, Key="inputs/there.jsonl")["ContentLength"], 2)
        self.assertEqual(reader.get_object(Bucket=bucket, Key="inputs/there.jsonl")["Body"].read(), b"{}")
        with self.assertRaises(ClientError) as ctx:
            reader.get_object(Bucket=bucket, Key="inputs/missing.jsonl")
        self.assertEqual((code_of(ctx), ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"]), ("AccessDenied", 403))
        with self.assertRaises(ClientError) as ctx:
            reader.head_object(Bucket=bucket, Key="inputs/missing.jsonl")
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        lister = client("s3", role(uniq("lister"), {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
                                   {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}))
        with self.assertRaises(ClientError) as ctx:
            lister.get_object(Bucket=bucket, Key="inputs/missing.jsonl")
        self.assertEqual(code_of(ctx), "NoSuchKey")
        with self.assertRaises(ClientError) as ctx:
            lister.head_object(Bucket=bucket, Key="inputs/missing.jsonl")
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)

    def test_s3_prefix_condition_on_list_bucket(self) -> None:
        bucket = uniq("prefixes")
        client("s3", DEV).create_bucket(Bucket=bucket)
        creds = role(uniq("lister"), {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}", "Condition": {"StringLike": {"s3:prefix": "failed/*"}}})
        s3 = client("s3", creds)
        s3.list_objects_v2(Bucket=bucket, Prefix="failed/2026")
        with self.assertRaises(ClientError) as ctx:
            s3.list_objects_v2(Bucket=bucket, Prefix="other/")
        self.assertEqual(code_of(ctx), "AccessDenied")

    def test_get_records_authorizes_on_the_iterators_stream(self) -> None:
        mine, theirs = uniq("shadows"), uniq("missions")
        dev_kinesis_stream(mine)
        dev_kinesis_stream(theirs)
        creds = role(uniq("reader"), {"Effect": "Allow", "Action": ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"], "Resource": arn("kinesis", f"stream/{mine}")})
        k = client("kinesis", creds)
        k.get_records(ShardIterator=shard_iterator(mine))
        with self.assertRaises(ClientError) as ctx:
            k.get_records(ShardIterator=shard_iterator(theirs))
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        self.assertIn(f"stream/{theirs}", ctx.exception.response["Error"]["Message"])

    def test_update_event_source_mapping_with_function_arn_condition(self) -> None:
        iam = client("iam", DEV)
        role_name = uniq("lambda-role")
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        lam = client("lambda", DEV)
        zbuf = io.BytesIO()
        with zipfile.ZipFile(zbuf, "w") as z:
            z.writestr("bootstrap", "#!/bin/sh\n")
        stream = uniq("esm-stream")
        dev_kinesis_stream(stream)
        stream_arn = arn("kinesis", f"stream/{stream}")
        uuids = {}
        for fn in ("fa", "fb"):
            name = uniq(fn)
            lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=role_arn, Handler="bootstrap", Code={"ZipFile": zbuf.getvalue()})
            uuids[fn] = (name, lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=name, StartingPosition="TRIM_HORIZON")["UUID"])
        fa_name = uuids["fa"][0]
        creds = role(uniq("esm-operator"), {
            "Effect": "Allow",
            "Action": ["lambda:UpdateEventSourceMapping", "lambda:GetEventSourceMapping"],
            "Resource": arn("lambda", "event-source-mapping:*"),
            "Condition": {"ArnLike": {"lambda:FunctionArn": arn("lambda", f"function:{fa_name}*")}},
        })
        op = client("lambda", creds)
        op.update_event_source_mapping(UUID=uuids["fa"][1], Enabled=False)
        self.assertEqual(op.get_event_source_mapping(UUID=uuids["fa"][1])["State"] in ("Disabled", "Disabling", "Enabled"), True)
        with self.assertRaises(ClientError) as ctx:
            op.update_event_source_mapping(UUID=uuids["fb"][1], Enabled=False)
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        # CreateEventSourceMapping: the condition key is the FunctionName of the body.
        creator = role(uniq("esm-creator"), {
            "Effect": "Allow", "Action": "lambda:CreateEventSourceMapping", "Resource": "*",
            "Condition": {"ArnEquals": {"lambda:FunctionArn": arn("lambda", f"function:{fa_name}")}},
        })
        with self.assertRaises(ClientError) as ctx:
            client("lambda", creator).create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=uuids["fb"][0], StartingPosition="LATEST")
        self.assertEqual(code_of(ctx), "AccessDeniedException")

    def test_get_caller_identity_is_answered_by_the_front(self) -> None:
        name = uniq("whoami")
        creds = register(f"arn:aws:iam::{ACCOUNT}:role/{name}", [], session="sess-1")
        ident = client("sts", creds).get_caller_identity()  # allowed even without any policy
        self.assertEqual(ident["Arn"], f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/sess-1")
        self.assertEqual(ident["Account"], ACCOUNT)
        self.assertTrue(ident["UserId"].startswith("AROA") and ident["UserId"].endswith(":sess-1"))
        self.assertEqual(client("sts", DEV).get_caller_identity()["Arn"], f"arn:aws:iam::{ACCOUNT}:user/developer")

    def test_unsupported_operation_is_a_loud_501(self) -> None:
        with self.assertRaises(ClientError) as ctx:
            client("dynamodb", DEV).describe_backup(BackupArn=arn("dynamodb", "table/x/backup/1"))
        self.assertEqual(code_of(ctx), "FrontUnsupportedOperation")
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 501)
        self.assertIn("the AWS front does not authorize dynamodb:DescribeBackup; add it to tools/aws_front", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(ClientError) as ctx:
            client("logs", DEV).describe_log_groups()
        self.assertEqual(code_of(ctx), "FrontUnsupportedOperation")
        with self.assertRaises(ClientError) as ctx:
            client("s3", DEV).get_bucket_website(Bucket="whatever")
        self.assertEqual(code_of(ctx), "FrontUnsupportedOperation")

    def test_sqs_json_and_query_protocols(self) -> None:
        queue = uniq("rejects")
        url = client("sqs", DEV).create_queue(QueueName=queue)["QueueUrl"]
        creds = role(uniq("rejecter"), {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn("sqs", queue)})
        sqs = client("sqs", creds)
        sqs.send_message(QueueUrl=url, MessageBody="x")
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "y"}])
        with self.assertRaises(ClientError) as ctx:
            sqs.receive_message(QueueUrl=url)
        self.assertEqual(code_of(ctx), "AccessDenied")
        # The query protocol (Action=...), as older clients send it.
        body = f"Action=ReceiveMessage&Version=2012-11-05&QueueUrl={urllib.parse.quote(url, safe='')}".encode()
        req = signed_request(creds, "sqs", "POST", aws_url() + "/", {"Content-Type": "application/x-www-form-urlencoded"}, body)
        status, _, data = send(PORTS[0], req)
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>AccessDenied</Code>", data)

    def test_cloudformation_stack_records_are_authorized_per_stack(self) -> None:
        stack = uniq("stk")
        template = '{"Resources": {"P": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}, "Outputs": {"A": {"Value": "x"}}}'
        client("cloudformation", DEV).create_stack(StackName=stack, TemplateBody=template)
        reader = role(uniq("status"), {"Effect": "Allow", "Action": "cloudformation:DescribeStacks",
                                       "Resource": arn("cloudformation", f"stack/{stack}/*")})
        out = client("cloudformation", reader).describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
        self.assertEqual(out, [{"OutputKey": "A", "OutputValue": "x"}])
        with self.assertRaises(ClientError) as ctx:
            client("cloudformation", reader).describe_stacks(StackName=uniq("other"))
        self.assertEqual(code_of(ctx), "AccessDenied")
        with self.assertRaises(ClientError) as ctx:
            client("cloudformation", reader).delete_stack(StackName=stack)
        self.assertEqual(code_of(ctx), "AccessDenied")

    def test_iam_and_cloudwatch(self) -> None:
        creds = role(uniq("metrics"), {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*", "Condition": {"StringEquals": {"cloudwatch:namespace": "Robofleet"}}})
        cw = client("cloudwatch", creds)
        cw.put_metric_data(Namespace="Robofleet", MetricData=[{"MetricName": "m", "Value": 1.0}])
        with self.assertRaises(ClientError) as ctx:
            cw.put_metric_data(Namespace="Other", MetricData=[{"MetricName": "m", "Value": 1.0}])
        self.assertEqual(code_of(ctx), "AccessDenied")
        with self.assertRaises(ClientError) as ctx:
            client("cloudwatch", DEV).put_metric_data(Namespace="AWS/Kinesis", MetricData=[{"MetricName": "m", "Value": 1.0}])
        self.assertEqual(code_of(ctx), "InvalidParameterValue")
        self.assertIn("The value AWS/ for parameter Namespace is invalid.", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(ClientError) as ctx:
            client("iam", creds).get_role(RoleName="anything")
        self.assertEqual(code_of(ctx), "AccessDenied")
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)

    def test_iot_control_and_data_plane(self) -> None:
        thing = uniq("robot")
        creds = role(uniq("iot-app"),
                     {"Effect": "Allow", "Action": ["iot:UpdateThingShadow", "iot:GetThingShadow"], "Resource": arn("iot", f"thing/{thing}")},
                     {"Effect": "Allow", "Action": "iot:CreateThing", "Resource": arn("iot", f"thing/{thing}")})
        client("iot", creds).create_thing(thingName=thing)
        with self.assertRaises(ClientError) as ctx:
            client("iot", creds).delete_thing(thingName=thing)
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        data = client("iot-data", creds, port=PORTS[2])
        before = len(IOT_REQUESTS)
        data.update_thing_shadow(thingName=thing, payload=b'{"state":{"desired":{"a":1}}}')
        self.assertEqual(len(IOT_REQUESTS), before + 1)
        self.assertEqual(IOT_REQUESTS[-1]["path"], f"/things/{thing}/shadow")
        self.assertEqual(IOT_REQUESTS[-1]["body"], b'{"state":{"desired":{"a":1}}}')
        with self.assertRaises(ClientError) as ctx:  # a named shadow is thing/T/N
            data.get_thing_shadow(thingName=thing, shadowName="config")
        self.assertEqual(code_of(ctx), "ForbiddenException")
        self.assertIn(arn("iot", f"thing/{thing}/config"), ctx.exception.response["Error"]["Message"])
        with self.assertRaises(ClientError) as ctx:
            data.publish(topic=f"robots/{thing}/missions", payload=b"{}")
        self.assertEqual(code_of(ctx), "ForbiddenException")

    def test_unknown_condition_key_and_operator_are_refused_at_registration(self) -> None:
        status, body = admin("/_front/principals", {"arn": f"arn:aws:iam::{ACCOUNT}:role/x", "policies": [
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalTag/team": "a"}}}]}]})
        self.assertEqual(status, 400)
        self.assertIn("aws:PrincipalTag/team", body["error"])
        status, body = admin("/_front/principals", {"arn": f"arn:aws:iam::{ACCOUNT}:role/x", "policies": [
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringMatches": {"aws:SecureTransport": "a"}}}]}]})
        self.assertEqual(status, 400)
        self.assertIn("StringMatches", body["error"])
        status, body = admin("/_front/resource-policies", {"resourceArn": "arn:aws:s3:::b", "policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}})
        self.assertEqual(status, 400)
        self.assertIn("Principal", body["error"])
        status, body = admin("/_front/principals", {"arn": f"arn:aws:iam::{ACCOUNT}:role/x", "policies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]}]})
        self.assertEqual(status, 400)
        self.assertIn("Action", body["error"])


# ------------------------------------------------------------------------------------------
# implicit KMS
# ------------------------------------------------------------------------------------------


KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"


def use_key(*services: str, actions=("kms:GenerateDataKey", "kms:Decrypt")) -> dict:
    return {
        "Effect": "Allow", "Action": list(actions), "Resource": KEY_ARN,
        "Condition": {"StringEquals": {"kms:ViaService": [f"{s}.{REGION}.amazonaws.com" for s in services]}},
    }


class ImplicitKms(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        # The template's key policy: the account administers (delegation to IAM).
        status, body = admin("/_front/resource-policies", {"resourceArn": KEY_ARN, "policy": {"Version": "2012-10-17", "Statement": [
            {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Logs", "Effect": "Allow", "Principal": {"Service": f"logs.{REGION}.amazonaws.com"}, "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": arn("logs", "log-group:*")}}},
        ]}})
        assert status == 200, body
        cls.stream = uniq("enc-stream")
        dev_kinesis_stream(cls.stream)
        admin("/_front/encrypted", {"resourceArn": arn("kinesis", f"stream/{cls.stream}"), "keyArn": KEY_ARN})

    def test_kinesis_put_needs_generate_data_key_via_kinesis(self) -> None:
        put = {"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"], "Resource": arn("kinesis", f"stream/{self.stream}")}
        ok = client("kinesis", role(uniq("producer"), put, use_key("kinesis", "sqs")))
        ok.put_record(StreamName=self.stream, Data=b"x", PartitionKey="robot-1")
        ok.put_records(StreamName=self.stream, Records=[{"Data": b"y", "PartitionKey": "robot-1"}])
        wrong_service = client("kinesis", role(uniq("producer-sqs-only"), put, use_key("sqs")))
        with self.assertRaises(ClientError) as ctx:
            wrong_service.put_record(StreamName=self.stream, Data=b"x", PartitionKey="robot-1")
        self.assertEqual(code_of(ctx), "KMSAccessDeniedException")
        self.assertIn("kms:GenerateDataKey", ctx.exception.response["Error"]["Message"])
        no_key = client("kinesis", role(uniq("producer-no-key"), put))
        with self.assertRaises(ClientError) as ctx:
            no_key.put_records(StreamName=self.stream, Records=[{"Data": b"y", "PartitionKey": "robot-1"}])
        self.assertEqual(code_of(ctx), "KMSAccessDeniedException")

    def test_kinesis_get_records_needs_decrypt(self) -> None:
        read = {"Effect": "Allow", "Action": "kinesis:GetRecords", "Resource": arn("kinesis", f"stream/{self.stream}")}
        client("kinesis", role(uniq("consumer"), read, use_key("kinesis", actions=("kms:Decrypt",)))).get_records(ShardIterator=shard_iterator(self.stream))
        with self.assertRaises(ClientError) as ctx:
            client("kinesis", role(uniq("consumer-gdk"), read, use_key("kinesis", actions=("kms:GenerateDataKey",)))).get_records(ShardIterator=shard_iterator(self.stream))
        self.assertEqual(code_of(ctx), "KMSAccessDeniedException")

    def test_sqs_s3_and_dynamodb_kms_errors(self) -> None:
        queue = uniq("enc-queue")
        url = client("sqs", DEV).create_queue(QueueName=queue)["QueueUrl"]
        bucket = uniq("enc-bucket")
        client("s3", DEV).create_bucket(Bucket=bucket)
        table = uniq("enc-table")
        client("dynamodb", DEV).create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        for r in (arn("sqs", queue), f"arn:aws:s3:::{bucket}", arn("dynamodb", f"table/{table}")):
            admin("/_front/encrypted", {"resourceArn": r, "keyArn": KEY_ARN})
        grants = [
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn("sqs", queue)},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
            {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": arn("dynamodb", f"table/{table}")},
        ]
        good = role(uniq("all-good"), *grants, use_key("sqs", "s3", "dynamodb"))
        client("sqs", good).send_message(QueueUrl=url, MessageBody="m")
        client("s3", good).put_object(Bucket=bucket, Key="k", Body=b"1")
        client("dynamodb", good).put_item(TableName=table, Item={"pk": {"S": "1"}})
        bad = role(uniq("no-kms"), *grants)
        with self.assertRaises(ClientError) as ctx:
            client("sqs", bad).send_message(QueueUrl=url, MessageBody="m")
        self.assertEqual(code_of(ctx), "KMS.AccessDeniedException")
        self.assertEqual(ctx.exception.response["Error"]["QueryErrorCode"], "KmsAccessDenied")
        with self.assertRaises(ClientError) as ctx:
            client("s3", bad).put_object(Bucket=bucket, Key="k", Body=b"1")
        self.assertEqual(code_of(ctx), "AccessDenied")
        self.assertIn("kms:GenerateDataKey", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(ClientError) as ctx:
            client("dynamodb", bad).put_item(TableName=table, Item={"pk": {"S": "1"}})
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        self.assertIn("kms:Decrypt", ctx.exception.response["Error"]["Message"])

    def test_key_policy_without_account_delegation_refuses_iam_grants(self) -> None:
        key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/no-delegation"
        stream = uniq("strict-key-stream")
        dev_kinesis_stream(stream)
        admin("/_front/encrypted", {"resourceArn": arn("kinesis", f"stream/{stream}"), "keyArn": key})
        name = uniq("named-in-key")
        admin("/_front/resource-policies", {"resourceArn": key, "policy": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/{name}"}, "Action": "kms:GenerateDataKey", "Resource": "*"}]}})
        put = {"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": arn("kinesis", f"stream/{stream}")}
        iam_only = role(uniq("iam-granted"), put, {"Effect": "Allow", "Action": "kms:*", "Resource": "*"})
        with self.assertRaises(ClientError) as ctx:
            client("kinesis", iam_only).put_record(StreamName=stream, Data=b"x", PartitionKey="p")
        self.assertEqual(code_of(ctx), "KMSAccessDeniedException")
        self.assertIn("no resource-based policy allows", ctx.exception.response["Error"]["Message"])
        named = role(name, put)  # the key policy names this role: no IAM grant needed for the key
        client("kinesis", named).put_record(StreamName=stream, Data=b"x", PartitionKey="p")


# ------------------------------------------------------------------------------------------
# authentication
# ------------------------------------------------------------------------------------------


class Authentication(unittest.TestCase):
    def test_unknown_access_key(self) -> None:
        fake = {"accessKeyId": "AKIAUNKNOWNUNKNOWN00", "secretAccessKey": "x" * 40}
        with self.assertRaises(ClientError) as ctx:
            client("dynamodb", fake).list_tables()
        self.assertEqual(code_of(ctx), "UnrecognizedClientException")
        with self.assertRaises(ClientError) as ctx:
            client("s3", fake).list_buckets()
        self.assertEqual(code_of(ctx), "InvalidAccessKeyId")
        with self.assertRaises(ClientError) as ctx:
            client("sts", fake).get_caller_identity()
        self.assertEqual(code_of(ctx), "InvalidClientTokenId")
        with self.assertRaises(ClientError) as ctx:
            client("lambda", fake).list_functions()
        self.assertEqual(code_of(ctx), "UnrecognizedClientException")
        with self.assertRaises(ClientError) as ctx:
            client("sqs", fake).list_queues()
        self.assertEqual(code_of(ctx), "InvalidClientTokenId")

    def test_wrong_secret_and_wrong_or_missing_token(self) -> None:
        creds = role(uniq("sig"), {"Effect": "Allow", "Action": "*", "Resource": "*"})
        with self.assertRaises(ClientError) as ctx:
            client("dynamodb", {**creds, "secretAccessKey": "wrong"}).list_tables()
        self.assertEqual(code_of(ctx), "InvalidSignatureException")
        self.assertIn("The request signature we calculated does not match", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(ClientError) as ctx:
            client("kinesis", {**creds, "sessionToken": None}).list_streams()
        self.assertEqual(code_of(ctx), "UnrecognizedClientException")
        with self.assertRaises(ClientError) as ctx:
            client("kinesis", {**creds, "sessionToken": "bm9wZQ=="}).list_streams()
        self.assertEqual(code_of(ctx), "UnrecognizedClientException")
        with self.assertRaises(ClientError) as ctx:
            client("s3", {**creds, "secretAccessKey": "wrong"}).list_buckets()
        self.assertEqual(code_of(ctx), "SignatureDoesNotMatch")
        with self.assertRaises(ClientError) as ctx:
            client("iam", {**creds, "secretAccessKey": "wrong"}).list_roles()
        self.assertEqual(code_of(ctx), "SignatureDoesNotMatch")
        with self.assertRaises(ClientError) as ctx:
            client("sqs", {**creds, "secretAccessKey": "wrong"}).list_queues()
        self.assertEqual(code_of(ctx), "SignatureDoesNotMatch")

    def test_clock_skew(self) -> None:
        real = FRONT.clock
        FRONT.clock = lambda: time.time() + 16 * 60
        try:
            with self.assertRaises(ClientError) as ctx:
                client("dynamodb", DEV).list_tables()
            self.assertEqual(code_of(ctx), "InvalidSignatureException")
            self.assertIn("Signature expired", ctx.exception.response["Error"]["Message"])
            with self.assertRaises(ClientError) as ctx:
                client("s3", DEV).list_buckets()
            self.assertEqual(code_of(ctx), "RequestTimeTooSkewed")
        finally:
            FRONT.clock = real

    def test_unsigned_and_wrong_region(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", PORTS[0])
        conn.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        self.assertEqual(resp.status, 400)
        self.assertTrue(body["__type"].endswith("#MissingAuthenticationTokenException"), body)
        c = boto3.client("dynamodb", endpoint_url=aws_url(), region_name="eu-west-1", aws_access_key_id=DEV["accessKeyId"],
                         aws_secret_access_key=DEV["secretAccessKey"], config=Config(retries={"max_attempts": 1}))
        with self.assertRaises(ClientError) as ctx:
            c.list_tables()
        self.assertEqual(code_of(ctx), "InvalidSignatureException")


# ------------------------------------------------------------------------------------------
# OpenSearch port
# ------------------------------------------------------------------------------------------


class OpenSearch(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.indexer_name = uniq("shadow-indexer")
        cls.creds = role(cls.indexer_name, {"Effect": "Allow", "Action": ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"],
                                            "Resource": arn("es", "domain/robofleet/*")})
        cls.base = f"http://127.0.0.1:{PORTS[1]}"

    def test_signed_content_type_that_is_not_sent_is_refused(self) -> None:
        # Defect #2: content-type signed on a GET but not sent.
        req = signed_request(self.creds, "es", "GET", self.base + "/robots/_doc/r1", {"content-type": "application/json"})
        self.assertIn("content-type", req.headers["Authorization"])
        status, _, data = send(PORTS[1], req, drop=("content-type",))
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(data), {"message": (
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key "
            "and signing method. Consult the service documentation for details.")})

    def test_signed_get_and_head_pass(self) -> None:
        for method in ("GET", "HEAD"):
            req = signed_request(self.creds, "es", method, self.base + "/robots?pretty=true&x=a%20b", {})
            signed = req.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
            self.assertEqual(signed, "host;x-amz-date;x-amz-security-token")
            before = len(ES_REQUESTS)
            status, _, data = send(PORTS[1], req)
            self.assertEqual(status, 200, data)
            self.assertEqual(ES_REQUESTS[-1]["method"], method)
            self.assertEqual(ES_REQUESTS[-1]["path"], "/robots?pretty=true&x=a%20b")
            self.assertEqual(len(ES_REQUESTS), before + 1)

    def test_bulk_post_is_forwarded_byte_identical_and_delete_is_denied(self) -> None:
        body = b'{"index":{"_index":"robots-v1","_id":"r1","version":3,"version_type":"external"}}\n{"a":1}\n'
        req = signed_request(self.creds, "es", "POST", self.base + "/_bulk", {"content-type": "application/x-ndjson"}, body)
        status, _, data = send(PORTS[1], req)
        self.assertEqual(status, 200, data)
        self.assertEqual(ES_REQUESTS[-1]["body"], body)
        req = signed_request(self.creds, "es", "DELETE", self.base + "/robots-v1", {})
        status, _, data = send(PORTS[1], req)
        self.assertEqual(status, 403)
        msg = json.loads(data)["Message"]
        self.assertIn(f"is not authorized to perform: es:ESHttpDelete on resource: {arn('es', 'domain/robofleet/robots-v1')}", msg)

    def test_domain_access_policy_alone_allows(self) -> None:
        name = uniq("master-user")
        creds = register(f"arn:aws:iam::{ACCOUNT}:role/{name}", [])
        req = signed_request(creds, "es", "GET", self.base + "/_cluster/health", {})
        self.assertEqual(send(PORTS[1], req)[0], 403)
        admin("/_front/resource-policies", {"resourceArn": arn("es", "domain/robofleet"), "policy": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:role/{name}"]}, "Action": ["es:ESHttpGet"], "Resource": arn("es", "domain/robofleet/*")}]}})
        req = signed_request(creds, "es", "GET", self.base + "/_cluster/health", {})
        self.assertEqual(send(PORTS[1], req)[0], 200)

    def test_domain_policy_delegating_to_the_account(self) -> None:
        # The template's access policy: the account principal, es:ESHttp*: IAM policies decide.
        domain = arn("es", "domain/robofleet")
        admin("/_front/resource-policies", {"resourceArn": domain, "policy": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "es:ESHttp*", "Resource": f"{domain}/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "es:ESHttpPatch", "Resource": f"{domain}/*"}]}})
        try:
            nobody = register(f"arn:aws:iam::{ACCOUNT}:role/{uniq('no-es')}", [])
            self.assertEqual(send(PORTS[1], signed_request(nobody, "es", "GET", self.base + "/robots", {}))[0], 403)
            self.assertEqual(send(PORTS[1], signed_request(self.creds, "es", "GET", self.base + "/robots", {}))[0], 200)
            everything = register(f"arn:aws:iam::{ACCOUNT}:role/{uniq('es-admin')}", [ALLOW_ALL])
            status, _, data = send(PORTS[1], signed_request(everything, "es", "PATCH", self.base + "/robots", {}, b"{}"))
            self.assertEqual(status, 403)
            self.assertIn("with an explicit deny in a resource-based policy", json.loads(data)["Message"])
        finally:
            self.assertEqual(admin("/_front/resource-policies", {"resourceArn": domain, "policy": None})[0], 200)

    def test_size_limit_wrong_service_and_unreachable_backend(self) -> None:
        big = b"x" * (10 * MIB + 1)
        req = signed_request(self.creds, "es", "POST", self.base + "/_bulk", {"content-type": "application/x-ndjson"}, big)
        status, _, data = send(PORTS[1], req)
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(data), {"Message": "Request size exceeded 10485760 bytes"})
        req = signed_request(self.creds, "dynamodb", "GET", self.base + "/", {})
        status, _, data = send(PORTS[1], req)
        self.assertEqual(status, 403)
        self.assertIn("Credential should be scoped to correct service: 'es'", json.loads(data)["message"])
        old = startup_endpoint("opensearch")["backend"]
        dead = socket_port()
        status, body = admin("/_front/opensearch", {"backend": f"http://127.0.0.1:{dead}"})
        self.assertEqual((status, body["url"], body["domainArn"]), (200, self.base, arn("es", "domain/robofleet")))
        try:
            req = signed_request(self.creds, "es", "GET", self.base + "/", {})
            self.assertEqual(send(PORTS[1], req)[0], 502)
        finally:
            admin("/_front/opensearch", {"backend": old})
        req = signed_request(self.creds, "es", "GET", self.base + "/", {})
        self.assertEqual(send(PORTS[1], req)[0], 200)

    def test_iot_backend_unreachable_is_service_unavailable(self) -> None:
        old = startup_endpoint("iot")["backend"]
        status, body = admin("/_front/iot", {"backend": f"http://127.0.0.1:{socket_port()}"})
        self.assertEqual((status, body["url"]), (200, f"http://127.0.0.1:{PORTS[2]}"))
        try:
            with self.assertRaises(ClientError) as ctx:
                client("iot-data", DEV, port=PORTS[2]).get_thing_shadow(thingName="r1")
            self.assertEqual(code_of(ctx), "ServiceUnavailableException")
        finally:
            admin("/_front/iot", {"backend": old})


def startup_endpoint(kind: str) -> dict:
    status, endpoints = admin("/_front/endpoints")
    assert status == 200, endpoints
    return next(e for e in endpoints if e["kind"] == kind and e["startup"])


def socket_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------------------------------
# endpoints opened at run time: one per OpenSearch domain, one IoT data endpoint per stack
# ------------------------------------------------------------------------------------------


def _labelled_stub(label: str) -> str:
    """A backend that answers every request with {"backend": label, "path": ...}; returns its URL."""

    class Labelled(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            payload = json.dumps({"backend": label, "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Labelled)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    STUBS.append(server)
    return f"http://127.0.0.1:{server.server_address[1]}"


def _port(url: str) -> int:
    return urllib.parse.urlsplit(url).port


def _refused(url: str) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", _port(url)), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


class Endpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.one, cls.two = _labelled_stub("one"), _labelled_stub("two")

    def open_domain(self, name: str, backend: str | None = None) -> str:
        doc = {"domainArn": arn("es", f"domain/{name}")}
        if backend:
            doc["backend"] = backend
        status, body = admin("/_front/opensearch", doc)
        self.assertEqual(status, 200, body)
        self.assertEqual((body["ok"], body["domainArn"]), (True, doc["domainArn"]))
        self.addCleanup(admin, "/_front/close", {"url": body["url"]})
        return body["url"]

    def es_get(self, creds: dict, url: str, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[int, dict]:
        req = signed_request(creds, "es", "GET", url + path, {})
        if conn is None:
            status, _, data = send(_port(url), req)
            return status, json.loads(data)
        conn.request("GET", path, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())

    def test_an_iot_endpoint_without_a_backend_is_motos_data_plane(self) -> None:
        status, body = admin("/_front/iot", {"name": uniq("stack"), "backend": None})
        self.assertEqual((status, body["backend"]), (200, None), body)
        self.addCleanup(admin, "/_front/close", {"url": body["url"]})
        port, thing = _port(body["url"]), uniq("robot")
        client("iot", DEV).create_thing(thingName=thing)  # moto's data plane knows its things
        data = client("iot-data", DEV, port=port)
        data.update_thing_shadow(thingName=thing, payload=b'{"state":{"desired":{"mode":"eco"}}}')
        doc = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
        self.assertEqual(doc["state"]["desired"], {"mode": "eco"})
        with self.assertRaises(ClientError) as ctx:  # still authorized like any other endpoint
            client("iot-data", role(uniq("no-iot")), port=port).get_thing_shadow(thingName=thing)
        self.assertEqual(code_of(ctx), "ForbiddenException")

    def test_an_authorized_invoke_goes_to_the_functions_invoke_api(self) -> None:
        log: list[dict] = []
        stub = _stub(log)
        fn = arn("lambda", f"function:{uniq('worker')}")
        status, body = admin("/_front/lambda", {"functionArns": [fn], "backend": f"http://127.0.0.1:{stub.server_address[1]}"})
        self.assertEqual(status, 200, body)
        self.addCleanup(admin, "/_front/lambda", {"functionArns": [fn], "backend": None})
        machine = role(uniq("machine"), {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": [fn, f"{fn}:*"]})
        out = client("lambda", machine).invoke(FunctionName=f"{fn}:live", Payload=b'{"jobId":"j"}')
        self.assertEqual(out["StatusCode"], 200)
        self.assertEqual(json.loads(out["Payload"].read())["path"], f"/2015-03-31/functions/{urllib.parse.quote(fn + ':live', safe='')}/invocations")
        self.assertEqual(log[-1]["body"], b'{"jobId":"j"}')
        other = arn("lambda", "function:not-granted")
        admin("/_front/lambda", {"functionArns": [other], "backend": f"http://127.0.0.1:{stub.server_address[1]}"})
        self.addCleanup(admin, "/_front/lambda", {"functionArns": [other], "backend": None})
        with self.assertRaises(ClientError) as ctx:
            client("lambda", machine).invoke(FunctionName=other, Payload=b"{}")
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        self.assertEqual(len(log), 1, "a refused invoke never reaches the function")
        status, body = admin("/_front/lambda", {"functionArns": ["arn:aws:lambda:eu-west-1:1:function:x"], "backend": "http://x"})
        self.assertEqual(status, 400)
        self.assertIn("not an unqualified function ARN", body["error"])

    def test_an_authorized_step_functions_call_goes_to_the_stacks_runner(self) -> None:
        log: list[dict] = []
        stub = _stub(log)
        machine = arn("states", f"stateMachine:{uniq('job-loop')}")
        status, body = admin("/_front/states", {"stateMachineArns": [machine], "backend": f"http://127.0.0.1:{stub.server_address[1]}"})
        self.assertEqual(status, 200, body)
        self.addCleanup(admin, "/_front/states", {"stateMachineArns": [machine], "backend": None})
        execution = machine.replace(":stateMachine:", ":execution:") + ":job-1-0"
        api = role(uniq("api"), {"Effect": "Allow", "Action": "states:StartExecution", "Resource": machine})
        sfn = client("stepfunctions", api)
        sfn.start_execution(stateMachineArn=machine, name="job-1-0", input='{"jobId":"job-1"}')
        self.assertEqual(len(log), 1)
        self.assertEqual({k.lower(): v for k, v in log[0]["headers"].items()}["x-amz-target"], "AWSStepFunctions.StartExecution")
        self.assertEqual(json.loads(log[0]["body"])["name"], "job-1-0")
        # Not granted: DescribeExecution on its executions, another machine.
        with self.assertRaises(ClientError) as ctx:
            sfn.describe_execution(executionArn=execution)
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        self.assertIn("states:DescribeExecution", str(ctx.exception))
        with self.assertRaises(ClientError) as ctx:
            sfn.start_execution(stateMachineArn=machine + "x", input="{}")
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        # Refused as Step Functions refuses, before anything runs.
        for kwargs, code in [
            ({"name": "no spaces"}, "InvalidName"),
            ({"input": "{not json"}, "InvalidExecutionInput"),
            ({"input": json.dumps({"x": "a" * 262_144})}, "ValidationException"),
        ]:
            with self.assertRaises(ClientError) as ctx:
                sfn.start_execution(stateMachineArn=machine, **kwargs)
            self.assertEqual(code_of(ctx), code, kwargs)
        with self.assertRaises(ClientError) as ctx:
            sfn.start_execution(stateMachineArn="arn:aws:states:us-east-1:1:machine", input="{}")
        self.assertEqual(code_of(ctx), "InvalidArn")
        # What the runner does not serve is refused by name.
        with self.assertRaises(ClientError) as ctx:
            client("stepfunctions", DEV).stop_execution(executionArn=execution)
        self.assertEqual(code_of(ctx), "FrontUnsupportedOperation")
        self.assertEqual(len(log), 1, "a refused call never reaches the runner")
        reader = role(uniq("reader"), {"Effect": "Allow", "Action": ["states:DescribeExecution"], "Resource": f"{machine.replace(':stateMachine:', ':execution:')}:*"},
                      {"Effect": "Allow", "Action": "states:ListExecutions", "Resource": machine})
        client("stepfunctions", reader).describe_execution(executionArn=execution)
        client("stepfunctions", reader).list_executions(stateMachineArn=machine)
        self.assertEqual([json.loads(r["body"]).get("executionArn", json.loads(r["body"]).get("stateMachineArn")) for r in log[1:]], [execution, machine])
        status, body = admin("/_front/states", {"stateMachineArns": ["arn:aws:states:eu-west-1:1:stateMachine:x"], "backend": "http://x"})
        self.assertEqual(status, 400)
        self.assertIn("not an unqualified state machine ARN", body["error"])

    def test_an_http_api_routes_checks_sigv4_and_execute_api_invoke_then_calls_the_function(self) -> None:
        events: list[dict] = []

        class Functions(BaseHTTPRequestHandler):  # a local stack's Invoke API
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                ev = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                events.append(ev)
                if ev["rawPath"].endswith("/boom"):
                    out, extra = {"errorType": "Panic", "errorMessage": "boom"}, [("X-Amz-Function-Error", "Unhandled")]
                else:
                    out, extra = {"statusCode": 201, "headers": {"content-type": "application/json"}, "body": json.dumps({"ok": True})}, []
                data = json.dumps(out).encode()
                self.send_response(200)
                for k, v in [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *extra]:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Functions)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        STUBS.append(server)
        fn = arn("lambda", "function:fleet-api")
        api_id = uuid.uuid4().hex[:10]
        status, body = admin("/_front/execute-api", {"apiId": api_id, "backend": f"http://127.0.0.1:{server.server_address[1]}", "routes": [
            {"routeKey": "GET /robots/{id}", "functionArn": fn},
            {"routeKey": "POST /robots/{id}/commands", "functionArn": fn, "timeoutMs": 5000},
            {"routeKey": "GET /robots/{id}/boom", "functionArn": fn},
        ]})
        self.assertEqual(status, 200, body)
        url = body["url"]
        self.addCleanup(admin, "/_front/close", {"url": url})
        port = _port(url)
        reader = role(uniq("api-reader"), {"Effect": "Allow", "Action": "execute-api:Invoke",
                                           "Resource": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/$default/GET/robots/*"})
        # Route selection comes first: no route is 404 even unsigned; a route needs a signature.
        for req in (AWSRequest(method="GET", url=url + "/nowhere"), signed_request(reader, "execute-api", "GET", url + "/robots", {})):
            self.assertEqual(send(port, req)[0::2], (404, b'{"message": "Not Found"}'))
        self.assertEqual(send(port, AWSRequest(method="GET", url=url + "/robots/rb-1"))[0::2], (403, b'{"message": "Forbidden"}'))
        st, _, data = send(port, signed_request(reader, "es", "GET", url + "/robots/rb-1", {}))
        self.assertEqual(st, 403)
        self.assertIn("execute-api", json.loads(data)["message"])
        # Allowed: the function gets a payload format 2.0 event and its answer is the response.
        st, hdrs, data = send(port, signed_request(reader, "execute-api", "GET", url + "/robots/rb-1?x=1&x=2&y=", {}))
        self.assertEqual((st, json.loads(data)), (201, {"ok": True}), data)
        ev = events[-1]
        self.assertEqual((ev["version"], ev["routeKey"], ev["rawPath"]), ("2.0", "GET /robots/{id}", "/robots/rb-1"))
        self.assertEqual(ev["pathParameters"], {"id": "rb-1"})
        self.assertEqual(ev["queryStringParameters"], {"x": "1,2", "y": ""})
        self.assertEqual(ev["requestContext"]["stage"], "$default")
        self.assertEqual(ev["requestContext"]["apiId"], api_id)
        self.assertTrue(ev["requestContext"]["authorizer"]["iam"]["userArn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/api-reader-"))
        # Another route needs its own permission; a refused request never reaches the function.
        before = len(events)
        st, _, data = send(port, signed_request(reader, "execute-api", "POST", url + "/robots/rb-1/commands", {"content-type": "application/json"}, b"{}"))
        self.assertEqual(st, 403)
        self.assertIn(f"is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/$default/POST/robots/rb-1/commands", json.loads(data)["message"])
        self.assertEqual(len(events), before)
        # A function error is API Gateway's 500.
        st, _, data = send(port, signed_request(reader, "execute-api", "GET", url + "/robots/rb-1/boom", {}))
        self.assertEqual((st, data), (500, b'{"message": "Internal Server Error"}'))
        # Registrations the front cannot serve faithfully are refused by name.
        for bad, why in (
            ({"apiId": "UPPER", "backend": "http://x", "routes": [{"routeKey": "GET /", "functionArn": fn}]}, "apiId"),
            ({"apiId": api_id, "backend": "http://x", "routes": [{"routeKey": "GET /", "functionArn": fn, "authorization": "NONE"}]}, "AWS_IAM routes only"),
            ({"apiId": api_id, "backend": "http://x", "routes": [{"routeKey": "GET /", "functionArn": fn, "timeoutMs": 31000}]}, "timeoutMs"),
        ):
            status, body = admin("/_front/execute-api", bad)
            self.assertEqual(status, 400)
            self.assertIn(why, body["error"])

    def test_two_domains_get_two_urls_and_the_policy_follows_the_domain(self) -> None:
        a, b = uniq("dom-a"), uniq("dom-b")
        url_a = self.open_domain(a, self.one)
        url_b = self.open_domain(b)  # no backend: the front's default (the startup port's)
        self.assertEqual(len({url_a, url_b, f"http://127.0.0.1:{PORTS[1]}"}), 3)
        creds = role(uniq("indexer-a"), {"Effect": "Allow", "Action": "es:ESHttp*", "Resource": arn("es", f"domain/{a}/*")})
        self.assertEqual(self.es_get(creds, url_a, "/robots/_doc/r1"), (200, {"backend": "one", "path": "/robots/_doc/r1"}))
        status, body = self.es_get(creds, url_b, "/robots/_doc/r1")
        self.assertEqual(status, 403)
        self.assertEqual(list(body), ["Message"])
        self.assertIn(f"is not authorized to perform: es:ESHttpGet on resource: {arn('es', f'domain/{b}/robots/_doc/r1')}", body["Message"])
        status, _ = self.es_get(creds, f"http://127.0.0.1:{PORTS[1]}", "/robots")  # nor on the startup domain
        self.assertEqual(status, 403)
        both = role(uniq("indexer-ab"), {"Effect": "Allow", "Action": "es:ESHttpGet", "Resource": arn("es", f"domain/{b}/*")})
        before = len(ES_REQUESTS)
        self.assertEqual(self.es_get(both, url_b, "/robots")[0], 200)
        self.assertEqual(len(ES_REQUESTS), before + 1)  # B went to the default backend
        # The same checks as on the startup port: a signature for another service, the size limit.
        req = signed_request(creds, "iotdata", "GET", url_a + "/", {})
        self.assertEqual(send(_port(url_a), req)[0], 403)
        req = signed_request(creds, "es", "POST", url_a + "/_bulk", {"content-type": "application/x-ndjson"}, b"x" * (10 * MIB + 1))
        self.assertEqual(send(_port(url_a), req)[0], 413)

    def test_reregistering_a_domain_repoints_its_url(self) -> None:
        name = uniq("replaced")
        creds = role(uniq("indexer"), {"Effect": "Allow", "Action": "es:ESHttpGet", "Resource": arn("es", f"domain/{name}/*")})
        url = self.open_domain(name, self.one)
        conn = http.client.HTTPConnection("127.0.0.1", _port(url), timeout=30)  # kept alive across the switch
        self.assertEqual(self.es_get(creds, url, "/x", conn)[1]["backend"], "one")
        self.assertEqual(self.open_domain(name, self.two), url)
        self.assertEqual(self.es_get(creds, url, "/x", conn)[1]["backend"], "two")
        self.assertEqual(self.es_get(creds, url, "/x")[1]["backend"], "two")
        conn.close()
        # The startup domain's ARN re-points the startup port.
        startup = startup_endpoint("opensearch")
        status, body = admin("/_front/opensearch", {"domainArn": startup["domainArn"], "backend": self.two})
        try:
            self.assertEqual((status, body["url"]), (200, startup["url"]))
            robofleet = role(uniq("robofleet-reader"), {"Effect": "Allow", "Action": "es:ESHttpGet", "Resource": arn("es", "domain/robofleet/*")})
            self.assertEqual(self.es_get(robofleet, startup["url"], "/y")[1]["backend"], "two")
        finally:
            admin("/_front/opensearch", {"backend": startup["backend"]})

    def test_iot_endpoints_by_name_repointing_and_close(self) -> None:
        s1, s2 = uniq("stack"), uniq("stack")
        urls = {}
        for name, backend in ((s1, self.one), (s2, self.two)):
            status, body = admin("/_front/iot", {"name": name, "backend": backend})
            self.assertEqual((status, body["ok"], body["name"]), (200, True, name))
            urls[name] = body["url"]
        self.assertNotEqual(urls[s1], urls[s2])
        self.assertNotIn(f":{PORTS[2]}", urls[s1] + urls[s2])

        def shadow(url: str) -> dict:
            return json.loads(client("iot-data", DEV, port=_port(url)).get_thing_shadow(thingName="r1")["payload"].read())

        self.assertEqual(shadow(urls[s1]), {"backend": "one", "path": "/things/r1/shadow"})
        self.assertEqual(shadow(urls[s2])["backend"], "two")
        status, body = admin("/_front/iot", {"name": s1, "backend": self.two})
        self.assertEqual((status, body["url"]), (200, urls[s1]))
        self.assertEqual(shadow(urls[s1])["backend"], "two")
        with self.assertRaises(ClientError) as ctx:  # IAM as on the startup port
            client("iot-data", role(uniq("no-iot")), port=_port(urls[s1])).get_thing_shadow(thingName="r1")
        self.assertEqual(code_of(ctx), "ForbiddenException")

        kept = http.client.HTTPConnection("127.0.0.1", _port(urls[s1]), timeout=30)
        req = signed_request(DEV, "iotdata", "GET", urls[s1] + "/things/r1/shadow", {})
        kept.request("GET", "/things/r1/shadow", headers=dict(req.headers.items()))
        self.assertEqual(kept.getresponse().read() and 200, 200)
        self.assertEqual(admin("/_front/close", {"url": urls[s1]}), (200, {"ok": True}))
        self.assertTrue(_refused(urls[s1]))
        with self.assertRaises((OSError, http.client.HTTPException)):  # its open connections are closed too
            kept.request("GET", "/things/r1/shadow", headers=dict(req.headers.items()))
            kept.getresponse().read()
        kept.close()
        self.assertEqual(shadow(urls[s2])["backend"], "two")  # the other stack's endpoint is untouched
        status, body = admin("/_front/close", {"url": urls[s1]})
        self.assertEqual(status, 400)
        self.assertIn("no endpoint", body["error"])
        for port in PORTS:
            status, body = admin("/_front/close", {"url": f"http://127.0.0.1:{port}"})
            self.assertEqual(status, 400, port)
            self.assertIn("cannot be closed", body["error"])
        self.assertFalse(_refused(f"http://127.0.0.1:{PORTS[2]}"))
        # A name opened again gets a new port.
        status, body = admin("/_front/iot", {"name": s1, "backend": self.one})
        self.assertEqual(status, 200)
        self.addCleanup(admin, "/_front/close", {"url": body["url"]})
        self.assertEqual(shadow(body["url"])["backend"], "one")
        self.assertEqual(admin("/_front/close", {"url": urls[s2]}), (200, {"ok": True}))

    def test_endpoints_lists_startup_and_run_time_endpoints(self) -> None:
        name = uniq("listed")
        url = self.open_domain(name, self.one)
        stack = uniq("stack")
        status, body = admin("/_front/iot", {"name": stack, "backend": self.two})
        self.addCleanup(admin, "/_front/close", {"url": body["url"]})
        status, endpoints = admin("/_front/endpoints")
        self.assertEqual(status, 200)
        self.assertIn({"kind": "opensearch", "url": f"http://127.0.0.1:{PORTS[1]}", "domainArn": arn("es", "domain/robofleet"),
                       "backend": startup_endpoint("opensearch")["backend"], "startup": True}, endpoints)
        self.assertIn({"kind": "iot", "url": f"http://127.0.0.1:{PORTS[2]}", "name": None,
                       "backend": startup_endpoint("iot")["backend"], "startup": True}, endpoints)
        self.assertIn({"kind": "opensearch", "url": url, "domainArn": arn("es", f"domain/{name}"), "backend": self.one, "startup": False}, endpoints)
        self.assertIn({"kind": "iot", "url": body["url"], "name": stack, "backend": self.two, "startup": False}, endpoints)

    def test_bad_registrations_name_the_problem(self) -> None:
        for doc, words in (
            ({"domainArn": f"arn:aws:es:eu-west-1:{ACCOUNT}:domain/robofleet"}, "region and account"),
            ({"domainArn": "arn:aws:es:us-east-1:210987654321:domain/robofleet"}, "region and account"),
            ({"domainArn": arn("es", "domain/Upper_Case")}, "invalid domain name"),
            ({"domainArn": arn("dynamodb", "table/t")}, "domainArn must look like"),
            ({"domainArn": arn("es", "domain/fine"), "backend": "https://x"}, "backend must be an http:// URL"),
        ):
            status, body = admin("/_front/opensearch", doc)
            self.assertEqual(status, 400, doc)
            self.assertIn(words, body["error"])
        status, body = admin("/_front/iot", {"name": "a b", "backend": self.one})
        self.assertEqual(status, 400)
        self.assertIn("name must be", body["error"])
        status, body = admin("/_front/iot", {"name": uniq("s")})
        self.assertEqual(status, 400)
        self.assertIn("backend must be", body["error"])
        # Without --opensearch-backend, a domain registered without a backend has none to go to.
        bare = aws_front.Front(region=REGION, account=ACCOUNT, moto_app=object())
        with self.assertRaises(P.PolicyError) as ctx:
            bare.opensearch_endpoint(arn("es", "domain/other"), None)
        self.assertIn("no backend", str(ctx.exception))


# ------------------------------------------------------------------------------------------
# sizes
# ------------------------------------------------------------------------------------------


class Sizes(unittest.TestCase):
    def test_kinesis_record_of_one_mib_passes_and_one_byte_more_is_refused(self) -> None:
        stream = uniq("big-records")
        dev_kinesis_stream(stream)
        k = client("kinesis", DEV)
        k.put_record(StreamName=stream, Data=b"a" * MIB, PartitionKey="p")
        with self.assertRaises(ClientError) as ctx:
            k.put_record(StreamName=stream, Data=b"a" * (MIB + 1), PartitionKey="p")
        self.assertEqual(code_of(ctx), "ValidationException")
        with self.assertRaises(ClientError) as ctx:
            k.put_records(StreamName=stream, Records=[{"Data": b"a" * (MIB + 1), "PartitionKey": "p"}])
        self.assertEqual(code_of(ctx), "ValidationException")
        with self.assertRaises(ClientError) as ctx:
            k.put_records(StreamName=stream, Records=[{"Data": b"a" * MIB, "PartitionKey": "p"}] * 5 + [{"Data": b"a", "PartitionKey": "p"}])
        self.assertEqual(code_of(ctx), "InvalidArgumentException")
        with self.assertRaises(ClientError) as ctx:
            k.put_records(StreamName=stream, Records=[{"Data": b"a", "PartitionKey": "p"}] * 501)
        self.assertEqual(code_of(ctx), "ValidationException")

    def test_sqs_message_over_one_mib_is_refused(self) -> None:
        url = client("sqs", DEV).create_queue(QueueName=uniq("big"))["QueueUrl"]
        sqs = client("sqs", DEV)
        with self.assertRaises(ClientError) as ctx:
            sqs.send_message(QueueUrl=url, MessageBody="a" * (MIB + 1))
        self.assertEqual(code_of(ctx), "InvalidParameterValue")
        with self.assertRaises(ClientError) as ctx:  # attributes count
            sqs.send_message(QueueUrl=url, MessageBody="a" * (MIB - 10), MessageAttributes={"kind": {"DataType": "String", "StringValue": "x" * 10}})
        self.assertEqual(code_of(ctx), "InvalidParameterValue")
        with self.assertRaises(ClientError) as ctx:
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "a" * (MIB // 2)}, {"Id": "2", "MessageBody": "a" * (MIB // 2 + 1)}])
        self.assertEqual(code_of(ctx), "AWS.SimpleQueueService.BatchRequestTooLong")
        self.assertEqual(ctx.exception.response["Error"]["QueryErrorCode"], "BatchRequestTooLong")

    def test_dynamodb_item_over_400_kb_is_refused(self) -> None:
        table = uniq("big-items")
        d = client("dynamodb", DEV)
        d.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        # moto itself refuses items above 405,000 bytes; AWS (and the front) above 409,600.
        d.put_item(TableName=table, Item={"pk": {"S": "ok"}, "d": {"S": "a" * 400_000}})
        with self.assertRaises(ClientError) as ctx:
            d.put_item(TableName=table, Item={"pk": {"S": "big"}, "d": {"S": "a" * (400 * 1024)}})
        self.assertEqual(code_of(ctx), "ValidationException")
        self.assertIn("Item size has exceeded the maximum allowed size", ctx.exception.response["Error"]["Message"])
        self.assertEqual(FRONT.stats.snapshot()["by_service"]["dynamodb"]["size_refusals"] > 0, True)
        from aws_front.services import ddb_item_size

        self.assertEqual(ddb_item_size({"pk": {"S": "big"}, "d": {"S": "a" * (400 * 1024 - 6)}}), 400 * 1024)
        self.assertEqual(ddb_item_size({"n": {"N": "123.45"}, "l": {"L": [{"BOOL": True}, {"NULL": True}]}, "b": {"B": "AAAA"}}),
                         1 + 4 + 1 + (3 + 2 + 2) + 1 + 3)

    def test_lambda_invoke_over_6_mib_is_refused(self) -> None:
        with self.assertRaises(ClientError) as ctx:
            client("lambda", DEV).invoke(FunctionName="any", Payload=b"a" * (6 * MIB + 1))
        self.assertEqual(code_of(ctx), "RequestTooLargeException")
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 413)

    def test_size_refusal_comes_after_authorization(self) -> None:
        stream = uniq("authz-first")
        dev_kinesis_stream(stream)
        nobody = role(uniq("nobody"))
        with self.assertRaises(ClientError) as ctx:
            client("kinesis", nobody).put_record(StreamName=stream, Data=b"a" * (MIB + 1), PartitionKey="p")
        self.assertEqual(code_of(ctx), "AccessDeniedException")


# ------------------------------------------------------------------------------------------
# rules and APIs the front adds to moto (extensions.py)
# ------------------------------------------------------------------------------------------


def moto_stream(name: str):
    from moto.kinesis.models import kinesis_backends

    return kinesis_backends[ACCOUNT][REGION].streams[name]


def open_shards(name: str) -> int:
    shards = client("kinesis", DEV, retry=False).list_shards(StreamName=name)["Shards"]
    return len([s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]])


def scaling(stream_arn: str) -> dict:
    status, doc = admin("/_front/kinesis/scaling?stream=" + urllib.parse.quote(stream_arn, safe=""))
    assert status == 200, doc
    return doc


def message_of(ctx) -> str:
    return ctx.exception.response["Error"]["Message"]


class KinesisScaling(unittest.TestCase):
    def test_allowed_targets_end_with_exactly_the_target_open_shards(self) -> None:
        k = client("kinesis", DEV, retry=False)
        for current, target in ((2, 4), (4, 2), (3, 5), (5, 3), (3, 2)):
            name = uniq("scale")
            k.create_stream(StreamName=name, ShardCount=current)
            out = k.update_shard_count(StreamName=name, TargetShardCount=target, ScalingType="UNIFORM_SCALING")
            out.pop("ResponseMetadata")
            self.assertEqual(out, {"StreamName": name, "CurrentShardCount": current, "TargetShardCount": target,
                                   "StreamARN": arn("kinesis", f"stream/{name}")})
            self.assertEqual(open_shards(name), target, (current, target))
            self.assertEqual(k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"], target)
            self.assertEqual(len(scaling(arn("kinesis", f"stream/{name}"))["calls"]), 1)
        # Were moto to miss the target, the front splits or merges in moto's backend until it is met.
        from moto.kinesis.models import Stream

        name = uniq("scale")
        k.create_stream(StreamName=name, ShardCount=3)
        saved = Stream.update_shard_count
        Stream.update_shard_count = lambda self, target: None
        try:
            for target in (6, 4, 2):
                k.update_shard_count(StreamName=name, TargetShardCount=target, ScalingType="UNIFORM_SCALING")
                self.assertEqual(open_shards(name), target)
        finally:
            Stream.update_shard_count = saved

    def test_refusals_are_aws_errors_and_do_not_count(self) -> None:
        k = client("kinesis", DEV, retry=False)
        two, five, od = uniq("two"), uniq("five"), uniq("od")
        k.create_stream(StreamName=two, ShardCount=2)
        k.create_stream(StreamName=five, ShardCount=5)
        k.create_stream(StreamName=od, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        cases = [
            (two, 5, "UNIFORM_SCALING", "LimitExceededException",
             "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: 2, Target shard count: 5"),
            (five, 2, "UNIFORM_SCALING", "LimitExceededException",
             "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: 5, Target shard count: 2"),
            (two, 3, "OTHER_SCALING", "ValidationException", "Member must satisfy enum value set: [UNIFORM_SCALING]"),
            (od, 8, "UNIFORM_SCALING", "ValidationException", f"Stream {od} under account {ACCOUNT} is in On-Demand mode."),
            (uniq("missing"), 2, "UNIFORM_SCALING", "ResourceNotFoundException", "not found."),
        ]
        for name, target, scaling_type, code, message in cases:
            with self.assertRaises(ClientError, msg=(name, target)) as ctx:
                k.update_shard_count(StreamName=name, TargetShardCount=target, ScalingType=scaling_type)
            self.assertEqual(code_of(ctx), code, message_of(ctx))
            self.assertIn(message, message_of(ctx))
        moto_stream(two).status = "UPDATING"
        try:
            with self.assertRaises(ClientError) as ctx:
                k.update_shard_count(StreamName=two, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
            self.assertEqual(code_of(ctx), "ResourceInUseException")
            self.assertEqual(message_of(ctx), f"Stream {two} under account {ACCOUNT} not ACTIVE, instead in state UPDATING")
        finally:
            moto_stream(two).status = "ACTIVE"
        self.assertEqual(open_shards(two), 2)
        self.assertEqual(scaling(arn("kinesis", f"stream/{two}"))["calls"], [])
        # Authorization comes first: a principal without the grant is denied, whatever the target.
        creds = role(uniq("scaler"), {"Effect": "Allow", "Action": "kinesis:UpdateShardCount", "Resource": arn("kinesis", f"stream/{five}")})
        with self.assertRaises(ClientError) as ctx:
            client("kinesis", creds, retry=False).update_shard_count(StreamName=two, TargetShardCount=8, ScalingType="UNIFORM_SCALING")
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        client("kinesis", creds, retry=False).update_shard_count(StreamName=five, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
        self.assertEqual(open_shards(five), 3)

    def test_ten_successful_calls_per_rolling_24_hours(self) -> None:
        k = client("kinesis", DEV, retry=False)
        name = uniq("budget")
        stream_arn = arn("kinesis", f"stream/{name}")
        k.create_stream(StreamName=name, ShardCount=2)
        now = time.time()
        seeded = [now - 86400 - 60] + [now - 3600 * i for i in range(1, 10)]  # one fell out of the window
        status, doc = admin("/_front/kinesis/scaling", {"streamArn": stream_arn, "calls": seeded})
        self.assertEqual(status, 200, doc)
        self.assertEqual(len(doc["calls"]), 9)
        k.update_shard_count(StreamARN=stream_arn, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
        calls = scaling(stream_arn)["calls"]
        self.assertEqual(len(calls), 10)
        self.assertAlmostEqual(calls[-1], time.time(), delta=5)
        with self.assertRaises(ClientError) as ctx:
            k.update_shard_count(StreamARN=stream_arn, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
        self.assertEqual(code_of(ctx), "LimitExceededException")
        self.assertIn("rolling 24-hour period", message_of(ctx))
        self.assertEqual(len(scaling(stream_arn)["calls"]), 10)
        self.assertEqual(open_shards(name), 3)
        # Bad admin requests name the problem.
        self.assertEqual(admin("/_front/kinesis/scaling", {"calls": [now]})[0], 400)
        self.assertEqual(admin("/_front/kinesis/scaling", {"streamArn": "arn:aws:kinesis:eu-west-1:1:stream/x"})[0], 400)
        self.assertEqual(admin("/_front/kinesis/scaling", {"shardLimit": 0})[0], 400)
        self.assertEqual(admin("/_front/kinesis/scaling?stream=nope")[0], 400)

    def test_account_shard_limit_and_10000_shards_per_stream(self) -> None:
        k = client("kinesis", DEV, retry=False)
        default = admin("/_front/kinesis/scaling", {})[1]["shardLimit"]
        self.assertEqual(default, 20000)  # us-east-1
        name, big = uniq("limit"), uniq("big")
        k.create_stream(StreamName=name, ShardCount=2)
        limits = k.describe_limits()
        self.assertEqual(limits["ShardLimit"], 20000)
        used = limits["OpenShardCount"]
        try:
            self.assertEqual(admin("/_front/kinesis/scaling", {"shardLimit": used + 1}), (200, {"shardLimit": used + 1}))
            with self.assertRaises(ClientError) as ctx:
                k.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
            self.assertEqual(code_of(ctx), "LimitExceededException")
            self.assertEqual(message_of(ctx), f"This request would exceed the shard limit for the account {ACCOUNT} in {REGION}. "
                             f"Current shard count for the account: {used}. Limit: {used + 1}. "
                             "Number of additional shards that would have resulted from this request: 2.")
            with self.assertRaises(ClientError) as ctx:
                k.create_stream(StreamName=uniq("more"), ShardCount=2)
            self.assertEqual(code_of(ctx), "LimitExceededException")
            k.update_shard_count(StreamName=name, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
            k.update_shard_count(StreamName=name, TargetShardCount=2, ScalingType="UNIFORM_SCALING")  # down is always within
        finally:
            admin("/_front/kinesis/scaling", {"shardLimit": default})
        k.create_stream(StreamName=big, ShardCount=5001)
        try:
            with self.assertRaises(ClientError) as ctx:
                k.update_shard_count(StreamName=big, TargetShardCount=10002, ScalingType="UNIFORM_SCALING")
            self.assertEqual(code_of(ctx), "LimitExceededException")
            self.assertEqual(message_of(ctx), "Target shard count or number of open shards cannot be greater than 10000. "
                             "Current open shard count: 5001, Target shard count: 10002")
        finally:
            k.delete_stream(StreamName=big)


class KinesisOnDemandAdvantage(unittest.TestCase):
    def test_commitment_warm_throughput_and_their_iam(self) -> None:
        k = client("kinesis", DEV, retry=False)
        od, prov = uniq("od"), uniq("prov")
        k.create_stream(StreamName=od, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        k.create_stream(StreamName=prov, ShardCount=1)
        self.assertEqual(k.describe_account_settings()["MinimumThroughputBillingCommitment"], {"Status": "DISABLED"})
        with self.assertRaises(ClientError) as ctx:
            k.update_stream_warm_throughput(StreamName=od, WarmThroughputMiBps=100)
        self.assertEqual(code_of(ctx), "InvalidArgumentException")
        self.assertIn("MinimumThroughputBillingCommitment", message_of(ctx))

        on = k.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})["MinimumThroughputBillingCommitment"]
        self.assertEqual(on["Status"], "ENABLED")
        self.assertEqual(on["EarliestAllowedEndAt"] - on["StartedAt"], datetime.timedelta(hours=24))
        self.assertNotIn("EndedAt", on)
        for name, value, code in ((prov, 100, "ValidationException"), (od, 10241, "LimitExceededException"), (uniq("gone"), 1, "ResourceNotFoundException")):
            with self.assertRaises(ClientError, msg=(name, value)) as ctx:
                k.update_stream_warm_throughput(StreamName=name, WarmThroughputMiBps=value)
            self.assertEqual(code_of(ctx), code, message_of(ctx))
        out = k.update_stream_warm_throughput(StreamARN=arn("kinesis", f"stream/{od}"), WarmThroughputMiBps=100)
        out.pop("ResponseMetadata")
        self.assertEqual(out, {"StreamARN": arn("kinesis", f"stream/{od}"), "StreamName": od,
                               "WarmThroughput": {"TargetMiBps": 100, "CurrentMiBps": 100}})
        self.assertEqual(k.describe_stream_summary(StreamName=od)["StreamDescriptionSummary"]["WarmThroughput"],
                         {"TargetMiBps": 100, "CurrentMiBps": 100})
        self.assertNotIn("WarmThroughput", k.describe_stream_summary(StreamName=prov)["StreamDescriptionSummary"])
        self.assertNotIn("WarmThroughput", k.describe_stream(StreamName=od)["StreamDescription"])

        # Disabling within the 24 h minimum schedules it; enabling again cancels that; stats resets keep it.
        pending = k.update_account_settings(MinimumThroughputBillingCommitment={"Status": "DISABLED"})["MinimumThroughputBillingCommitment"]
        self.assertEqual(pending["Status"], "ENABLED_UNTIL_EARLIEST_ALLOWED_END")
        self.assertEqual(pending["EarliestAllowedEndAt"], on["EarliestAllowedEndAt"])
        admin("/_front/reset-stats", {})
        self.assertEqual(k.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"], "ENABLED_UNTIL_EARLIEST_ALLOWED_END")
        k.update_stream_warm_throughput(StreamName=od, WarmThroughputMiBps=200)  # still committed
        again = k.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"})["MinimumThroughputBillingCommitment"]
        self.assertEqual((again["Status"], again["StartedAt"]), ("ENABLED", on["StartedAt"]))
        k.update_account_settings(MinimumThroughputBillingCommitment={"Status": "DISABLED"})
        real = FRONT.ext.clock
        FRONT.ext.clock = lambda: time.time() + 86400 + 60
        try:
            off = k.describe_account_settings()["MinimumThroughputBillingCommitment"]
            self.assertEqual((off["Status"], off["EndedAt"]), ("DISABLED", on["EarliestAllowedEndAt"]))
            self.assertNotIn("WarmThroughput", k.describe_stream_summary(StreamName=od)["StreamDescriptionSummary"])
            with self.assertRaises(ClientError) as ctx:
                k.update_stream_warm_throughput(StreamName=od, WarmThroughputMiBps=100)
            self.assertEqual(code_of(ctx), "InvalidArgumentException")
        finally:
            FRONT.ext.clock = real
        with self.assertRaises(ClientError) as ctx:
            k.update_account_settings(MinimumThroughputBillingCommitment={"Status": "PAUSED"})
        self.assertEqual(code_of(ctx), "ValidationException")

        # IAM: the account settings on "*", warm throughput on the stream.
        creds = role(uniq("warm"),
                     {"Effect": "Allow", "Action": "kinesis:DescribeAccountSettings", "Resource": "*"},
                     {"Effect": "Allow", "Action": ["kinesis:UpdateAccountSettings", "kinesis:UpdateStreamWarmThroughput"],
                      "Resource": arn("kinesis", f"stream/{prov}")})
        kc = client("kinesis", creds, retry=False)
        self.assertEqual(kc.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"], "DISABLED")
        for call in (lambda: kc.update_account_settings(MinimumThroughputBillingCommitment={"Status": "ENABLED"}),
                     lambda: kc.update_stream_warm_throughput(StreamName=od, WarmThroughputMiBps=1)):
            with self.assertRaises(ClientError) as ctx:
                call()
            self.assertEqual(code_of(ctx), "AccessDeniedException")
        with self.assertRaises(ClientError) as ctx:  # allowed on its stream: then validated
            kc.update_stream_warm_throughput(StreamName=prov, WarmThroughputMiBps=1)
        self.assertEqual(code_of(ctx), "InvalidArgumentException")


class DynamoDBWarmThroughput(unittest.TestCase):
    def test_table_and_index_warm_throughput_only_increase(self) -> None:
        d = client("dynamodb", DEV, retry=False)
        table, other = uniq("warm"), uniq("warm-other")
        for t in (table, other):
            d.create_table(
                TableName=t, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "g", "AttributeType": "S"}],
                GlobalSecondaryIndexes=[{"IndexName": "gsi1", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                         "Projection": {"ProjectionType": "ALL"}}],
            )
        desc = d.describe_table(TableName=table)["Table"]
        default = {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"}
        self.assertEqual(desc["WarmThroughput"], default)
        self.assertEqual(desc["GlobalSecondaryIndexes"][0]["WarmThroughput"], default)
        # A role with UpdateTable and DescribeTable on the table only: index updates are authorized on the table.
        creds = role(uniq("prewarm"), {"Effect": "Allow", "Action": ["dynamodb:UpdateTable", "dynamodb:DescribeTable"],
                                       "Resource": arn("dynamodb", f"table/{table}")})
        dc = client("dynamodb", creds, retry=False)
        out = dc.update_table(TableName=table, WarmThroughput={"ReadUnitsPerSecond": 15000},
                              GlobalSecondaryIndexUpdates=[{"Update": {"IndexName": "gsi1", "WarmThroughput": {"WriteUnitsPerSecond": 5000}}}])
        self.assertEqual(out["TableDescription"]["WarmThroughput"], {"ReadUnitsPerSecond": 15000, "WriteUnitsPerSecond": 4000, "Status": "UPDATING"})
        self.assertEqual(out["TableDescription"]["GlobalSecondaryIndexes"][0]["WarmThroughput"],
                         {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 5000, "Status": "UPDATING"})
        desc = dc.describe_table(TableName=table)["Table"]
        self.assertEqual(desc["WarmThroughput"], {"ReadUnitsPerSecond": 15000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"})
        self.assertEqual(desc["GlobalSecondaryIndexes"][0]["WarmThroughput"], {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 5000, "Status": "ACTIVE"})
        same = dc.update_table(TableName=table, WarmThroughput={"ReadUnitsPerSecond": 15000})
        self.assertEqual(same["TableDescription"]["WarmThroughput"]["Status"], "ACTIVE")
        with self.assertRaises(ClientError) as ctx:
            dc.update_table(TableName=other, WarmThroughput={"ReadUnitsPerSecond": 15000})
        self.assertEqual(code_of(ctx), "AccessDeniedException")
        cases = [
            ({"WarmThroughput": {"ReadUnitsPerSecond": 14999}}, "ValidationException",
             "One or more parameter values were invalid: Requested ReadUnitsPerSecond for WarmThroughput for table is lower than current WarmThroughput, decreasing WarmThroughput is not supported"),
            ({"GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "gsi1", "WarmThroughput": {"WriteUnitsPerSecond": 4000}}}]}, "ValidationException",
             "One or more parameter values were invalid: Requested WriteUnitsPerSecond for WarmThroughput for index gsi1 is lower than current WarmThroughput, decreasing WarmThroughput is not supported"),
            ({"WarmThroughput": {"WriteUnitsPerSecond": 40001}}, "LimitExceededException",
             f"Subscriber limit exceeded: Requested WriteUnitsPerSecond for WarmThroughput for table exceeds TableMaxWriteCapacityUnits of the account in region {REGION}"),
            ({"GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "nope", "WarmThroughput": {"ReadUnitsPerSecond": 13000}}}]}, "ResourceNotFoundException",
             f"Requested resource not found: Index nope for table {table}"),
        ]
        for kwargs, code, message in cases:
            with self.assertRaises(ClientError, msg=kwargs) as ctx:
                dc.update_table(TableName=table, **kwargs)
            self.assertEqual((code_of(ctx), message_of(ctx)), (code, message))
        # CreateTable: a field left out keeps its default; above the table quota is refused.
        t2 = uniq("warm-new")
        created = d.create_table(TableName=t2, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], WarmThroughput={"ReadUnitsPerSecond": 20000})
        self.assertEqual(created["TableDescription"]["WarmThroughput"], {"ReadUnitsPerSecond": 20000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"})
        self.assertEqual(d.describe_table(TableName=t2)["Table"]["WarmThroughput"]["WriteUnitsPerSecond"], 4000)
        with self.assertRaises(ClientError) as ctx:
            d.create_table(TableName=uniq("warm-big"), BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                           AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], WarmThroughput={"ReadUnitsPerSecond": 40001})
        self.assertEqual(code_of(ctx), "LimitExceededException")


class CloudWatchMetrics(unittest.TestCase):
    def test_injected_metrics_come_back_per_minute(self) -> None:
        stream = uniq("metrics")
        minute = int(time.time() // 60) * 60 - 600
        inject = [  # out of order, two values in one minute, one in another namespace and one for another stream
            (minute + 65, 7.0), (minute + 5, 100.0), (minute + 50, 50.0), (minute + 300, 1.0),
        ]
        doc = {"namespace": "AWS/Kinesis", "metricData": [
            {"metricName": "IncomingBytes", "dimensions": {"StreamName": stream}, "timestamp": ts, "value": v, "unit": "Bytes"}
            for ts, v in inject
        ] + [{"metricName": "IncomingBytes", "dimensions": {"StreamName": stream + "-x"}, "timestamp": minute + 5, "value": 9e9, "unit": "Bytes"}]}
        self.assertEqual(admin("/_front/metrics", doc), (200, {"ok": True, "count": 5}))
        self.assertEqual(admin("/_front/metrics", {"namespace": "Other", "metricData": [
            {"metricName": "IncomingBytes", "dimensions": {"StreamName": stream}, "timestamp": minute + 5, "value": 1e6}]})[1]["count"], 1)
        self.assertEqual(admin("/_front/metrics", {"metricData": []})[0], 400)
        reader = role(uniq("dashboard"), {"Effect": "Allow", "Action": "cloudwatch:GetMetricData", "Resource": "*"})
        cw = client("cloudwatch", reader)

        def query(stat: str) -> dict:
            return {"Id": stat.lower(), "MetricStat": {"Metric": {"Namespace": "AWS/Kinesis", "MetricName": "IncomingBytes",
                                                                    "Dimensions": [{"Name": "StreamName", "Value": stream}]},
                                                         "Period": 60, "Stat": stat}}

        start = datetime.datetime.fromtimestamp(minute - 73, datetime.timezone.utc)  # not on a minute: rounded down
        end = datetime.datetime.fromtimestamp(minute + 900, datetime.timezone.utc)
        results = {r["Id"]: r for r in cw.get_metric_data(MetricDataQueries=[query("Sum"), query("Maximum")], StartTime=start, EndTime=end)["MetricDataResults"]}
        stamps = [minute + 300, minute + 60, minute]  # newest first, as AWS's default ScanBy
        self.assertEqual(results["sum"]["Values"], [1.0, 7.0, 150.0])
        self.assertEqual(results["maximum"]["Values"], [1.0, 7.0, 100.0])
        for r in results.values():
            self.assertEqual([t.timestamp() for t in r["Timestamps"]], stamps)
        ascending = cw.get_metric_data(MetricDataQueries=[query("Sum")], StartTime=start, EndTime=end, ScanBy="TimestampAscending")
        self.assertEqual(ascending["MetricDataResults"][0]["Values"], [150.0, 7.0, 1.0])
        with self.assertRaises(ClientError) as ctx:
            cw.put_metric_data(Namespace="Robofleet", MetricData=[{"MetricName": "m", "Value": 1.0}])
        self.assertEqual(code_of(ctx), "AccessDenied")
        with self.assertRaises(ClientError) as ctx:  # authorization first, then the reserved namespace
            cw.put_metric_data(Namespace="AWS/Kinesis", MetricData=[{"MetricName": "m", "Value": 1.0}])
        self.assertEqual(code_of(ctx), "AccessDenied")

    def test_kinesis_puts_publish_incoming_bytes_and_records(self) -> None:
        stream = uniq("published")
        dev_kinesis_stream(stream)
        k = client("kinesis", DEV, retry=False)
        k.put_record(StreamName=stream, Data=b"0123456789", PartitionKey="k1")  # 12 bytes
        k.put_records(StreamName=stream, Records=[{"Data": b"x" * n, "PartitionKey": "p"} for n in (1, 2, 3)])  # 9 bytes
        cw = client("cloudwatch", DEV)
        now = time.time()
        start = datetime.datetime.fromtimestamp(now - 300, datetime.timezone.utc)
        end = datetime.datetime.fromtimestamp(now + 120, datetime.timezone.utc)
        queries = [{"Id": f"{m.lower()}_{s.lower()}", "MetricStat": {
            "Metric": {"Namespace": "AWS/Kinesis", "MetricName": m, "Dimensions": [{"Name": "StreamName", "Value": stream}]},
            "Period": 60, "Stat": s}} for m in ("IncomingBytes", "IncomingRecords") for s in ("Sum", "SampleCount", "Maximum")]
        got = {r["Id"]: r["Values"] for r in cw.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)["MetricDataResults"]}
        self.assertEqual(sum(got["incomingbytes_sum"]), 21.0)
        self.assertEqual(sum(got["incomingrecords_sum"]), 4.0)
        self.assertEqual(sum(got["incomingrecords_samplecount"]), 2.0)  # one sample per put call
        self.assertEqual(max(got["incomingrecords_maximum"]), 3.0)
        self.assertEqual(max(got["incomingbytes_maximum"]), 12.0)


# ------------------------------------------------------------------------------------------
# CloudWatch in Smithy RPC v2 CBOR (the Rust SDK's protocol for CloudWatch)
# ------------------------------------------------------------------------------------------

CW_SERVICE = "GraniteServiceVersion20100801"


def cbor_client(creds: dict):
    """A boto3 CloudWatch client speaking rpc-v2-cbor. botocore supports the protocol but picks
    awsJson1.0 first for CloudWatch (PRIORITY_ORDERED_SUPPORTED_PROTOCOLS); the service model
    resolves its protocol once per client, so putting CBOR first while the client is created is enough."""
    original = botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS
    botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS = ("smithy-rpc-v2-cbor",) + tuple(original)
    try:
        cw = client("cloudwatch", creds)
    finally:
        botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS = original
    assert cw.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
    sent: list = []
    cw.meta.events.register("before-send", lambda request, **_: sent.append(request))
    cw.sent = sent  # the raw requests, to check what went over the wire
    return cw


def cbor_request(creds: dict, op: str, doc: dict | None = None, body: bytes | None = None, headers: dict | None = None,
                 service: str = CW_SERVICE) -> AWSRequest:
    """A signed rpc-v2-cbor request built by hand (cbor2 + botocore's SigV4Auth)."""
    h = {"Content-Type": "application/cbor", "Accept": "application/cbor", "smithy-protocol": "rpc-v2-cbor", **(headers or {})}
    data = cbor2.dumps(doc if doc is not None else {}) if body is None else body
    return signed_request(creds, "monitoring", "POST", f"{aws_url()}/service/{service}/operation/{op}", h, data)


def cbor_error(status: int, headers: dict, data: bytes) -> tuple[int, str, str, str]:
    """(status, __type, x-amzn-query-error, message) of an rpc-v2-cbor error, checking its form."""
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower.get("smithy-protocol") == "rpc-v2-cbor", headers
    assert lower.get("content-type") == "application/cbor", headers
    assert "x-amzn-errortype" not in lower, headers  # the spec: SHOULD NOT be sent
    doc = cbor2.loads(data)
    return status, doc["__type"], lower.get("x-amzn-query-error", ""), doc["message"]


def epoch(t: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc)


class CloudWatchCbor(unittest.TestCase):
    def test_get_metric_data_of_injected_metrics(self) -> None:
        stream = uniq("cbor-metrics")
        minute = int(time.time() // 60) * 60 - 600
        inject = [(minute + 65, 7.0), (minute + 5, 100.0), (minute + 50, 50.0), (minute + 300, 1.0)]
        doc = {"namespace": "AWS/Kinesis", "metricData": [
            {"metricName": "IncomingBytes", "dimensions": {"StreamName": stream}, "timestamp": ts, "value": v, "unit": "Bytes"}
            for ts, v in inject]}
        self.assertEqual(admin("/_front/metrics", doc), (200, {"ok": True, "count": 4}))
        reader = role(uniq("cbor-dashboard"), {"Effect": "Allow", "Action": "cloudwatch:GetMetricData", "Resource": "*"})

        def query(stat: str) -> dict:
            return {"Id": stat.lower(), "MetricStat": {"Metric": {"Namespace": "AWS/Kinesis", "MetricName": "IncomingBytes",
                                                                    "Dimensions": [{"Name": "StreamName", "Value": stream}]},
                                                         "Period": 60, "Stat": stat}}

        cw = cbor_client(reader)
        got = cw.get_metric_data(MetricDataQueries=[query("Sum"), query("Maximum")], StartTime=epoch(minute - 73),
                                 EndTime=epoch(minute + 900), ScanBy="TimestampAscending")
        self.assertEqual(cw.sent[-1].headers["Content-Type"], b"application/cbor")
        self.assertTrue(cw.sent[-1].url.endswith(f"/service/{CW_SERVICE}/operation/GetMetricData"))
        self.assertEqual(got["ResponseMetadata"]["HTTPHeaders"]["content-type"], "application/cbor")
        self.assertEqual(got["ResponseMetadata"]["HTTPHeaders"]["smithy-protocol"], "rpc-v2-cbor")
        results = {r["Id"]: r for r in got["MetricDataResults"]}
        self.assertEqual(results["sum"]["Values"], [150.0, 7.0, 1.0])
        self.assertEqual(results["maximum"]["Values"], [100.0, 7.0, 1.0])
        for r in results.values():
            self.assertEqual([t.timestamp() for t in r["Timestamps"]], [minute, minute + 60, minute + 300])
        # The same by hand: the answer's timestamps are CBOR tag 1 around a 64-bit float (the Rust
        # SDK reads no other form), its values floats even where moto's JSON had integers.
        req = cbor_request(reader, "GetMetricData", {"MetricDataQueries": [query("Sum")], "StartTime": cbor2.CBORTag(1, float(minute - 73)),
                                                     "EndTime": cbor2.CBORTag(1, minute + 900)})
        status, headers, data = send(PORTS[0], req)
        self.assertEqual(status, 200, data)
        lower = {k.lower(): v for k, v in headers.items()}
        self.assertEqual((lower["content-type"], lower["smithy-protocol"]), ("application/cbor", "rpc-v2-cbor"))
        result = cbor2.loads(data)["MetricDataResults"][0]
        self.assertEqual(result["Timestamps"], [epoch(minute + 300), epoch(minute + 60), epoch(minute)])  # newest first by default
        self.assertEqual(result["Values"], [1.0, 7.0, 150.0])
        self.assertEqual(data.count(b"\xc1\xfb"), 3)
        self.assertTrue(all(type(v) is float for v in result["Values"]))

    def test_kinesis_metrics_are_flushed_before_a_cbor_read(self) -> None:
        stream = uniq("cbor-published")
        dev_kinesis_stream(stream)
        client("kinesis", DEV, retry=False).put_records(StreamName=stream, Records=[{"Data": b"x" * n, "PartitionKey": "p"} for n in (1, 2, 3)])
        now = time.time()
        got = cbor_client(DEV).get_metric_data(MetricDataQueries=[{"Id": "records", "MetricStat": {
            "Metric": {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords", "Dimensions": [{"Name": "StreamName", "Value": stream}]},
            "Period": 60, "Stat": "Sum"}}], StartTime=epoch(now - 300), EndTime=epoch(now + 120))
        self.assertEqual(sum(got["MetricDataResults"][0]["Values"]), 3.0)

    def test_put_metric_data_then_read_it_back(self) -> None:
        ns = uniq("Robofleet")
        writer = role(uniq("cbor-writer"), {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
                                            "Condition": {"StringEquals": {"cloudwatch:namespace": ns}}},
                      {"Effect": "Allow", "Action": ["cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics"], "Resource": "*"})
        cw = cbor_client(writer)
        minute = int(time.time() // 60) * 60 - 300
        out = cw.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": "Missions", "Dimensions": [{"Name": "Fleet", "Value": "a"}], "Value": v, "Unit": "Count", "Timestamp": epoch(minute + s)}
            for s, v in ((1, 2.0), (30.5, 5.0), (61, 4.0))])
        # An operation without output: 200, no body, no Content-Type (the spec), smithy-protocol.
        h = out["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual((out["ResponseMetadata"]["HTTPStatusCode"], h["content-length"], h.get("content-type")), (200, "0", None))
        self.assertEqual(h["smithy-protocol"], "rpc-v2-cbor")
        # Over 10 KB, botocore gzips PutMetricData (its requestCompression trait): the front inflates it.
        cw.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": "Big", "Dimensions": [{"Name": "Fleet", "Value": "a" * 200}], "Value": float(i), "Timestamp": epoch(minute + 120)}
            for i in range(100)])
        self.assertEqual(cw.sent[-1].headers.get("Content-Encoding"), b"gzip")
        metric = {"Namespace": ns, "MetricName": "Missions", "Dimensions": [{"Name": "Fleet", "Value": "a"}]}
        got = cw.get_metric_data(MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}],
                                 StartTime=epoch(minute), EndTime=epoch(minute + 240), ScanBy="TimestampAscending")["MetricDataResults"][0]
        self.assertEqual((got["Values"], [t.timestamp() for t in got["Timestamps"]]), ([7.0, 4.0], [minute, minute + 60]))
        big = cw.get_metric_statistics(Namespace=ns, MetricName="Big", Dimensions=[{"Name": "Fleet", "Value": "a" * 200}], StartTime=epoch(minute),
                                       EndTime=epoch(minute + 240), Period=60, Statistics=["Sum", "SampleCount"])["Datapoints"]
        self.assertEqual([(d["Timestamp"].timestamp(), d["Sum"], d["SampleCount"]) for d in big], [(minute + 120, 4950.0, 100.0)])
        self.assertEqual(sorted(m["MetricName"] for m in cw.list_metrics(Namespace=ns)["Metrics"]), ["Big", "Missions"])
        # moto's own validation errors come back in CBOR with CloudWatch's codes.
        with self.assertRaises(ClientError) as ctx:
            cw.get_metric_statistics(Namespace=ns, MetricName="Missions", StartTime=epoch(minute + 60), EndTime=epoch(minute), Period=60, Statistics=["Sum"])
        self.assertEqual(code_of(ctx), "InvalidParameterValue")
        self.assertEqual(ctx.exception.response["Error"]["QueryErrorCode"], "InvalidParameterValueException")

    def test_alarms_round_trip_with_typed_numbers(self) -> None:
        name = uniq("cbor-alarm")
        cw = cbor_client(DEV)
        cw.put_metric_alarm(AlarmName=name, Namespace="Robofleet", MetricName="Missions", Statistic="Sum", Period=60,
                            EvaluationPeriods=3, Threshold=1.5, ComparisonOperator="GreaterThanThreshold")
        status, _, data = send(PORTS[0], cbor_request(DEV, "DescribeAlarms", {"AlarmNames": [name]}))
        self.assertEqual(status, 200, data)
        alarm = cbor2.loads(data)["MetricAlarms"][0]
        self.assertEqual((alarm["Period"], alarm["EvaluationPeriods"], alarm["Threshold"]), (60, 3, 1.5))
        self.assertIs(type(alarm["Period"]), int)
        self.assertIsInstance(alarm["StateUpdatedTimestamp"], datetime.datetime)
        cw.delete_alarms(AlarmNames=[name])
        self.assertEqual(cw.describe_alarms(AlarmNames=[name])["MetricAlarms"], [])

    def test_refusals_are_cbor_errors(self) -> None:
        # The reserved namespace, after authorization: InvalidParameterValue.
        with self.assertRaises(ClientError) as ctx:
            cbor_client(DEV).put_metric_data(Namespace="AWS/Kinesis", MetricData=[{"MetricName": "m", "Value": 1.0}])
        self.assertEqual(code_of(ctx), "InvalidParameterValue")
        self.assertIn("The value AWS/ for parameter Namespace is invalid.", ctx.exception.response["Error"]["Message"])
        got = cbor_error(*send(PORTS[0], cbor_request(DEV, "PutMetricData", {"Namespace": "AWS/Kinesis", "MetricData": [{"MetricName": "m", "Value": 1.0}]})))
        self.assertEqual(got[:3], (400, "com.amazonaws.cloudwatch#InvalidParameterValueException", "InvalidParameterValue;Sender"))
        # A principal without the permission: AccessDenied, also for the reserved namespace.
        reader = role(uniq("cbor-reader"), {"Effect": "Allow", "Action": "cloudwatch:GetMetricData", "Resource": "*"})
        for ns in ("Robofleet", "AWS/Kinesis"):
            with self.assertRaises(ClientError) as ctx:
                cbor_client(reader).put_metric_data(Namespace=ns, MetricData=[{"MetricName": "m", "Value": 1.0}])
            self.assertEqual(code_of(ctx), "AccessDenied")
        status, type_, query, message = cbor_error(*send(PORTS[0], cbor_request(reader, "PutMetricData", {"Namespace": "Robofleet"})))
        self.assertEqual((status, type_, query), (400, "com.amazon.coral.service#AccessDeniedException", "AccessDenied;Sender"))
        self.assertIn("is not authorized to perform: cloudwatch:PutMetricData", message)
        # Operations the front does not map, real or not: its loud 501, in CBOR.
        with self.assertRaises(ClientError) as ctx:
            cbor_client(DEV).set_alarm_state(AlarmName="a", StateValue="OK", StateReason="r")
        self.assertEqual((code_of(ctx), ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"]), ("FrontUnsupportedOperation", 501))
        got = cbor_error(*send(PORTS[0], cbor_request(DEV, "NoSuchOperation", {})))
        self.assertEqual(got[:3], (501, "FrontUnsupportedOperation", "FrontUnsupportedOperation;Sender"))
        self.assertIn("cloudwatch:NoSuchOperation", got[3])
        got = cbor_error(*send(PORTS[0], cbor_request(DEV, "ListMetrics", {}, service="OtherService")))
        self.assertEqual(got[0], 501)
        # Malformed by the spec: X-Amz-Target on a CBOR request, a body that is not CBOR or not a map.
        for kwargs in ({"headers": {"X-Amz-Target": f"{CW_SERVICE}.ListMetrics"}}, {"body": b"\xff\x00"}, {"body": cbor2.dumps([1])}):
            got = cbor_error(*send(PORTS[0], cbor_request(DEV, "ListMetrics", **kwargs)))
            self.assertEqual((got[0], got[2]), (400, "SerializationException;Sender"), kwargs)

    def test_sigv4_covers_the_cbor_bytes_as_sent(self) -> None:
        req = cbor_request(DEV, "ListMetrics", {"Namespace": "Robofleet"})
        status, _, data = send(PORTS[0], req)
        self.assertEqual(status, 200, data)
        self.assertIn("Metrics", cbor2.loads(data))
        # One byte changed after signing ("Robofleet" -> "Robofleeu"): the payload hash differs.
        tampered = req.body[:-1] + bytes([req.body[-1] + 1])
        req.data = tampered
        status, type_, query, _ = cbor_error(*send(PORTS[0], req))
        self.assertEqual((status, type_, query), (400, "com.amazon.coral.service#InvalidSignatureException", "SignatureDoesNotMatch;Sender"))
        # Unsigned: refused in CBOR too, before the front knows the caller.
        conn = http.client.HTTPConnection("127.0.0.1", PORTS[0], timeout=30)
        conn.request("POST", f"/service/{CW_SERVICE}/operation/ListMetrics", body=cbor2.dumps({}),
                     headers={"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"})
        resp = conn.getresponse()
        status, type_, query, _ = cbor_error(resp.status, dict(resp.getheaders()), resp.read())
        conn.close()
        self.assertEqual((status, query), (400, "MissingAuthenticationToken;Sender"))


# ------------------------------------------------------------------------------------------
# S3 aws-chunked bodies
# ------------------------------------------------------------------------------------------


class S3Chunked(unittest.TestCase):
    def _chunked(self, data: bytes, chunk: int = 8192) -> tuple[bytes, str]:
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        out = b""
        for i in range(0, len(data), chunk):
            part = data[i : i + chunk]
            out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
        out += b"0\r\n" + f"x-amz-checksum-crc32:{crc}\r\n\r\n".encode()
        return out, crc

    def test_streaming_unsigned_payload_trailer_round_trips(self) -> None:
        bucket = uniq("chunked")
        s3 = client("s3", DEV)
        s3.create_bucket(Bucket=bucket)
        data = os.urandom(50_000)
        body, _ = self._chunked(data)
        for key, http_chunked in (("k1", False), ("k2", True)):
            headers = {
                "content-encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "x-amz-trailer": "x-amz-checksum-crc32",
                "x-amz-sdk-checksum-algorithm": "CRC32",
                "content-type": "application/octet-stream",
            }
            if not http_chunked:
                headers["content-length"] = str(len(body))
            req = signed_request(DEV, "s3", "PUT", f"{aws_url()}/{bucket}/{key}", headers, body, s3=True,
                                 context={"checksum": {"request_algorithm": {"in": "trailer", "name": "x-amz-checksum-crc32"}}})
            self.assertEqual(req.headers["X-Amz-Content-SHA256"], "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
            status, _, resp = send(PORTS[0], req, chunked=http_chunked)
            self.assertEqual(status, 200, resp)
            self.assertEqual(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), data)
        # A ranged GET is a GetObject.
        self.assertEqual(s3.get_object(Bucket=bucket, Key="k1", Range="bytes=0-9")["Body"].read(), data[:10])

    def test_payload_hash_mismatch_and_copy_object(self) -> None:
        bucket = uniq("copy")
        s3 = client("s3", DEV)
        s3.create_bucket(Bucket=bucket)
        req = signed_request(DEV, "s3", "PUT", f"{aws_url()}/{bucket}/k", {}, b"abc", s3=True)
        status, _, data = send(PORTS[0], req, extra={"Content-Length": "3"})
        self.assertEqual(status, 200, data)
        req.data = b"abd"
        status, _, data = send(PORTS[0], req)
        self.assertEqual(status, 400)
        self.assertIn(b"XAmzContentSHA256Mismatch", data)
        creds = role(uniq("copier"), {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
        with self.assertRaises(ClientError) as ctx:  # needs s3:GetObject on the source too
            client("s3", creds).copy_object(Bucket=bucket, Key="k2", CopySource={"Bucket": bucket, "Key": "k"})
        self.assertEqual(code_of(ctx), "AccessDenied")
        s3.copy_object(Bucket=bucket, Key="k2", CopySource={"Bucket": bucket, "Key": "k"})
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}, {"Key": "k2"}]})


# ------------------------------------------------------------------------------------------
# policy evaluation (no HTTP)
# ------------------------------------------------------------------------------------------


class PolicyLogic(unittest.TestCase):
    who = P.PrincipalInfo(f"arn:aws:sts::{ACCOUNT}:assumed-role/r/s", f"arn:aws:iam::{ACCOUNT}:role/r", ACCOUNT)

    def allowed(self, statements: list[dict], action: str, resource: str, ctx: dict | None = None) -> bool:
        pol = P.compile_policy({"Version": "2012-10-17", "Statement": statements}, resource_policy=False)
        return P.evaluate(self.who, [pol], None, action, resource, {k.lower(): v for k, v in (ctx or {}).items()}).allowed

    def test_wildcards_and_case(self) -> None:
        st = [{"Effect": "Allow", "Action": "kinesis:Get*", "Resource": "arn:aws:kinesis:*:*:stream/s?"}]
        self.assertTrue(self.allowed(st, "kinesis:getrecords", "arn:aws:kinesis:us-east-1:1:stream/s1"))
        self.assertFalse(self.allowed(st, "kinesis:GetRecords", "arn:aws:kinesis:us-east-1:1:stream/S1x"))
        self.assertFalse(self.allowed(st, "kinesis:GetRecords", "arn:aws:kinesis:us-east-1:1:stream/S1"))

    def test_not_action_and_not_resource(self) -> None:
        st = [{"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": "arn:aws:s3:::secret/*"}]
        self.assertTrue(self.allowed(st, "s3:GetObject", "arn:aws:s3:::b/k"))
        self.assertFalse(self.allowed(st, "s3:DeleteObject", "arn:aws:s3:::b/k"))
        self.assertFalse(self.allowed(st, "s3:GetObject", "arn:aws:s3:::secret/k"))

    def test_condition_semantics(self) -> None:
        def cond(c: dict, ctx: dict) -> bool:
            return self.allowed([{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": c}], "s3:GetObject", "*", ctx)

        self.assertTrue(cond({"StringEquals": {"kms:ViaService": ["a", "b"]}}, {"kms:ViaService": ["b"]}))
        self.assertFalse(cond({"StringEquals": {"kms:ViaService": ["a", "b"]}}, {}))
        self.assertTrue(cond({"StringEqualsIfExists": {"kms:ViaService": "a"}}, {}))
        self.assertTrue(cond({"StringNotEquals": {"kms:ViaService": "a"}}, {}))  # AWS: negated + missing key = true
        self.assertFalse(cond({"StringNotEquals": {"kms:ViaService": ["a", "b"]}}, {"kms:ViaService": ["b"]}))
        self.assertTrue(cond({"Null": {"aws:SourceArn": "true"}}, {}))
        self.assertFalse(cond({"Null": {"aws:SourceArn": "false"}}, {}))
        self.assertTrue(cond({"ForAllValues:StringLike": {"s3:prefix": "a*"}}, {}))
        self.assertFalse(cond({"ForAnyValue:StringLike": {"s3:prefix": "a*"}}, {}))
        self.assertTrue(cond({"ForAnyValue:StringLike": {"s3:prefix": "a*"}}, {"s3:prefix": ["x", "ab"]}))
        self.assertFalse(cond({"ForAllValues:StringLike": {"s3:prefix": "a*"}}, {"s3:prefix": ["x", "ab"]}))
        self.assertTrue(cond({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": ["true"]}))
        self.assertTrue(cond({"NumericLessThan": {"aws:EpochTime": 2000000000}}, {"aws:EpochTime": ["1700000000"]}))
        self.assertTrue(cond({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}, {"aws:CurrentTime": ["2026-01-01T00:00:00Z"]}))
        self.assertTrue(cond({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/r*"}}, {"aws:PrincipalArn": [f"arn:aws:iam::{ACCOUNT}:role/reader"]}))
        self.assertFalse(cond({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/r*"}}, {"aws:PrincipalArn": [f"arn:aws:iam::{ACCOUNT}:user/reader"]}))
        # Two keys in one operator are ANDed.
        self.assertFalse(cond({"StringEquals": {"aws:PrincipalAccount": ACCOUNT, "aws:RequestedRegion": "eu-west-1"}},
                              {"aws:PrincipalAccount": [ACCOUNT], "aws:RequestedRegion": ["us-east-1"]}))

    def test_the_templates_role_policies_compile(self) -> None:
        # The statements of template.yaml's roles and key policy, with their condition keys.
        P.compile_policy({"Version": "2012-10-17", "Statement": [
            {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "arn:aws:logs:us-east-1:1:log-group:/aws/lambda/x:*"},
            {"Sid": "Tracing", "Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
            {"Sid": "UseDataKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": KEY_ARN,
             "Condition": {"StringEquals": {"kms:ViaService": ["kinesis.us-east-1.amazonaws.com"]}}},
        ]}, resource_policy=False)
        P.compile_policy({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"aws:SourceAccount": "1"}}, "Resource": "*"},
        ]}, resource_policy=True)


# ------------------------------------------------------------------------------------------
# stats, CLI, benchmark
# ------------------------------------------------------------------------------------------


class StatsAndCli(unittest.TestCase):
    def test_stats_count(self) -> None:
        admin("/_front/reset-stats", {})
        d = client("dynamodb", DEV)
        d.list_tables()
        with self.assertRaises(ClientError):
            client("dynamodb", {**DEV, "secretAccessKey": "bad"}).list_tables()
        with self.assertRaises(ClientError):
            client("dynamodb", role(uniq("none"))).list_tables()
        status, stats = admin("/_front/stats")
        self.assertEqual(status, 200)
        self.assertEqual(stats["requests"], 3)
        self.assertEqual((stats["allowed"], stats["signature_errors"], stats["denied"]), (1, 1, 1))
        self.assertEqual(stats["by_service"]["dynamodb"]["requests"], 3)
        self.assertGreater(stats["front_cpu_seconds"], 0)
        self.assertGreater(stats["front_cpu_us_per_request"], 0)
        self.assertEqual(admin("/_front/health"), (200, {"ok": True}))

    def test_runs_as_a_copied_directory(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(os.path.join(HERE, "aws_front"), os.path.join(tmp, "aws_front"), ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(os.path.join(HERE, "moto_server.py"), tmp)
            proc = subprocess.Popen(
                [sys.executable, os.path.join(tmp, "aws_front"), "--aws-port", "0", "--opensearch-port", "0", "--iot-port", "0",
                 "--developer", "AKIDDEVELOPER0000000:devsecret", "--developer-name", "robofleet-developer"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp,
            )
            try:
                line = proc.stdout.readline()
                self.assertTrue(line.startswith("aws-front: aws http://127.0.0.1:"), line + proc.stderr.read() if not line else line)
                url = line.split()[2]
                with urllib.request.urlopen(url + "/_front/health") as r:
                    self.assertEqual(json.loads(r.read()), {"ok": True})
                dev = {"accessKeyId": "AKIDDEVELOPER0000000", "secretAccessKey": "devsecret"}
                ident = boto3.client("sts", endpoint_url=url, region_name=REGION, aws_access_key_id=dev["accessKeyId"],
                                     aws_secret_access_key=dev["secretAccessKey"]).get_caller_identity()
                self.assertEqual(ident["Arn"], f"arn:aws:iam::{ACCOUNT}:user/robofleet-developer")
                # No --opensearch-backend: a domain needs its own backend, then gets its own port.
                def post(path: str, doc: dict) -> tuple[int, dict]:
                    req = urllib.request.Request(url + path, data=json.dumps(doc).encode(), method="POST")
                    try:
                        with urllib.request.urlopen(req) as r:
                            return r.status, json.loads(r.read())
                    except urllib.error.HTTPError as e:
                        return e.code, json.loads(e.read())

                status, body = post("/_front/opensearch", {"domainArn": arn("es", "domain/stack-a")})
                self.assertEqual(status, 400)
                self.assertIn("no backend", body["error"])
                status, body = post("/_front/opensearch", {"domainArn": arn("es", "domain/stack-a"), "backend": "http://127.0.0.1:1"})
                self.assertEqual(status, 200, body)
                self.assertNotEqual(body["url"], line.split()[4])
                req = signed_request(dev, "es", "GET", body["url"] + "/", {})
                self.assertEqual(send(_port(body["url"]), req)[0], 502)  # signed, allowed, backend down
            finally:
                proc.terminate()
                proc.communicate(timeout=10)


def benchmark(n: int = 300) -> dict:
    """Microseconds per kept-alive DynamoDB PutItem and Kinesis PutRecords(100), through the front and
    straight to moto's app (same waitress, same process), with pre-signed requests so that the
    client's own cost is small; plus the front's own CPU per request from its counters."""
    from waitress import create_server

    import socket

    table, stream = uniq("bench"), uniq("bench")
    d = client("dynamodb", DEV)
    d.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    dev_kinesis_stream(stream)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    direct = create_server(FRONT.moto_app, sockets=[sock], threads=8, ident="moto")
    threading.Thread(target=direct.run, daemon=True).start()
    direct_port = sock.getsockname()[1]
    put_item = json.dumps({"TableName": table, "Item": {"pk": {"S": "robot-1"}, "sk": {"S": "MISSION#2026"}, "rev": {"N": "3"}, "doc": {"S": "x" * 800}}}).encode()
    records = [{"Data": base64.b64encode(b"y" * 1000).decode(), "PartitionKey": f"robot-{i}"} for i in range(100)]
    put_records = json.dumps({"StreamName": stream, "Records": records}).encode()
    cases = {
        "dynamodb PutItem": ("dynamodb", "DynamoDB_20120810.PutItem", "1.0", put_item, n),
        "kinesis PutRecords(100 x 1 KB)": ("kinesis", "Kinesis_20131202.PutRecords", "1.1", put_records, max(20, n // 10)),
    }
    results = {}
    for label, (svc, target, ver, body, count) in cases.items():
        row = {}
        for where, port in (("front", PORTS[0]), ("direct", direct_port)):
            reqs = []
            for _ in range(count):
                r = signed_request(DEV, svc, "POST", f"http://127.0.0.1:{port}/", {"X-Amz-Target": target, "Content-Type": f"application/x-amz-json-{ver}"}, body)
                reqs.append((dict(r.headers.items()), r.body))
            conn = http.client.HTTPConnection("127.0.0.1", port)
            for headers, b in reqs[:5]:  # warm up
                conn.request("POST", "/", body=b, headers=headers)
                conn.getresponse().read()
            admin("/_front/reset-stats", {})
            t0 = time.perf_counter()
            for headers, b in reqs:
                conn.request("POST", "/", body=b, headers=headers)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200, resp.status
            wall = (time.perf_counter() - t0) / count * 1e6
            conn.close()
            row[f"{where}_wall_us"] = round(wall)
            if where == "front":
                stats = admin("/_front/stats")[1]
                row["front_cpu_us"] = stats["front_cpu_us_per_request"]
                row["moto_cpu_us"] = stats["moto_cpu_us_per_request"]
        results[label] = row
    return results


class Benchmark(unittest.TestCase):
    def test_benchmark_prints_microseconds_per_request(self) -> None:
        results = benchmark(200)
        for label, row in results.items():
            print(f"\n  {label}: front {row['front_wall_us']} us/request wall, direct to moto {row['direct_wall_us']} us; "
                  f"the front's own CPU {row['front_cpu_us']} us/request, moto's {row['moto_cpu_us']} us", file=sys.stderr)
            self.assertGreater(row["front_cpu_us"], 0)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        setUpModule()
        try:
            print(json.dumps(benchmark(int(sys.argv[2]) if len(sys.argv) > 2 else 1000), indent=2))
        finally:
            tearDownModule()
    else:
        unittest.main()
