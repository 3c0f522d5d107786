"""CloudWatch's Smithy RPC v2 CBOR protocol, translated to and from the awsJson1.0 moto speaks.

The Rust SDK's CloudWatch client (aws-sdk-cloudwatch 1.100+) speaks `smithy.protocols#rpcv2Cbor`
(Smithy's spec, "Smithy RPC v2 CBOR protocol"): `POST /service/GraniteServiceVersion20100801/
operation/<Op>`, `smithy-protocol: rpc-v2-cbor`, `Content-Type: application/cbor`, a CBOR map as
the body. moto only speaks query and awsJson1.0, so the front decodes the CBOR input, authorizes
it exactly like the awsJson call (services.monitoring), forwards it to moto as awsJson1.0
(`X-Amz-Target: GraniteServiceVersion20100801.<Op>`) and encodes moto's JSON answer back to CBOR.

What differs between the two encodings is driven by botocore's CloudWatch service model (the
operation's input and output shapes, recursively through structures, lists and maps):
timestamps are CBOR tag 1 (epoch seconds) in CBOR and epoch-second numbers in JSON; blobs are
CBOR byte strings and base64 strings in JSON; and numbers are typed in CBOR where JSON has just
numbers. The last matters: the Rust SDK's decoder (aws-smithy-cbor, minicbor) reads a `double`
only from a CBOR float and an `integer`/`long` only from a CBOR integer, and a timestamp only
as tag 1 around a float, so a JSON `150` for a double is written as 150.0, a timestamp always as
tag 1 + a 64-bit float (the spec also allows an integer there; this client would refuse it).
Nulls are omitted, as the spec requires.

Responses carry `smithy-protocol: rpc-v2-cbor` (every response, errors too: a client treats a
response without it as malformed); an operation without output (PutMetricData, PutMetricAlarm,
DeleteAlarms) answers 200 with no body and no Content-Type. Errors are a CBOR map with `__type`,
the error's absolute shape ID (`com.amazonaws.cloudwatch#InvalidParameterValueException`), and
`message`; CloudWatch is awsQueryCompatible, so `x-amzn-query-error: <query code>;Sender` carries
the code the SDKs match on (`InvalidParameterValue`), as in its awsJson answers (errors.py
writes the front's own refusals; moto's errors are rewritten here).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import math
import re
import struct
import zlib
from decimal import Decimal
from typing import Any

import cbor2

from . import errors as E
from .errors import FrontError

SERVICE = "GraniteServiceVersion20100801"  # the service shape's name (its ID: com.amazonaws.cloudwatch#...)
TARGET_PREFIX = SERVICE  # awsJson1.0's X-Amz-Target prefix for CloudWatch
NAMESPACE = "com.amazonaws.cloudwatch"
CONTENT_TYPE = "application/cbor"
PROTOCOL_HEADER = "smithy-protocol"
PROTOCOL = "rpc-v2-cbor"
MAX_DECOMPRESSED = 64 * 1024 * 1024  # a gzip body is inflated at most this far (PutMetricData is 1 MB in AWS)
# {prefix?}/service/{serviceName}/operation/{operationName}: only the last four segments route.
_PATH = re.compile(r"(?:/.*)?/service/([^/]+)/operation/([^/]+)")
_SERVICE_NAMES = {SERVICE, f"{NAMESPACE}.{SERVICE}"}  # the spec: the absolute ID with '#' as '.' too


def is_cbor(headers: dict[str, str], raw_path: str = "") -> bool:
    """Whether a request is (or claims to be) rpc-v2-cbor."""
    return (
        PROTOCOL_HEADER in headers
        or headers.get("content-type", "").startswith(CONTENT_TYPE)
        or ("/service/" in raw_path and "/operation/" in raw_path)
    )


def _malformed(message: str) -> FrontError:
    return FrontError("invalid", message, code="SerializationException", status=400)


def operation(method: str, raw_path: str, headers: dict[str, str]) -> str:
    """The operation of an rpc-v2-cbor request, after the spec's claiming rules."""
    m = _PATH.fullmatch(raw_path)
    if m is None or m.group(1) not in _SERVICE_NAMES:
        raise FrontError(
            "unsupported",
            f"the AWS front does not authorize cloudwatch {method} {raw_path[:200]}: an rpc-v2-cbor request goes to "
            f"/service/{SERVICE}/operation/OPERATION; add it to tools/aws_front",
        )
    if headers.get(PROTOCOL_HEADER) != PROTOCOL:
        raise _malformed(f"An rpc-v2-cbor request must carry the header smithy-protocol: {PROTOCOL}.")
    if method != "POST":
        raise _malformed(f"An rpc-v2-cbor request must be a POST, not {method}.")
    if "x-amz-target" in headers or "x-amzn-target" in headers:  # the spec: servers MUST reject these
        raise _malformed("An rpc-v2-cbor request must not carry X-Amz-Target or X-Amzn-Target.")
    return m.group(2)


