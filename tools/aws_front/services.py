"""Per service: which operation a request is, what it needs authorized, and the size limits.

`describe(req)` returns a `Call`: the operation, the (action, resource, extra context) triples that
must all be allowed, the resources whose KMS key must also allow the caller (implicit KMS), and
the protocol its errors are written in. An operation missing from these tables is refused
loudly (501 FrontUnsupportedOperation): the front fails closed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable
from urllib.parse import parse_qs, unquote

from . import errors as E
from . import rpcv2cbor as C
from .errors import FrontError, Protocol

MIB = 1024 * 1024
KINESIS_RECORD_MAX = MIB
KINESIS_REQUEST_MAX = 5 * MIB
KINESIS_RECORDS_MAX = 500
SQS_MESSAGE_MAX = MIB
DYNAMODB_ITEM_MAX = 400 * 1024
LAMBDA_SYNC_PAYLOAD_MAX = 6 * MIB
LAMBDA_ASYNC_PAYLOAD_MAX = MIB
IOT_PUBLISH_MAX = 128 * 1024


@dataclass
class Need:
    action: str
    resource: str
    context: dict[str, list[str]] | None = None


@dataclass
class Call:
    service: str
    operation: str
    protocol: Protocol
    needs: list[Need] = field(default_factory=list)
    # (resource ARN, [kms actions]): if the resource is registered as encrypted, the caller must
    # also be allowed these actions on its key, with kms:ViaService = <service>.<region>.amazonaws.com.
    kms: list[tuple[str, list[str]]] = field(default_factory=list)
    local: str | None = None  # answered by the front itself (sts GetCallerIdentity)
    # A refusal answered after authorization (AWS authorizes before it validates): sizes, and
    # CloudWatch's reserved AWS/ namespace.
    size_error: FrontError | None = None
    # The JSON body (DynamoDB, Kinesis), for the operations the front completes (extensions.py).
    params: Any = None
    # S3 GetObject/HeadObject: the bucket whose s3:ListBucket decides how a missing key is
    # answered (404 with it, 403 AccessDenied without, as S3 does).
    missing_needs_list: str | None = None
    # Set by the front's authorization: whether the caller may list that bucket, asked only
    # when the key is missing.
    may_list: Callable[[], bool] | None = None


class Req:
    """The parts of an HTTP request the mapping needs."""

    def __init__(self, *, method: str, raw_path: str, raw_query: str, headers: dict[str, str], body: bytes,
                 service: str, region: str, account: str, domain_arn: str = ""):
        self.method = method
        self.raw_path = raw_path
        self.raw_query = raw_query
        self.path = unquote(raw_path)
        self.headers = headers
        self.body = body
        self.service = service
        self.region = region
        self.account = account
        self.domain_arn = domain_arn
        self._json: Any = None
        self._form: dict[str, str] | None = None
        self._query: dict[str, list[str]] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = parse_qs(self.raw_query, keep_blank_values=True)
        return self._query

    def q(self, name: str) -> str | None:
        v = self.query.get(name)
        return v[0] if v else None

    def json(self) -> dict:
        if self._json is None:
            if not self.body:
                self._json = {}
            else:
                try:
                    self._json = json.loads(self.body)
                except ValueError:
                    raise FrontError("invalid", "The request body is not valid JSON.", code="SerializationException", status=400) from None
                if not isinstance(self._json, dict):
                    raise FrontError("invalid", "The request body must be a JSON object.", code="SerializationException", status=400)
        return self._json

    def form(self) -> dict[str, str]:
        """Query-protocol parameters: the form body and the URL query."""
        if self._form is None:
            form: dict[str, str] = {}
            for k, v in parse_qs(self.raw_query, keep_blank_values=True).items():
                form[k] = v[0]
            ctype = self.headers.get("content-type", "")
            if self.body and ctype.startswith("application/x-www-form-urlencoded"):
                for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items():
                    form[k] = v[0]
            self._form = form
        return self._form

    def arn(self, service: str, resource: str, *, global_: bool = False) -> str:
        region = "" if global_ else self.region
        return f"arn:aws:{service}:{region}:{self.account}:{resource}"


def unsupported(service: str, operation: str) -> FrontError:
    return FrontError(
        "unsupported",
        f"the AWS front does not authorize {service}:{operation}; add it to tools/aws_front",
    )


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise FrontError("invalid", f"1 validation error detected: Value at '{what}' failed to satisfy constraint: Member must not be null", code="ValidationException", status=400)
    return value


# ------------------------------------------------------------------------------------------
# DynamoDB (awsJson1.0)
# ------------------------------------------------------------------------------------------

_DDB_TABLE_OPS = {
    "CreateTable", "DescribeTable", "DeleteTable", "UpdateTable", "UpdateTimeToLive",
    "DescribeTimeToLive", "UpdateContinuousBackups", "DescribeContinuousBackups",
    "PutItem", "GetItem", "DeleteItem", "UpdateItem", "Query", "Scan",
}
_DDB_ITEM_OPS = {"PutItem", "GetItem", "DeleteItem", "UpdateItem", "Query", "Scan"}
_DDB_STAR_OPS = {"ListTables", "DescribeEndpoints", "DescribeLimits"}
_DDB_ARN_OPS = {"TagResource", "UntagResource", "ListTagsOfResource"}
_DDB_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def _ddb_table_arn(req: Req, name: str) -> str:
    return name if name.startswith("arn:") else req.arn("dynamodb", f"table/{name}")


def _ddb_number_size(n: str) -> int:
    try:
        d = Decimal(n)
    except InvalidOperation:
        return len(n)
    digits = d.as_tuple().digits
    sig = len(str(int("".join(map(str, digits))))) if digits else 1
    return (sig + 1) // 2 + 1


def ddb_value_size(v: Any) -> int:
    """DynamoDB's size of an AttributeValue (documented rules: strings and binaries by length,
    numbers about 1 byte per 2 significant digits + 1, 1 byte for BOOL/NULL, 3 bytes + 1 per
    element for lists and maps)."""
    if not isinstance(v, dict) or len(v) != 1:
        return 0
    (t, x), = v.items()
    if t == "S":
        return len(x.encode("utf-8"))
    if t == "N":
        return _ddb_number_size(x)
    if t == "B":
        return _b64_len(x)
    if t in ("BOOL", "NULL"):
        return 1
    if t == "SS":
        return sum(len(s.encode("utf-8")) for s in x)
    if t == "NS":
        return sum(_ddb_number_size(s) for s in x)
    if t == "BS":
        return sum(_b64_len(s) for s in x)
    if t == "L":
        return 3 + sum(1 + ddb_value_size(e) for e in x)
    if t == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + ddb_value_size(e) for k, e in x.items())
    return 0


def ddb_item_size(item: Any) -> int:
    if not isinstance(item, dict):
        return 0
    return sum(len(k.encode("utf-8")) + ddb_value_size(v) for k, v in item.items())


def _ddb_check_item(call: Call, item: Any) -> None:
    if call.size_error is None and ddb_item_size(item) > DYNAMODB_ITEM_MAX:
        call.size_error = FrontError("size", "Item size has exceeded the maximum allowed size", code="ValidationException", status=400)


def dynamodb(req: Req, op: str) -> Call:
    call = Call("dynamodb", op, E.DYNAMODB)
    body = req.json()
    call.params = body
    action = f"dynamodb:{op}"
    if op in _DDB_STAR_OPS:
        call.needs.append(Need(action, "*"))
        return call
    if op in _DDB_ARN_OPS:
        call.needs.append(Need(action, _str(body.get("ResourceArn"), "resourceArn")))
        return call
    if op in _DDB_TABLE_OPS:
        table = _ddb_table_arn(req, _str(body.get("TableName"), "tableName"))
        resource = table
        if op in ("Query", "Scan") and body.get("IndexName"):
            resource = f"{table}/index/{body['IndexName']}"
        call.needs.append(Need(action, resource))
        if op == "PutItem":
            _ddb_check_item(call, body.get("Item"))
        if op in _DDB_ITEM_OPS:
            call.kms.append((table, ["kms:Decrypt"]))
        return call
    if op in ("BatchGetItem", "BatchWriteItem"):
        items = body.get("RequestItems")
        if not isinstance(items, dict) or not items:
            raise FrontError("invalid", "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must not be null", code="ValidationException", status=400)
        for name, entries in items.items():
            table = _ddb_table_arn(req, name)
            call.needs.append(Need(action, table))
            call.kms.append((table, ["kms:Decrypt"]))
            if op == "BatchWriteItem" and isinstance(entries, list):
                for e in entries:
                    if isinstance(e, dict) and isinstance(e.get("PutRequest"), dict):
                        _ddb_check_item(call, e["PutRequest"].get("Item"))
        return call
    if op in ("TransactWriteItems", "TransactGetItems"):
        items = body.get("TransactItems")
        if not isinstance(items, list) or not items:
            raise FrontError("invalid", "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must not be null", code="ValidationException", status=400)
        seen = set()
        for entry in items:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise FrontError("invalid", "Invalid TransactItems entry", code="ValidationException", status=400)
            (kind, detail), = entry.items()
            if kind not in _DDB_TRANSACT or not isinstance(detail, dict):
                raise FrontError("invalid", f"Invalid TransactItems member {kind}", code="ValidationException", status=400)
            table = _ddb_table_arn(req, _str(detail.get("TableName"), "tableName"))
            key = (kind, table)
            if key not in seen:
                seen.add(key)
                call.needs.append(Need(f"dynamodb:{_DDB_TRANSACT[kind]}", table))
                call.kms.append((table, ["kms:Decrypt"]))
            if kind == "Put":
                _ddb_check_item(call, detail.get("Item"))
        return call
    raise unsupported("dynamodb", op)


# ------------------------------------------------------------------------------------------
# Kinesis (awsJson1.1)
# ------------------------------------------------------------------------------------------

_KINESIS_STREAM_OPS = {
    "CreateStream", "DeleteStream", "DescribeStream", "DescribeStreamSummary", "ListShards",
    "GetShardIterator", "GetRecords", "PutRecord", "PutRecords", "UpdateShardCount",
    "IncreaseStreamRetentionPeriod", "DecreaseStreamRetentionPeriod", "StartStreamEncryption",
    "StopStreamEncryption", "AddTagsToStream", "RemoveTagsFromStream", "ListTagsForStream",
    "MergeShards", "SplitShard", "UpdateStreamMode", "EnableEnhancedMonitoring",
    "DisableEnhancedMonitoring",
    # Service Authorization Reference: resource type stream*. Answered by the front (extensions.py).
    "UpdateStreamWarmThroughput",
}
# Service Authorization Reference: no resource type, so "*" (the two account settings operations
# are answered by the front, extensions.py).
_KINESIS_STAR_OPS = {"ListStreams", "DescribeLimits", "UpdateAccountSettings", "DescribeAccountSettings"}


def _b64_len(s: Any) -> int:
    """Decoded length of a base64 string, without decoding it."""
    if s.__class__ is not str:
        return 0
    n = len(s)
    if n % 4 or not n:
        return (n * 3) // 4
    return (n >> 2) * 3 - (s[-2:].count("="))


def kinesis_record_size(record: dict) -> int:
    """A record's bytes as the shard write quota counts them: the data and the partition key."""
    key = record.get("PartitionKey")
    return _b64_len(record.get("Data")) + (len(key.encode("utf-8")) if key.__class__ is str else 0)


