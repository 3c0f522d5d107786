"""Protocols and the error answers of each, as the AWS services write them.

Every refusal of the front is a `FrontError` (a kind, a message, optionally a service-specific
code and status); `render` turns it into the bytes the calling SDK expects for the protocol of
the request, so that botocore and the Rust SDK parse the right error code from it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import cbor2

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
S3_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
INVALID_TOKEN = "The security token included in the request is invalid."
CORAL = "com.amazon.coral.service"


@dataclass(frozen=True)
class Protocol:
    """How a service is spoken: `kind` is json, query, rest-json, rest-xml, es or cbor (Smithy
    RPC v2 CBOR, whose errors are written like awsJson 1.0's, in CBOR: see rpcv2cbor.py)."""

    kind: str
    json_version: str = "1.0"
    # awsJson 1.0 qualifies error types with a namespace ("com.amazonaws.dynamodb.v20120810#X").
    namespace: str | None = None
    # awsQueryCompatible services (SQS, CloudWatch) also send `x-amzn-query-error: Code;Sender`.
    query_compatible: bool = False
    xmlns: str | None = None
    # REST JSON services differ in the casing of the message member.
    message_key: str = "message"


DYNAMODB = Protocol("json", "1.0", namespace="com.amazonaws.dynamodb.v20120810")
KINESIS = Protocol("json", "1.1")
SQS_JSON = Protocol("json", "1.0", namespace="com.amazonaws.sqs", query_compatible=True)
SQS_QUERY = Protocol("query", xmlns="http://queue.amazonaws.com/doc/2012-11-05/")
CLOUDWATCH_JSON = Protocol("json", "1.0", namespace="com.amazonaws.cloudwatch", query_compatible=True)
CLOUDWATCH_QUERY = Protocol("query", xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/")
CLOUDWATCH_CBOR = Protocol("cbor", "1.0", namespace="com.amazonaws.cloudwatch", query_compatible=True)
IAM = Protocol("query", xmlns="https://iam.amazonaws.com/doc/2010-05-08/")
STS = Protocol("query", xmlns="https://sts.amazonaws.com/doc/2011-06-15/")
CLOUDFORMATION = Protocol("query", xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/")
LAMBDA = Protocol("rest-json", message_key="Message")
IOT = Protocol("rest-json")
IOTDATA = Protocol("rest-json")
SCHEDULER = Protocol("rest-json")
S3 = Protocol("rest-xml")
ES = Protocol("es")
JSON_11 = Protocol("json", "1.1")

# The protocol of a service when the request itself does not tell (see services.protocol_of).
DEFAULT_PROTOCOL = {
    "dynamodb": DYNAMODB,
    "kinesis": KINESIS,
    "sqs": SQS_JSON,
    "monitoring": CLOUDWATCH_QUERY,
    "iam": IAM,
    "sts": STS,
    "cloudformation": CLOUDFORMATION,
    "lambda": LAMBDA,
    "iot": IOT,
    "iotdata": IOTDATA,
    "s3": S3,
    "es": ES,
    "logs": JSON_11,
    "events": JSON_11,
    "states": Protocol("json", "1.0", namespace="com.amazonaws.sfn"),
    "codedeploy": JSON_11,
    "scheduler": SCHEDULER,
}


@dataclass
class FrontError(Exception):
    """A refusal. `kind` selects the per-protocol code and status unless `code`/`status` are given.

    kinds: missing (no or unusable Authorization), malformed (IncompleteSignature), unknown_key,
    bad_token, signature, expired, denied, kms_denied, unsupported, size, invalid (any other
    client error with an explicit code), backend (the backend cannot be reached).
    """

    kind: str
    message: str
    code: str | None = None
    status: int | None = None
    # For awsQueryCompatible JSON: the query code (x-amzn-query-error) when it differs from `code`.
    query_code: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


# kind -> (code, status) per protocol kind; None = use the FrontError's own code/status.
_JSON = {
    "missing": ("MissingAuthenticationTokenException", 400),
    "malformed": ("IncompleteSignatureException", 400),
    "unknown_key": ("UnrecognizedClientException", 400),
    "bad_token": ("UnrecognizedClientException", 400),
    "signature": ("InvalidSignatureException", 400),
    "expired": ("InvalidSignatureException", 400),
    "denied": ("AccessDeniedException", 400),
    "unsupported": ("FrontUnsupportedOperation", 501),
}
# awsQueryCompatible JSON services answer auth errors with the old query codes in the header.
_QUERY_COMPAT_CODE = {
    "missing": "MissingAuthenticationToken",
    "malformed": "IncompleteSignature",
    "unknown_key": "InvalidClientTokenId",
    "bad_token": "InvalidClientTokenId",
    "signature": "SignatureDoesNotMatch",
    "expired": "SignatureDoesNotMatch",
    "denied": "AccessDenied",
}
_CORAL_KINDS = {"missing", "malformed", "unknown_key", "bad_token", "signature", "expired"}
_QUERY = {
    "missing": ("MissingAuthenticationToken", 403),
    "malformed": ("IncompleteSignature", 400),
    "unknown_key": ("InvalidClientTokenId", 403),
    "bad_token": ("InvalidClientTokenId", 403),
    "signature": ("SignatureDoesNotMatch", 403),
    "expired": ("SignatureDoesNotMatch", 403),
    "denied": ("AccessDenied", 403),
    "unsupported": ("FrontUnsupportedOperation", 501),
}
_REST_JSON = {
    "missing": ("MissingAuthenticationTokenException", 403),
    "malformed": ("IncompleteSignatureException", 403),
    "unknown_key": ("UnrecognizedClientException", 403),
    "bad_token": ("UnrecognizedClientException", 403),
    "signature": ("InvalidSignatureException", 403),
    "expired": ("InvalidSignatureException", 403),
    "denied": ("AccessDeniedException", 403),
    "unsupported": ("FrontUnsupportedOperation", 501),
}
_S3 = {
    "missing": ("AccessDenied", 403),
    "malformed": ("AuthorizationHeaderMalformed", 400),
    "unknown_key": ("InvalidAccessKeyId", 403),
    "bad_token": ("InvalidToken", 400),
    "signature": ("SignatureDoesNotMatch", 403),
    "expired": ("RequestTimeTooSkewed", 403),
    "denied": ("AccessDenied", 403),
    "kms_denied": ("AccessDenied", 403),
    "unsupported": ("FrontUnsupportedOperation", 501),
}
_S3_MESSAGES = {
    "missing": "Access Denied",
    "unknown_key": "The AWS Access Key Id you provided does not exist in our records.",
    "bad_token": "The provided token is malformed or otherwise invalid.",
    "signature": S3_SIGNATURE_MISMATCH,
    "expired": "The difference between the request time and the current time is too large.",
    "denied": "Access Denied",
}


def request_id() -> str:
    return str(uuid.uuid4())


def render(err: FrontError, proto: Protocol, method: str = "GET") -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of `err` in protocol `proto`."""
    rid = request_id()
    kind = proto.kind
    if kind == "json":
        return _render_json(err, proto, rid)
    if kind == "cbor":
        return _render_cbor(err, proto, rid)
    if kind == "query":
        code, status = _pick(err, _QUERY, "InvalidParameterValue", 400)
        body = (
            f'<ErrorResponse xmlns="{proto.xmlns or ""}"><Error><Type>Sender</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(err.message)}</Message></Error>"
            f"<RequestId>{rid}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)]
        return status, headers + err.headers, body
    if kind == "rest-json":
        code, status = _pick(err, _REST_JSON, "BadRequestException", 400)
        if err.kind == "denied" and proto is IOTDATA:
            code = "ForbiddenException"
        payload = {proto.message_key: err.message}
        if proto is LAMBDA and code == "RequestTooLargeException":
            payload["Type"] = "User"
        body = json.dumps(payload).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", rid),
        ]
        return status, headers + err.headers, body
    if kind == "rest-xml":
        code, status = _pick(err, _S3, "InvalidRequest", 400)
        message = err.message if err.kind not in _S3_MESSAGES or err.code else _S3_MESSAGES[err.kind]
        if err.kind == "kms_denied":
            message = err.message
        headers = [("x-amz-request-id", rid), ("x-amz-id-2", rid)]
        if method == "HEAD":  # S3 answers HEAD errors without a body
            return status, headers + err.headers, b""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{rid}</RequestId><HostId>{rid}</HostId></Error>"
        ).encode()
        return status, [("Content-Type", "application/xml")] + headers + err.headers, body
    # es: OpenSearch Service's own front answers with a bare JSON object.
    status = err.status or (501 if err.kind == "unsupported" else 502 if err.kind == "backend" else 403)
    key = "Message" if err.kind in ("denied", "size", "missing") else "message"
    if err.kind == "unsupported":
        payload = {"__type": "FrontUnsupportedOperation", "message": err.message}
    else:
        payload = {key: err.message}
    body = json.dumps(payload).encode()
    return status, [("Content-Type", "application/json"), ("x-amzn-RequestId", rid)] + err.headers, body


def _pick(err: FrontError, table: dict, default_code: str, default_status: int) -> tuple[str, int]:
    code, status = table.get(err.kind, (default_code, default_status))
    return err.code or code, err.status or status


def _json_error(err: FrontError, proto: Protocol) -> tuple[str, int, str]:
    """(code, status, __type) of an awsJson (or rpc-v2-cbor) error."""
    code, status = _pick(err, _JSON, "ValidationException", 400)
    if proto.json_version == "1.0":
        if err.kind in _CORAL_KINDS or (err.kind == "denied" and proto.query_compatible):
            type_ = f"{CORAL}#{code}"
        elif code == "ValidationException":
            type_ = f"com.amazon.coral.validate#{code}"
        elif proto.namespace and err.kind != "unsupported":
            type_ = f"{proto.namespace}#{code}"
        else:
            type_ = code
    else:
        type_ = code
    return code, status, type_


def _query_error(err: FrontError, code: str) -> tuple[str, str]:
    qcode = err.query_code or _QUERY_COMPAT_CODE.get(err.kind) or code
    return ("x-amzn-query-error", f"{qcode};Sender")


def _render_json(err: FrontError, proto: Protocol, rid: str) -> tuple[int, list[tuple[str, str]], bytes]:
    code, status, type_ = _json_error(err, proto)
    headers = [
        ("Content-Type", f"application/x-amz-json-{proto.json_version}"),
        ("x-amzn-ErrorType", code),
        ("x-amzn-RequestId", rid),
    ]
    if proto.query_compatible:
        headers.append(_query_error(err, code))
    body = json.dumps({"__type": type_, "message": err.message}).encode()
    return status, headers + err.headers, body


def _render_cbor(err: FrontError, proto: Protocol, rid: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Smithy RPC v2 CBOR ("Operation error serialization"): the body is a CBOR map whose
    `__type` is the error's absolute shape ID, with `message`; every response carries
    `smithy-protocol: rpc-v2-cbor`; no X-Amzn-ErrorType (clients ignore it). awsQueryCompatible
    services (CloudWatch) add `x-amzn-query-error: Code;Sender`, the code the SDKs match on."""
    code, status, type_ = _json_error(err, proto)
    headers = [
        ("Content-Type", "application/cbor"),
        ("smithy-protocol", "rpc-v2-cbor"),
        ("x-amzn-RequestId", rid),
    ]
    if proto.query_compatible:
        headers.append(_query_error(err, code))
    body = cbor2.dumps({"__type": type_, "message": err.message})
    return status, headers + err.headers, body


def denial_message(principal_arn: str, action: str, resource: str, reason: str) -> str:
    """IAM's wording. reason: identity-deny, resource-deny, no-identity-allow, no-resource-allow."""
    head = f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource}"
    if reason == "identity-deny":
        return f"{head} with an explicit deny in an identity-based policy"
    if reason == "resource-deny":
        return f"{head} with an explicit deny in a resource-based policy"
    if reason == "no-resource-allow":
        return f"{head} because no resource-based policy allows the {action} action"
    return f"{head} because no identity-based policy allows the {action} action"