# ------------------------------------------------------------------------------------------
# The service model (botocore's, loaded once)
# ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("cloudwatch")


def _operation_model(op: str) -> Any | None:
    model = _model()
    return model.operation_model(op) if op in model.operation_names else None


@functools.lru_cache(maxsize=1)
def _errors_by_code() -> dict[str, Any]:
    """Error shapes by shape name and by query code (awsQueryError)."""
    model = _model()
    out: dict[str, Any] = {}
    for name in model.shape_names:
        shape = model.shape_for(name)
        if shape.metadata.get("exception"):
            code = (shape.metadata.get("error") or {}).get("code")
            if code:
                out.setdefault(code, shape)
            out[name] = shape
    return out


# ------------------------------------------------------------------------------------------
# Request: CBOR -> awsJson1.0
# ------------------------------------------------------------------------------------------


def decode_input(body: bytes, headers: dict[str, str], op: str) -> dict:
    """The JSON document of a CBOR request body (gzip undone: PutMetricData has requestCompression)."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        try:
            d = zlib.decompressobj(wbits=31)
            body = d.decompress(body, MAX_DECOMPRESSED)
            if d.unconsumed_tail:
                raise _malformed(f"The decompressed request body exceeds {MAX_DECOMPRESSED} bytes.")
            if not d.eof:
                raise _malformed("The request body is truncated gzip.")
        except zlib.error as e:
            raise _malformed(f"The request body is not valid gzip: {e}") from None
    elif encoding not in ("", "identity"):
        raise _malformed(f"Unsupported Content-Encoding {encoding!r}.")
    if not body:
        return {}
    try:
        doc = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, OverflowError, TypeError) as e:
        raise _malformed(f"The request body is not valid CBOR: {e}") from None
    if not isinstance(doc, dict):
        raise _malformed("The request body must be a CBOR map.")
    om = _operation_model(op)
    return _to_json(doc, om.input_shape if om is not None else None, "input")


_DROP = object()


def _to_json(v: Any, shape: Any, where: str) -> Any:
    if v is None or v is cbor2.undefined:
        return _DROP
    t = shape.type_name if shape is not None else None
    if isinstance(v, dict):
        if t not in (None, "structure", "map"):
            raise _malformed(f"Expected a {t} at {where}, got a map.")
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise _malformed(f"Map keys must be text strings at {where}.")
            if t == "structure":
                sub = shape.members.get(k)
            elif t == "map":
                sub = shape.value
            else:
                sub = None
            cx = _to_json(x, sub, f"{where}.{k}")
            if cx is not _DROP:
                out[k] = cx
        return out
    if isinstance(v, list):
        if t not in (None, "list"):
            raise _malformed(f"Expected a {t} at {where}, got an array.")
        sub = shape.member if t == "list" else None
        return [cx for i, x in enumerate(v) if (cx := _to_json(x, sub, f"{where}[{i}]")) is not _DROP]
    if isinstance(v, dt.datetime):  # tag 0 or 1
        if t not in (None, "timestamp"):
            raise _malformed(f"Expected a {t} at {where}, got a timestamp.")
        stamp = v.timestamp() if v.tzinfo else v.replace(tzinfo=dt.timezone.utc).timestamp()
        return int(stamp) if stamp == int(stamp) else stamp
    if isinstance(v, (bytes, bytearray)):
        if t not in (None, "blob"):
            raise _malformed(f"Expected a {t} at {where}, got a byte string.")
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, float) and not math.isfinite(v):
        raise _malformed(f"Non-finite number at {where} (JSON has none).")
    if isinstance(v, (str, bool, int, float)):
        return v
    raise _malformed(f"Unsupported CBOR item {type(v).__name__} at {where}.")


def moto_environ(environ: dict, op: str, doc: dict) -> tuple[dict, bytes]:
    """The WSGI environ and body of the same call in awsJson1.0 (SigV4 was checked on the original)."""
    body = json.dumps(doc).encode()
    env = {k: v for k, v in environ.items() if k not in ("HTTP_SMITHY_PROTOCOL", "HTTP_CONTENT_ENCODING", "HTTP_ACCEPT")}
    env.update({
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "REQUEST_URI": "/",
        "RAW_URI": "/",
        "CONTENT_TYPE": "application/x-amz-json-1.0",
        "HTTP_X_AMZ_TARGET": f"{TARGET_PREFIX}.{op}",
        "CONTENT_LENGTH": str(len(body)),
    })
    return env, body


# ------------------------------------------------------------------------------------------
# Response: awsJson1.0 -> CBOR
# ------------------------------------------------------------------------------------------


class _F64:
    """A float written as a 64-bit CBOR float (cbor2 writes NaN and infinities as half floats,
    which the spec says SHOULD NOT be sent)."""

    __slots__ = ("v",)

    def __init__(self, v: float):
        self.v = v


class _F32:
    """A Smithy `float`: a 32-bit CBOR float (the Rust SDK reads f32 members only from f16/f32)."""

    __slots__ = ("v",)

    def __init__(self, v: float):
        self.v = v


def _encode_default(encoder: Any, value: Any) -> None:
    if isinstance(value, _F64):
        encoder.write(b"\xfb" + struct.pack(">d", value.v))
    elif isinstance(value, _F32):
        encoder.write(b"\xfa" + struct.pack(">f", value.v))
    else:
        raise cbor2.CBOREncodeTypeError(f"cannot encode {type(value).__name__}")


def dumps(doc: Any) -> bytes:
    return cbor2.dumps(doc, default=_encode_default)


def _double(v: Any) -> Any:
    f = float(v)
    return f if math.isfinite(f) else _F64(f)


def _epoch(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError(f"not a timestamp: {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()
    raise ValueError(f"not a timestamp: {v!r}")


def _from_json(v: Any, shape: Any) -> Any:
    """moto's JSON value as the CBOR item the shape calls for (None: leave it out)."""
    if v is None:
        return None
    t = shape.type_name if shape is not None else None
    if t == "structure" and isinstance(v, dict):
        out = {}
        for k, x in v.items():
            cx = _from_json(x, shape.members.get(k))
            if cx is not None:
                out[k] = cx
        return out
    if t == "map" and isinstance(v, dict):
        return {k: cx for k, x in v.items() if (cx := _from_json(x, shape.value)) is not None}
    if t == "list" and isinstance(v, list):
        return [cx for x in v if (cx := _from_json(x, shape.member)) is not None]
    if t == "timestamp":
        return cbor2.CBORTag(1, _double(_epoch(v)))  # always a float: this client reads no integer here
    if t == "double":
        return _double(v)
    if t == "float":
        return _F32(float(v))
    if t in ("integer", "long", "short", "byte") and not isinstance(v, bool):
        return int(v) if isinstance(v, (int, float)) else int(str(v))
    if t == "blob" and isinstance(v, str):
        try:
            return base64.b64decode(v)
        except binascii.Error:
            return v.encode()
    if t is None:  # a member the model does not know: as moto wrote it
        if isinstance(v, dict):
            return {k: cx for k, x in v.items() if (cx := _from_json(x, None)) is not None}
        if isinstance(v, list):
            return [cx for x in v if (cx := _from_json(x, None)) is not None]
        if isinstance(v, float):
            return _double(v)
    return v