def _kinesis_stream_arn(req: Req, body: dict) -> str:
    arn = body.get("StreamARN")
    if isinstance(arn, str) and arn:
        return arn
    name = body.get("StreamName")
    if isinstance(name, str) and name:
        return req.arn("kinesis", f"stream/{name}")
    raise FrontError("invalid", "Either StreamName or StreamARN should be provided.", code="InvalidArgumentException", status=400)


def _kinesis_iterator_stream(req: Req, iterator: Any) -> str:
    """moto's shard iterator is base64("<stream>:<shard>:<sequence>") (moto.kinesis.utils)."""
    try:
        text = base64.b64decode(str(iterator), validate=False).decode("utf-8")
        name = text.split(":")[0]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        name = ""
    if not name or not re.fullmatch(r"[a-zA-Z0-9_.-]+", name):
        raise FrontError("invalid", f"Invalid ShardIterator: {str(iterator)[:64]}", code="InvalidArgumentException", status=400)
    return req.arn("kinesis", f"stream/{name}")


def _kinesis_too_big(position: str) -> FrontError:
    return FrontError(
        "size",
        f"1 validation error detected: Value at '{position}' failed to satisfy constraint: Member must have length less than or equal to {KINESIS_RECORD_MAX}",
        code="ValidationException",
        status=400,
    )