def _header(headers: list, name: str) -> str | None:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def reply(op: str, status: int, headers: list, body: bytes) -> tuple[int, list, bytes]:
    """moto's awsJson1.0 answer to `op`, as the rpc-v2-cbor answer."""
    rid = _header(headers, "x-amzn-requestid") or E.request_id()
    if status != 200:
        return _error_reply(status, headers, body, rid)
    out = [(PROTOCOL_HEADER, PROTOCOL), ("x-amzn-RequestId", rid)]
    om = _operation_model(op)
    shape = om.output_shape if om is not None else None
    if om is not None and shape is None:  # no output: no body, no Content-Type (the spec)
        return 200, out, b""
    try:
        doc = json.loads(body) if body.strip() else {}
    except ValueError:
        raise FrontError("internal", f"moto's answer to {op} is not JSON: {body[:200]!r}", code="FrontInternalError", status=500) from None
    return 200, [("Content-Type", CONTENT_TYPE)] + out, dumps(_from_json(doc, shape) or {})


def _error_reply(status: int, headers: list, body: bytes, rid: str) -> tuple[int, list, bytes]:
    try:
        doc = json.loads(body) if body.strip() else {}
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    raw = doc.get("__type") or _header(headers, "x-amzn-errortype") or ("InternalFailure" if status >= 500 else "ValidationError")
    name = str(raw).split(":", 1)[0].rsplit("#", 1)[-1]
    shape = _errors_by_code().get(name)
    query = _header(headers, "x-amzn-query-error")
    if shape is not None:  # moto writes its own namespace ("GraniteServiceVersion20100801#..."): AWS's is the model's
        type_ = f"{NAMESPACE}#{shape.name}"
        err = shape.metadata.get("error") or {}
        query = query or f"{err.get('code', shape.name)};{'Sender' if err.get('senderFault') else 'Receiver'}"
    else:
        type_ = raw if "#" in str(raw) else f"{E.CORAL}#{name}"
        query = query or f"{name};{'Receiver' if status >= 500 else 'Sender'}"
    message = doc.get("message") or doc.get("Message") or (body[:500].decode("utf-8", "replace") if not doc else "")
    out = [
        ("Content-Type", CONTENT_TYPE),
        (PROTOCOL_HEADER, PROTOCOL),
        ("x-amzn-RequestId", rid),
        ("x-amzn-query-error", query),
    ]
    return status, out, dumps({"__type": type_, "message": str(message)})