def kinesis(req: Req, op: str) -> Call:
    call = Call("kinesis", op, E.KINESIS)
    body = req.json()
    call.params = body
    action = f"kinesis:{op}"
    if op in _KINESIS_STAR_OPS:
        call.needs.append(Need(action, "*"))
        return call
    if op not in _KINESIS_STREAM_OPS:
        raise unsupported("kinesis", op)
    if op == "GetRecords":
        stream = _kinesis_iterator_stream(req, body.get("ShardIterator"))
        call.needs.append(Need(action, stream))
        if body.get("StreamARN") and body["StreamARN"] != stream:
            call.needs.append(Need(action, body["StreamARN"]))
        call.kms.append((stream, ["kms:Decrypt"]))
        return call
    if op == "ListShards" and not body.get("StreamName") and not body.get("StreamARN") and body.get("NextToken"):
        # A NextToken-only call: AWS reads the stream from the token; moto's token does not hold
        # it, so the front authorizes on every stream of the account.
        call.needs.append(Need(action, req.arn("kinesis", "stream/*")))
        return call
    stream = _kinesis_stream_arn(req, body)
    call.needs.append(Need(action, stream))
    if op == "PutRecord":
        if _b64_len(body.get("Data")) > KINESIS_RECORD_MAX:
            call.size_error = _kinesis_too_big("data")
        call.kms.append((stream, ["kms:GenerateDataKey"]))
    elif op == "PutRecords":
        records = body.get("Records")
        if not isinstance(records, list):
            records = []
        if len(records) > KINESIS_RECORDS_MAX:
            call.size_error = FrontError(
                "size",
                f"1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length less than or equal to {KINESIS_RECORDS_MAX}",
                code="ValidationException",
                status=400,
            )
        total = 0
        for i, r in enumerate(records):
            if r.__class__ is not dict:
                continue
            size = _b64_len(r.get("Data"))
            if size > KINESIS_RECORD_MAX and call.size_error is None:
                call.size_error = _kinesis_too_big(f"records.{i + 1}.member.data")
            key = r.get("PartitionKey")
            total += size + (len(key) if key.__class__ is str and key.isascii() else len(str(key or "").encode("utf-8")))
        if total > KINESIS_REQUEST_MAX and call.size_error is None:
            call.size_error = FrontError("size", "Records size exceeds 5 MB limit", code="InvalidArgumentException", status=400)
        call.kms.append((stream, ["kms:GenerateDataKey"]))
    return call


# ------------------------------------------------------------------------------------------
# SQS (awsJson1.0 with X-Amz-Target AmazonSQS.<Op>, or the query protocol)
# ------------------------------------------------------------------------------------------

_SQS_QUEUE_OPS = {
    "GetQueueAttributes": "GetQueueAttributes", "SetQueueAttributes": "SetQueueAttributes",
    "DeleteQueue": "DeleteQueue", "PurgeQueue": "PurgeQueue", "SendMessage": "SendMessage",
    "SendMessageBatch": "SendMessage", "ReceiveMessage": "ReceiveMessage",
    "DeleteMessage": "DeleteMessage", "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibility": "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility", "TagQueue": "TagQueue",
    "UntagQueue": "UntagQueue", "ListQueueTags": "ListQueueTags",
    "ListDeadLetterSourceQueues": "ListDeadLetterSourceQueues",
}


def _sqs_queue_arn(req: Req, url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise FrontError("invalid", "The request must contain the parameter QueueUrl.", code="MissingParameter", status=400)
    parts = [p for p in url.split("?")[0].split("/") if p]
    name = parts[-1] if parts else ""
    account = parts[-2] if len(parts) >= 2 and re.fullmatch(r"\d{12}", parts[-2]) else req.account
    if not name:
        raise FrontError("invalid", f"Invalid QueueUrl {url}", code="InvalidAddress", status=400)
    return f"arn:aws:sqs:{req.region}:{account}:{name}"


def _sqs_attr_size(name: str, attr: Any) -> int:
    if not isinstance(attr, dict):
        return len(name.encode("utf-8"))
    size = len(name.encode("utf-8")) + len(str(attr.get("DataType", "")).encode("utf-8"))
    if isinstance(attr.get("StringValue"), str):
        size += len(attr["StringValue"].encode("utf-8"))
    if isinstance(attr.get("BinaryValue"), str):
        size += _b64_len(attr["BinaryValue"])
    return size


def _sqs_message_size(body: Any, attributes: Any) -> int:
    size = len(body.encode("utf-8")) if isinstance(body, str) else 0
    if isinstance(attributes, dict):
        size += sum(_sqs_attr_size(k, v) for k, v in attributes.items())
    return size


def _sqs_form_attributes(form: dict[str, str], prefix: str) -> dict[str, dict]:
    """Query-protocol MessageAttribute.N.{Name,Value.DataType,Value.StringValue,Value.BinaryValue}."""
    attrs: dict[str, dict] = {}
    n = 1
    while f"{prefix}MessageAttribute.{n}.Name" in form:
        base = f"{prefix}MessageAttribute.{n}"
        value = {
            "DataType": form.get(f"{base}.Value.DataType", ""),
        }
        if f"{base}.Value.StringValue" in form:
            value["StringValue"] = form[f"{base}.Value.StringValue"]
        if f"{base}.Value.BinaryValue" in form:
            value["BinaryValue"] = form[f"{base}.Value.BinaryValue"]
        attrs[form[f"{base}.Name"]] = value
        n += 1
    return attrs


def _sqs_too_long(size: int) -> FrontError:
    return FrontError(
        "size",
        f"One or more parameters are invalid. Reason: Message must be shorter than {SQS_MESSAGE_MAX} bytes.",
        code="InvalidParameterValue",
        status=400,
    )


def _sqs_batch_too_long(size: int) -> FrontError:
    return FrontError(
        "size",
        f"Batch requests cannot be longer than {SQS_MESSAGE_MAX} bytes. You have sent {size} bytes.",
        code="BatchRequestTooLong",
        query_code="AWS.SimpleQueueService.BatchRequestTooLong",
        status=400,
    )


def sqs(req: Req, op: str, proto: Protocol) -> Call:
    call = Call("sqs", op, proto)
    if proto.kind == "json":
        params: dict = req.json()
    else:
        params = req.form()
    if op == "ListQueues":
        call.needs.append(Need("sqs:ListQueues", "*"))
        return call
    if op in ("CreateQueue", "GetQueueUrl"):
        name = params.get("QueueName")
        if not isinstance(name, str) or not name:
            raise FrontError("invalid", "The request must contain the parameter QueueName.", code="MissingParameter", status=400)
        account = params.get("QueueOwnerAWSAccountId") or req.account
        call.needs.append(Need(f"sqs:{op}", f"arn:aws:sqs:{req.region}:{account}:{name}"))
        return call
    if op not in _SQS_QUEUE_OPS:
        raise unsupported("sqs", op)
    queue = _sqs_queue_arn(req, params.get("QueueUrl"))
    call.needs.append(Need(f"sqs:{_SQS_QUEUE_OPS[op]}", queue))
    if op == "SendMessage":
        if proto.kind == "json":
            size = _sqs_message_size(params.get("MessageBody"), params.get("MessageAttributes"))
        else:
            size = _sqs_message_size(params.get("MessageBody"), _sqs_form_attributes(params, ""))
        if size > SQS_MESSAGE_MAX:
            call.size_error = _sqs_too_long(size)
        call.kms.append((queue, ["kms:GenerateDataKey", "kms:Decrypt"]))
    elif op == "SendMessageBatch":
        total = 0
        if proto.kind == "json":
            entries = params.get("Entries") or []
            for e in entries if isinstance(entries, list) else []:
                if isinstance(e, dict):
                    total += _sqs_message_size(e.get("MessageBody"), e.get("MessageAttributes"))
        else:
            n = 1
            while f"SendMessageBatchRequestEntry.{n}.Id" in params:
                prefix = f"SendMessageBatchRequestEntry.{n}."
                total += _sqs_message_size(params.get(prefix + "MessageBody"), _sqs_form_attributes(params, prefix))
                n += 1
        if total > SQS_MESSAGE_MAX:
            call.size_error = _sqs_batch_too_long(total)
        call.kms.append((queue, ["kms:GenerateDataKey", "kms:Decrypt"]))
    elif op == "ReceiveMessage":
        call.kms.append((queue, ["kms:Decrypt"]))
    return call


# ------------------------------------------------------------------------------------------
# S3 (REST XML, path-style)
# ------------------------------------------------------------------------------------------

# Bucket sub-resources: (GET, PUT, DELETE) actions.
_S3_BUCKET_SUB = {
    "versioning": ("s3:GetBucketVersioning", "s3:PutBucketVersioning", None),
    "lifecycle": ("s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration", "s3:PutLifecycleConfiguration"),
    "policy": ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"),
    "policyStatus": ("s3:GetBucketPolicyStatus", None, None),
    "encryption": ("s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration", "s3:PutEncryptionConfiguration"),
    "publicAccessBlock": ("s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
    "ownershipControls": ("s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls", "s3:PutBucketOwnershipControls"),
    "metrics": ("s3:GetMetricsConfiguration", "s3:PutMetricsConfiguration", "s3:PutMetricsConfiguration"),
    "notification": ("s3:GetBucketNotification", "s3:PutBucketNotification", None),
    "tagging": ("s3:GetBucketTagging", "s3:PutBucketTagging", "s3:PutBucketTagging"),
    "acl": ("s3:GetBucketAcl", "s3:PutBucketAcl", None),
    "cors": ("s3:GetBucketCORS", "s3:PutBucketCORS", "s3:PutBucketCORS"),
    "location": ("s3:GetBucketLocation", None, None),
    "logging": ("s3:GetBucketLogging", "s3:PutBucketLogging", None),
    "object-lock": ("s3:GetBucketObjectLockConfiguration", "s3:PutBucketObjectLockConfiguration", None),
}
_S3_OBJECT_SUB = {
    "tagging": ("s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging"),
    "acl": ("s3:GetObjectAcl", "s3:PutObjectAcl", None),
    "retention": ("s3:GetObjectRetention", "s3:PutObjectRetention", None),
    "legal-hold": ("s3:GetObjectLegalHold", "s3:PutObjectLegalHold", None),
}


def _s3_delete_keys(body: bytes) -> list[str] | None:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    keys = []
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Key" and el.text is not None:
            keys.append(el.text)
    return keys


# Query parameters that do not change which operation a request is (anything else that is not a
# known sub-resource makes the request unsupported: fail closed).
_S3_BUCKET_PARAMS = {
    "prefix", "delimiter", "marker", "max-keys", "list-type", "continuation-token", "start-after",
    "fetch-owner", "encoding-type", "key-marker", "version-id-marker", "upload-id-marker",
    "max-uploads", "x-id", "id", "optional-object-attributes", "versions", "uploads", "delete",
    "max-buckets", "bucket-region",
}
_S3_OBJECT_PARAMS = {
    "versionId", "partNumber", "uploadId", "uploads", "x-id", "max-parts", "part-number-marker",
    "attributes", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "response-content-language", "response-content-type",
    "response-expires",
}


def s3(req: Req) -> Call:
    m = req.method
    path = req.path
    q = req.query
    if path in ("", "/"):
        if m == "GET":
            return Call("s3", "ListBuckets", E.S3, [Need("s3:ListAllMyBuckets", "*")])
        raise unsupported("s3", f"{m} /")
    bucket, _, key = path.lstrip("/").partition("/")
    bucket_arn = f"arn:aws:s3:::{bucket}"
    known = _S3_OBJECT_PARAMS | set(_S3_OBJECT_SUB) if key else _S3_BUCKET_PARAMS | set(_S3_BUCKET_SUB)
    strange = sorted(k for k in q if k not in known)
    if strange:
        raise unsupported("s3", f"{m} /{bucket}{'/KEY' if key else ''}?{strange[0]}")
    if not key:
        for sub, actions in _S3_BUCKET_SUB.items():
            if sub in q:
                idx = {"GET": 0, "PUT": 1, "DELETE": 2}.get(m)
                action = actions[idx] if idx is not None else None
                if action is None:
                    raise unsupported("s3", f"{m} /{bucket}?{sub}")
                op = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}[m] + "Bucket" + sub[0].upper() + sub[1:]
                return Call("s3", op, E.S3, [Need(action, bucket_arn)])
        if m == "PUT":
            return Call("s3", "CreateBucket", E.S3, [Need("s3:CreateBucket", bucket_arn)])
        if m == "DELETE":
            return Call("s3", "DeleteBucket", E.S3, [Need("s3:DeleteBucket", bucket_arn)])
        if m == "HEAD":
            return Call("s3", "HeadBucket", E.S3, [Need("s3:ListBucket", bucket_arn)])
        if m == "GET":
            if "versions" in q:
                return Call("s3", "ListObjectVersions", E.S3, [Need("s3:ListBucketVersions", bucket_arn, _s3_prefix(req))])
            if "uploads" in q:
                return Call("s3", "ListMultipartUploads", E.S3, [Need("s3:ListBucketMultipartUploads", bucket_arn)])
            op = "ListObjectsV2" if req.q("list-type") == "2" else "ListObjects"
            return Call("s3", op, E.S3, [Need("s3:ListBucket", bucket_arn, _s3_prefix(req))])
        if m == "POST" and "delete" in q:
            keys = _s3_delete_keys(req.body)
            call = Call("s3", "DeleteObjects", E.S3)
            if not keys:
                call.needs.append(Need("s3:DeleteObject", f"{bucket_arn}/*"))
            for k in dict.fromkeys(keys or []):
                call.needs.append(Need("s3:DeleteObject", f"{bucket_arn}/{k}"))
            return call
        raise unsupported("s3", f"{m} /{bucket}?{req.raw_query}")
    obj = f"{bucket_arn}/{key}"
    for sub, actions in _S3_OBJECT_SUB.items():
        if sub in q:
            idx = {"GET": 0, "PUT": 1, "DELETE": 2}.get(m)
            action = actions[idx] if idx is not None else None
            if action is None:
                raise unsupported("s3", f"{m} /{bucket}/KEY?{sub}")
            return Call("s3", action.split(":")[1], E.S3, [Need(action, obj)])
    copy_source = req.headers.get("x-amz-copy-source")
    if m in ("GET", "HEAD"):
        if "uploadId" in q:
            return Call("s3", "ListParts", E.S3, [Need("s3:ListMultipartUploadParts", obj)])
        if "attributes" in q:
            return Call("s3", "GetObjectAttributes", E.S3, [Need("s3:GetObjectAttributes", obj)])
        action = "s3:GetObjectVersion" if req.q("versionId") else "s3:GetObject"
        call = Call("s3", "GetObject" if m == "GET" else "HeadObject", E.S3, [Need(action, obj)])
        call.missing_needs_list = obj.split("/", 1)[0]
        if m == "GET":
            call.kms.append((bucket_arn, ["kms:Decrypt"]))
        return call
    if m == "PUT":
        op = "UploadPart" if "uploadId" in q else "PutObject"
        call = Call("s3", op, E.S3, [Need("s3:PutObject", obj)])
        if copy_source:
            src = unquote(copy_source).lstrip("/").split("?")[0]
            src_bucket = src.split("/", 1)[0]
            action = "s3:GetObjectVersion" if "versionId=" in copy_source else "s3:GetObject"
            call.operation = "UploadPartCopy" if op == "UploadPart" else "CopyObject"
            call.needs.append(Need(action, f"arn:aws:s3:::{src}"))
            call.kms.append((f"arn:aws:s3:::{src_bucket}", ["kms:Decrypt"]))
        call.kms.append((bucket_arn, ["kms:GenerateDataKey"]))
        return call
    if m == "POST":
        if "uploads" in q:
            call = Call("s3", "CreateMultipartUpload", E.S3, [Need("s3:PutObject", obj)])
            call.kms.append((bucket_arn, ["kms:GenerateDataKey"]))
            return call
        if "uploadId" in q:
            return Call("s3", "CompleteMultipartUpload", E.S3, [Need("s3:PutObject", obj)])
        raise unsupported("s3", f"POST /{bucket}/KEY?{req.raw_query}")
    if m == "DELETE":
        if "uploadId" in q:
            return Call("s3", "AbortMultipartUpload", E.S3, [Need("s3:AbortMultipartUpload", obj)])
        action = "s3:DeleteObjectVersion" if req.q("versionId") else "s3:DeleteObject"
        return Call("s3", "DeleteObject", E.S3, [Need(action, obj)])
    raise unsupported("s3", f"{m} /{bucket}/KEY")


def _s3_prefix(req: Req) -> dict[str, list[str]] | None:
    prefix = req.q("prefix")
    return {"s3:prefix": [prefix]} if prefix is not None else None


# ------------------------------------------------------------------------------------------
# Lambda (REST JSON)
# ------------------------------------------------------------------------------------------


def _lambda_function_arn(req: Req, name: str, qualifier: str | None = None) -> str:
    """The ARN of a function named by name, name:qualifier, partial or full ARN."""
    if name.startswith("arn:"):
        arn = name
    elif re.fullmatch(r"\d{12}:function:.+", name):
        arn = f"arn:aws:lambda:{req.region}:{name}"
    else:
        arn = req.arn("lambda", f"function:{name}")
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return arn


def unqualified_function_arn(arn: str) -> str:
    """A function ARN without its version or alias."""
    return ":".join(arn.split(":")[:7])


_LAMBDA_RE = re.compile(r"^/(\d{4}-\d{2}-\d{2})/([^/]+)(?:/([^/]+))?(?:/([^/]+))?(?:/([^/]+))?/?$")


def awslambda(req: Req, esm_function_arn: Callable[[str], str | None]) -> Call:
    m = req.method
    mt = _LAMBDA_RE.match(req.raw_path)
    if not mt:
        raise unsupported("lambda", f"{m} {req.path}")
    version, collection, a, b, c = mt.groups()
    a = unquote(a) if a else a
    b = unquote(b) if b else b
    c = unquote(c) if c else c
    qualifier = req.q("Qualifier")

    def call(op: str, action: str, resource: str, ctx: dict | None = None) -> Call:
        return Call("lambda", op, E.LAMBDA, [Need(f"lambda:{action}", resource, ctx)])

    if collection == "functions":
        if a is None:
            if m == "GET":
                return call("ListFunctions", "ListFunctions", "*")
            if m == "POST":
                name = req.json().get("FunctionName")
                return call("CreateFunction", "CreateFunction", _lambda_function_arn(req, _str(name, "functionName")))
            raise unsupported("lambda", f"{m} /functions")
        fn = _lambda_function_arn(req, a, qualifier)
        unq = unqualified_function_arn(fn)
        if b is None:
            if m == "GET":
                return call("GetFunction", "GetFunction", fn)
            if m == "DELETE":
                return call("DeleteFunction", "DeleteFunction", fn)
        elif b == "invocations" and m == "POST":
            limit = LAMBDA_ASYNC_PAYLOAD_MAX if req.headers.get("x-amz-invocation-type") == "Event" else LAMBDA_SYNC_PAYLOAD_MAX
            invoke = call("Invoke", "InvokeFunction", fn)
            if len(req.body) > limit:
                invoke.size_error = FrontError(
                    "size",
                    f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
                    code="RequestTooLargeException",
                    status=413,
                )
            return invoke
        elif b == "configuration" and c is None:
            if m == "GET":
                return call("GetFunctionConfiguration", "GetFunctionConfiguration", fn)
            if m == "PUT":
                return call("UpdateFunctionConfiguration", "UpdateFunctionConfiguration", unq)
        elif b == "code" and c is None and m == "PUT":
            return call("UpdateFunctionCode", "UpdateFunctionCode", unq)
        elif b == "versions" and c is None:
            if m == "POST":
                return call("PublishVersion", "PublishVersion", unq)
            if m == "GET":
                return call("ListVersionsByFunction", "ListVersionsByFunction", unq)
        elif b == "aliases":
            if c is None and m == "POST":
                return call("CreateAlias", "CreateAlias", unq)
            if c is None and m == "GET":
                return call("ListAliases", "ListAliases", unq)
            if c is not None:
                op = {"GET": "GetAlias", "PUT": "UpdateAlias", "DELETE": "DeleteAlias"}.get(m)
                if op:
                    return call(op, op, unq)
        elif b == "policy":
            if c is None and m == "POST":
                return call("AddPermission", "AddPermission", fn)
            if c is None and m == "GET":
                return call("GetPolicy", "GetPolicy", fn)
            if c is not None and m == "DELETE":
                return call("RemovePermission", "RemovePermission", fn)
        elif b == "concurrency" and m == "PUT":
            return call("PutFunctionConcurrency", "PutFunctionConcurrency", unq)
        raise unsupported("lambda", f"{m} /{version}/functions/NAME/{b or ''}{'/' + c if c else ''}")
    if collection == "event-source-mappings":
        if a is None:
            if m == "GET":
                return call("ListEventSourceMappings", "ListEventSourceMappings", "*")
            if m == "POST":
                name = _str(req.json().get("FunctionName"), "functionName")
                fn = _lambda_function_arn(req, name)
                return call(
                    "CreateEventSourceMapping",
                    "CreateEventSourceMapping",
                    req.arn("lambda", "event-source-mapping:*"),
                    {"lambda:functionarn": [fn]},
                )
            raise unsupported("lambda", f"{m} /event-source-mappings")
        op = {"GET": "GetEventSourceMapping", "PUT": "UpdateEventSourceMapping", "DELETE": "DeleteEventSourceMapping"}.get(m)
        if op is None or b is not None:
            raise unsupported("lambda", f"{m} /event-source-mappings/UUID")
        fn_arn = esm_function_arn(a)
        ctx = {"lambda:functionarn": [fn_arn]} if fn_arn else None
        return call(op, op, req.arn("lambda", f"event-source-mapping:{a}"), ctx)
    if collection == "tags" and a is not None:
        resource = a
        op = {"GET": "ListTags", "POST": "TagResource", "DELETE": "UntagResource"}.get(m)
        if op:
            return call(op, op, resource)
    raise unsupported("lambda", f"{m} /{version}/{collection}")


# ------------------------------------------------------------------------------------------
# IoT control plane (REST JSON, service "iot")
# ------------------------------------------------------------------------------------------


def iot(req: Req) -> Call:
    m = req.method
    segs = [unquote(s) for s in req.raw_path.strip("/").split("/")] if req.raw_path.strip("/") else []

    def call(op: str, resource: str) -> Call:
        return Call("iot", op, E.IOT, [Need(f"iot:{op}", resource)])

    thing = lambda n: req.arn("iot", f"thing/{n}")  # noqa: E731
    cert = lambda i: req.arn("iot", f"cert/{i}")  # noqa: E731
    policy = lambda n: req.arn("iot", f"policy/{n}")  # noqa: E731
    n = len(segs)
    head = segs[0] if segs else ""
    if head == "things":
        if n == 1 and m == "GET":
            return call("ListThings", "*")
        if n == 2:
            op = {"POST": "CreateThing", "GET": "DescribeThing", "DELETE": "DeleteThing", "PATCH": "UpdateThing"}.get(m)
            if op:
                return call(op, thing(segs[1]))
        if n == 3 and segs[2] == "principals":
            op = {"PUT": "AttachThingPrincipal", "DELETE": "DetachThingPrincipal", "GET": "ListThingPrincipals"}.get(m)
            if op:
                return call(op, thing(segs[1]))
    elif head == "keys-and-certificate" and n == 1 and m == "POST":
        return call("CreateKeysAndCertificate", "*")
    elif head == "certificates":
        if n == 1 and m == "GET":
            return call("ListCertificates", "*")
        if n == 2:
            op = {"PUT": "UpdateCertificate", "DELETE": "DeleteCertificate", "GET": "DescribeCertificate"}.get(m)
            if op:
                return call(op, cert(segs[1]))
    elif head == "target-policies" and n == 2:
        op = {"PUT": "AttachPolicy", "POST": "DetachPolicy"}.get(m)
        if op:
            return call(op, policy(segs[1]))
    elif head == "attached-policies" and n == 2 and m == "POST":
        target = segs[1]
        return call("ListAttachedPolicies", target if target.startswith("arn:") else "*")
    elif head == "principals" and n == 2 and segs[1] == "things" and m == "GET":
        principal = req.headers.get("x-amzn-principal", "")
        return call("ListPrincipalThings", principal if principal.startswith("arn:") else "*")
    elif head == "policies":
        if n == 1 and m == "GET":
            return call("ListPolicies", "*")
        if n == 2:
            op = {"POST": "CreatePolicy", "GET": "GetPolicy", "DELETE": "DeletePolicy"}.get(m)
            if op:
                return call(op, policy(segs[1]))
    elif head == "rules":
        if n == 1 and m == "GET":
            return call("ListTopicRules", "*")
        if n == 2:
            op = {"POST": "CreateTopicRule", "GET": "GetTopicRule", "DELETE": "DeleteTopicRule", "PATCH": "ReplaceTopicRule"}.get(m)
            if op:
                return call(op, req.arn("iot", f"rule/{segs[1]}"))
    elif head == "endpoint" and n == 1 and m == "GET":
        return call("DescribeEndpoint", "*")
    raise unsupported("iot", f"{m} /{'/'.join(segs[:1])}{'/...' if n > 1 else ''}")


# ------------------------------------------------------------------------------------------
# IoT Data Plane (REST JSON, service "iotdata", forwarded to the shadow service)
# ------------------------------------------------------------------------------------------


def iotdata(req: Req) -> Call:
    m = req.method
    segs = [unquote(s) for s in req.raw_path.strip("/").split("/")]

    def call(op: str, resource: str) -> Call:
        return Call("iotdata", op, E.IOTDATA, [Need(f"iot:{op}", resource)])

    if len(segs) == 3 and segs[0] == "things" and segs[2] == "shadow":
        name = req.q("name")
        resource = req.arn("iot", f"thing/{segs[1]}" + (f"/{name}" if name else ""))
        op = {"GET": "GetThingShadow", "POST": "UpdateThingShadow", "DELETE": "DeleteThingShadow"}.get(m)
        if op:
            return call(op, resource)
    if len(segs) == 5 and segs[:4] == ["api", "things", "shadow", "ListNamedShadowsForThing"] and m == "GET":
        return call("ListNamedShadowsForThing", req.arn("iot", f"thing/{segs[4]}"))
    if segs[0] == "topics" and len(segs) >= 2 and m == "POST":
        topic = unquote(req.raw_path.strip("/")[len("topics/") :])
        publish = call("Publish", req.arn("iot", f"topic/{topic}"))
        if len(req.body) > IOT_PUBLISH_MAX:
            publish.size_error = FrontError("size", f"The payload exceeds the maximum size allowed ({IOT_PUBLISH_MAX} bytes).", code="RequestEntityTooLargeException", status=413)
        return publish
    if segs[0] == "retainedMessage" and m == "GET":
        if len(segs) == 1:
            return call("ListRetainedMessages", "*")
        topic = unquote(req.raw_path.strip("/")[len("retainedMessage/") :])
        return call("GetRetainedMessage", req.arn("iot", f"topic/{topic}"))
    raise unsupported("iotdata", f"{m} /{segs[0]}")


# ------------------------------------------------------------------------------------------
# OpenSearch (forwarded to osmem)
# ------------------------------------------------------------------------------------------


def es(req: Req) -> Call:
    method = req.method.upper()
    verb = {"GET": "Get", "HEAD": "Head", "POST": "Post", "PUT": "Put", "DELETE": "Delete", "PATCH": "Patch"}.get(method)
    if verb is None:
        raise unsupported("es", f"ESHttp{method.capitalize()}")
    action = f"es:ESHttp{verb}"
    return Call("es", action.split(":")[1], E.ES, [Need(action, f"{req.domain_arn}/{req.path.lstrip('/')}")])


# ------------------------------------------------------------------------------------------
# IAM and STS (query)
# ------------------------------------------------------------------------------------------

_IAM_ROLE_OPS = {
    "CreateRole", "GetRole", "DeleteRole", "PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy",
    "AttachRolePolicy", "DetachRolePolicy", "ListRolePolicies", "ListAttachedRolePolicies",
    "UpdateAssumeRolePolicy", "TagRole", "UntagRole", "UpdateRole",
}


def iam(req: Req) -> Call:
    form = req.form()
    op = form.get("Action", "")
    if op == "ListRoles":
        return Call("iam", op, E.IAM, [Need("iam:ListRoles", "*")])
    if op in _IAM_ROLE_OPS:
        name = form.get("RoleName")
        if not name:
            raise FrontError("invalid", "1 validation error detected: Value null at 'roleName' failed to satisfy constraint: Member must not be null", code="ValidationError", status=400)
        path = form.get("Path", "/") if op == "CreateRole" else "/"
        return Call("iam", op, E.IAM, [Need(f"iam:{op}", f"arn:aws:iam::{req.account}:role{path}{name}")])
    raise unsupported("iam", op or "(no Action)")


def sts(req: Req, target: str | None) -> Call:
    op = target.rsplit(".", 1)[-1] if target else req.form().get("Action", "")
    if op == "GetCallerIdentity":
        call = Call("sts", op, E.STS if not target else E.Protocol("json", "1.0", namespace="com.amazonaws.sts"))
        call.local = "GetCallerIdentity"
        return call
    raise unsupported("sts", op or "(no Action)")


# ------------------------------------------------------------------------------------------
# CloudFormation (query protocol): the stack records `robofleet dev` registers for
# `robofleet status --stack`, and reading them
# ------------------------------------------------------------------------------------------

_CFN_STACK_OPS = {"CreateStack", "UpdateStack", "DeleteStack", "DescribeStacks", "DescribeStackResources", "ListStackResources"}


def cloudformation(req: Req) -> Call:
    params = req.form()
    op = params.get("Action", "")
    call = Call("cloudformation", op, E.CLOUDFORMATION)
    if op in _CFN_STACK_OPS:
        name = params.get("StackName")
        if name is None and op == "DescribeStacks":
            resource = "*"
        else:
            name = _str(name, "stackName")
            # A stack ARN names itself; a name is the stack of that name (any id).
            resource = name if name.startswith("arn:") else req.arn("cloudformation", f"stack/{name}/*")
        call.needs.append(Need(f"cloudformation:{op}", resource))
        return call
    if op == "ListStacks":
        call.needs.append(Need("cloudformation:ListStacks", "*"))
        return call
    raise unsupported("cloudformation", op or "(no Action)")


# ------------------------------------------------------------------------------------------
# CloudWatch (service "monitoring": query, awsJson1.0 with GraniteServiceVersion20100801.<Op>, or
# Smithy RPC v2 CBOR, POST /service/GraniteServiceVersion20100801/operation/<Op>, rpcv2cbor.py)
# ------------------------------------------------------------------------------------------

# Service Authorization Reference: these have no resource type, so "*".
_CW_STAR = {"GetMetricData", "GetMetricStatistics", "ListMetrics"}


def _cw_members(params: dict, name: str, json_proto: bool) -> list[str]:
    if json_proto:
        v = params.get(name) or []
        return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []
    out = []
    n = 1
    while f"{name}.member.{n}" in params:
        out.append(params[f"{name}.member.{n}"])
        n += 1
    return out


def monitoring(req: Req, target: str | None) -> Call:
    json_proto = target is not None
    proto = E.CLOUDWATCH_JSON if json_proto else E.CLOUDWATCH_QUERY
    params = req.json() if json_proto else req.form()
    op = target.rsplit(".", 1)[-1] if target else params.get("Action", "")
    call = Call("monitoring", op, proto)
    if op == "PutMetricData":
        ns = params.get("Namespace")
        ctx = {"cloudwatch:namespace": [ns]} if isinstance(ns, str) else None
        call.needs.append(Need("cloudwatch:PutMetricData", "*", ctx))
        if isinstance(ns, str) and ns.startswith("AWS/"):
            # PutMetricData API reference: "You cannot specify a namespace that begins with
            # 'AWS/'". The text is AWS's (as Eucalyptus and its tests against AWS have it); like
            # the other validations, after authorization.
            call.size_error = FrontError(
                "invalid",
                "The value AWS/ for parameter Namespace is invalid.",
                code="InvalidParameterValueException" if json_proto else "InvalidParameterValue",
                query_code="InvalidParameterValue",
                status=400,
            )
        return call
    if op in _CW_STAR:
        call.needs.append(Need(f"cloudwatch:{op}", "*"))
        return call
    alarm = lambda n: req.arn("cloudwatch", f"alarm:{n}")  # noqa: E731
    if op == "PutMetricAlarm":
        call.needs.append(Need("cloudwatch:PutMetricAlarm", alarm(_str(params.get("AlarmName"), "alarmName"))))
        return call
    if op == "DescribeAlarms":
        names = _cw_members(params, "AlarmNames", json_proto)
        for n in names or ["*"]:
            call.needs.append(Need("cloudwatch:DescribeAlarms", alarm(n)))
        return call
    if op == "DeleteAlarms":
        for n in _cw_members(params, "AlarmNames", json_proto):
            call.needs.append(Need("cloudwatch:DeleteAlarms", alarm(n)))
        if not call.needs:
            raise FrontError("invalid", "AlarmNames is required", code="MissingParameter", status=400)
        return call
    raise unsupported("cloudwatch", op or "(no Action)")


def monitoring_cbor(req: Req) -> Call:
    """An rpc-v2-cbor call: decoded to the awsJson document, authorized exactly as the awsJson
    call is (same actions, resources, namespace condition, AWS/ refusal), answered in CBOR."""
    op = C.operation(req.method, req.raw_path, req.headers)
    req._json = C.decode_input(req.body, req.headers, op)
    call = monitoring(req, f"{C.TARGET_PREFIX}.{op}")
    call.protocol = E.CLOUDWATCH_CBOR
    call.params = req._json
    return call


# ------------------------------------------------------------------------------------------
# Step Functions (service "states", awsJson1.0 with X-Amz-Target AWSStepFunctions.<Op>): the
# executions of a local stack's state machines (POST /_front/states sends them to its runner)
# ------------------------------------------------------------------------------------------

SFN = E.DEFAULT_PROTOCOL["states"]
# StartExecution's limits (API reference): input at most 262,144 characters, a name 1-80 of
# letters, digits, '-' and '_' (a STANDARD machine's). StopExecution and the rest are refused
# (501): the local runner does not stop executions.
SFN_INPUT_MAX = 262_144
_SFN_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_SFN_MACHINE = re.compile(r"arn:aws:states:([a-z0-9-]+):(\d{12}):stateMachine:([A-Za-z0-9_-]{1,80})")
_SFN_EXECUTION = re.compile(r"arn:aws:states:([a-z0-9-]+):(\d{12}):execution:([A-Za-z0-9_-]{1,80}):([A-Za-z0-9_-]{1,80})")


def _sfn_invalid(code: str, message: str) -> FrontError:
    return FrontError("invalid", message, code=code, status=400)


def _sfn_arn(body: dict, member: str, pattern: re.Pattern, what: str) -> str:
    arn = body.get(member)
    if not isinstance(arn, str) or not pattern.fullmatch(arn):
        raise _sfn_invalid("InvalidArn", f"Invalid Arn: '{member}' must be {what}, got {arn!r}")
    return arn


def state_machine_of(resource: str) -> str:
    """The state machine an ARN of a machine or of one of its executions belongs to."""
    m = _SFN_EXECUTION.fullmatch(resource)
    if m:
        return f"arn:aws:states:{m.group(1)}:{m.group(2)}:stateMachine:{m.group(3)}"
    return resource


def states(req: Req, target: str | None) -> Call:
    prefix, _, op = (target or "").partition(".")
    if prefix != "AWSStepFunctions" or not op:
        raise FrontError("unsupported", f"the AWS front does not authorize states X-Amz-Target {target!r}; add it to tools/aws_front")
    call = Call("states", op, SFN)
    body = req.json()
    call.params = body
    machine = "a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)"
    execution = "an execution ARN (arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME)"
    if op == "StartExecution":
        arn = _sfn_arn(body, "stateMachineArn", _SFN_MACHINE, machine)
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not _SFN_NAME.fullmatch(name)):
            raise _sfn_invalid("InvalidName", f"Invalid Name: {name!r} (1-80 letters, digits, '-' and '_')")
        raw = body.get("input", "{}")
        if not isinstance(raw, str):
            raise _sfn_invalid("InvalidExecutionInput", "input must be a string that holds a JSON document")
        if len(raw) > SFN_INPUT_MAX:
            raise _sfn_invalid("ValidationException", f"1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have length less than or equal to {SFN_INPUT_MAX}")
        try:
            json.loads(raw)
        except ValueError as e:
            raise _sfn_invalid("InvalidExecutionInput", f"Invalid State Machine Execution Input: '{e}'") from None
        call.needs.append(Need("states:StartExecution", arn))
        return call
    if op == "ListExecutions":
        call.needs.append(Need("states:ListExecutions", _sfn_arn(body, "stateMachineArn", _SFN_MACHINE, machine)))
        return call
    if op == "DescribeExecution":
        call.needs.append(Need("states:DescribeExecution", _sfn_arn(body, "executionArn", _SFN_EXECUTION, execution)))
        return call
    raise unsupported("states", op)


# ------------------------------------------------------------------------------------------
# Dispatch
# ------------------------------------------------------------------------------------------

NOT_COVERED = ("logs", "events", "scheduler", "codedeploy")


def describe(req: Req, esm_function_arn: Callable[[str], str | None]) -> Call:
    svc = req.service
    target = req.headers.get("x-amz-target")
    if svc == "dynamodb":
        prefix, _, op = (target or "").partition(".")
        if prefix != "DynamoDB_20120810" or not op:
            raise FrontError("unsupported", f"the AWS front does not authorize dynamodb X-Amz-Target {target!r}; add it to tools/aws_front")
        return dynamodb(req, op)
    if svc == "kinesis":
        prefix, _, op = (target or "").partition(".")
        if prefix != "Kinesis_20131202" or not op:
            raise FrontError("unsupported", f"the AWS front does not authorize kinesis X-Amz-Target {target!r}; add it to tools/aws_front")
        return kinesis(req, op)
    if svc == "sqs":
        if target:
            prefix, _, op = target.partition(".")
            if prefix != "AmazonSQS":
                raise unsupported("sqs", target)
            return sqs(req, op, E.SQS_JSON)
        return sqs(req, req.form().get("Action", ""), E.SQS_QUERY)
    if svc == "s3":
        return s3(req)
    if svc == "lambda":
        return awslambda(req, esm_function_arn)
    if svc == "iot":
        return iot(req)
    if svc == "iotdata":
        return iotdata(req)
    if svc == "es":
        return es(req)
    if svc == "iam":
        return iam(req)
    if svc == "sts":
        return sts(req, target)
    if svc == "cloudformation":
        return cloudformation(req)
    if svc == "states":
        return states(req, target)
    if svc == "monitoring":
        if C.is_cbor(req.headers, req.raw_path):
            return monitoring_cbor(req)
        return monitoring(req, target)
    raise unsupported(svc, (target or req.form().get("Action") or f"{req.method} {req.path}") if svc in NOT_COVERED else "(unknown service)")


def protocol_of(service: str, headers: dict[str, str], raw_path: str = "") -> Protocol:
    """The protocol a refusal is written in, before the operation is known."""
    target = headers.get("x-amz-target")
    if service == "sqs":
        return E.SQS_JSON if target else E.SQS_QUERY
    if service == "monitoring":
        if C.is_cbor(headers, raw_path):
            return E.CLOUDWATCH_CBOR
        return E.CLOUDWATCH_JSON if target else E.CLOUDWATCH_QUERY
    proto = E.DEFAULT_PROTOCOL.get(service)
    if proto is not None:
        return proto
    return E.Protocol("json", "1.1") if target else E.Protocol("query", xmlns="")


def owner_of(resource: str) -> str:
    """The resource whose resource policy and encryption apply to `resource`."""
    if resource.startswith("arn:aws:s3:::"):
        return resource.split("/", 1)[0]
    parts = resource.split(":", 5)
    if len(parts) == 6:
        service, rest = parts[2], parts[5]
        if service == "es" and rest.startswith("domain/"):
            return ":".join(parts[:5]) + ":" + "/".join(rest.split("/", 2)[:2])
        if service == "dynamodb" and rest.startswith("table/"):
            return ":".join(parts[:5]) + ":" + "/".join(rest.split("/", 2)[:2])
    return resource
