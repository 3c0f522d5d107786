"""SigV4 verification with botocore's own canonicalisation (independent of the Rust signer).

The canonical request is built by botocore's `SigV4Auth` (`S3SigV4Auth` for S3: the path is not
normalised or encoded again, the payload hash is the x-amz-content-sha256 value) over exactly the
headers named in SignedHeaders, with the values the request carries; a signed header that the
request does not carry is canonicalised with an empty value, so the signature cannot match.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import unquote

from botocore.auth import SigV4Auth, S3SigV4Auth

from .errors import SIGNATURE_MISMATCH, FrontError

MAX_SKEW_S = 15 * 60
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
S3_SPECIAL_PAYLOADS = {
    "UNSIGNED-PAYLOAD",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SIG = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^\d{8}T\d{6}Z$")


@dataclass
class ParsedAuth:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str | None) -> ParsedAuth:
    """Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`."""
    if not value:
        raise FrontError("missing", "Missing Authentication Token")
    if not value.startswith("AWS4-HMAC-SHA256 "):
        raise FrontError("missing", "Missing Authentication Token (only AWS4-HMAC-SHA256 is accepted)")
    parts: dict[str, str] = {}
    for item in value[len("AWS4-HMAC-SHA256 ") :].split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise FrontError("malformed", f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters; got '{item.strip()}'. Authorization={value}")
        parts[key] = val
    for name in ("Credential", "SignedHeaders", "Signature"):
        if name not in parts:
            raise FrontError("malformed", f"Authorization header requires '{name}' parameter. Authorization={value}")
    cred = parts["Credential"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request" or not cred[0]:
        raise FrontError("malformed", f"Credential should be scoped to a valid region, service and aws4_request terminator. Credential={parts['Credential']}")
    signed = parts["SignedHeaders"].split(";")
    if signed != sorted(signed) or any(h != h.lower() or not h for h in signed):
        raise FrontError("malformed", f"SignedHeaders must be lower-case, sorted and ';'-separated: {parts['SignedHeaders']}")
    if not _SIG.match(parts["Signature"]):
        raise FrontError("malformed", f"Signature must be 64 lower-case hex digits. Authorization={value}")
    return ParsedAuth(cred[0], cred[1], cred[2], cred[3], signed, parts["Signature"])


class _Signable:
    """The few attributes botocore's SigV4Auth reads from a request."""

    __slots__ = ("method", "url", "params", "headers", "body", "context")

    def __init__(self, method: str, url: str, params: list[tuple[str, str]], payload_hash: str, timestamp: str):
        self.method = method
        self.url = url
        self.params = params
        # canonical_request uses this value verbatim as the payload hash.
        self.headers = {"X-Amz-Content-SHA256": payload_hash}
        self.body = b""
        self.context = {"timestamp": timestamp}


class _HeaderMap(dict):
    def get_all(self, key: str) -> list[str]:
        return [self[key]]


class _Verifier(SigV4Auth):
    def __init__(self, signing_key: bytes, headers: _HeaderMap, service: str, region: str):
        SigV4Auth.__init__(self, None, service, region)
        self._signing_key = signing_key
        self._header_map = headers

    def headers_to_sign(self, request):  # exactly the SignedHeaders, as carried
        return self._header_map

    def signature(self, string_to_sign, request):
        return hmac.new(self._signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class _S3Verifier(S3SigV4Auth):
    __init__ = _Verifier.__init__
    headers_to_sign = _Verifier.headers_to_sign
    signature = _Verifier.signature


@lru_cache(maxsize=4096)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    return hmac.new(k, b"aws4_request", hashlib.sha256).digest()


def request_timestamp(headers: dict[str, str]) -> tuple[str, float]:
    """The SigV4 timestamp (x-amz-date, else Date) and its epoch seconds."""
    amz = headers.get("x-amz-date")
    if amz is not None:
        if not _DATE.match(amz):
            raise FrontError("malformed", f"Invalid X-Amz-Date: {amz} (expected YYYYMMDD'T'HHMMSS'Z')")
        try:
            epoch = calendar.timegm((int(amz[0:4]), int(amz[4:6]), int(amz[6:8]), int(amz[9:11]), int(amz[11:13]), int(amz[13:15]), 0, 0, 0))
        except ValueError:
            raise FrontError("malformed", f"Invalid X-Amz-Date: {amz}") from None
        return amz, float(epoch)
    date = headers.get("date")
    if date is None:
        raise FrontError("malformed", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    try:
        dt = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise FrontError("malformed", f"Invalid Date header: {date}") from None
    epoch = dt.timestamp()
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch)), epoch


def check_skew(timestamp: str, epoch: float, now: float) -> None:
    if abs(now - epoch) > MAX_SKEW_S:
        fmt = "%Y%m%dT%H%M%SZ"
        if epoch < now:
            msg = (
                f"Signature expired: {timestamp} is now earlier than "
                f"{time.strftime(fmt, time.gmtime(now - MAX_SKEW_S))} "
                f"({time.strftime(fmt, time.gmtime(now))} - 15 min.)"
            )
        else:
            msg = (
                f"Signature not yet current: {timestamp} is still later than "
                f"{time.strftime(fmt, time.gmtime(now + MAX_SKEW_S))} "
                f"({time.strftime(fmt, time.gmtime(now))} + 15 min.)"
            )
        raise FrontError("expired", msg)


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs; botocore re-encodes them the SigV4 way."""
    pairs = []
    if raw_query:
        for item in raw_query.split("&"):
            if not item:
                continue
            key, _, value = item.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def compute_signature(
    *,
    secret: str,
    auth: ParsedAuth,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    payload_hash: str,
    timestamp: str,
    s3: bool,
) -> str:
    header_map = _HeaderMap((name, headers.get(name, "")) for name in auth.signed_headers)
    key = signing_key(secret, auth.date, auth.region, auth.service)
    cls = _S3Verifier if s3 else _Verifier
    verifier = cls(key, header_map, auth.service, auth.region)
    request = _Signable(method, "http://front" + raw_path, query_pairs(raw_query), payload_hash, timestamp)
    canonical = verifier.canonical_request(request)
    string_to_sign = verifier.string_to_sign(request, canonical)
    return verifier.signature(string_to_sign, request)


def payload_hash(headers: dict[str, str], body: bytes, s3: bool) -> str:
    """The payload hash to canonicalise; refuses a declared hash that is not the body's."""
    declared = headers.get("x-amz-content-sha256")
    if s3:
        if declared is None:
            raise FrontError(
                "invalid",
                "Missing required header for this request: x-amz-content-sha256",
                code="InvalidRequest",
                status=400,
            )
        if declared in S3_SPECIAL_PAYLOADS:
            return declared
        if not _HEX64.match(declared):
            raise FrontError("invalid", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER), or a valid sha256 value.", code="InvalidArgument", status=400)
        if hashlib.sha256(body).hexdigest() != declared:
            raise FrontError(
                "invalid",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                code="XAmzContentSHA256Mismatch",
                status=400,
            )
        return declared
    actual = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    if declared is not None and declared != actual:
        raise FrontError("signature", "The provided 'x-amz-content-sha256' header does not match the request body. " + SIGNATURE_MISMATCH)
    return actual


def verify(
    *,
    auth: ParsedAuth,
    secret: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    service: str,
    now: float,
) -> None:
    """Raises FrontError unless the request carries a valid SigV4 signature for `secret`."""
    if "host" not in auth.signed_headers:
        raise FrontError("malformed", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    timestamp, epoch = request_timestamp(headers)
    if timestamp[:8] != auth.date:
        raise FrontError("signature", f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{auth.date}' != '{timestamp[:8]}', from '{timestamp}'.")
    check_skew(timestamp, epoch, now)
    s3 = service == "s3"
    phash = payload_hash(headers, body, s3)
    expected = compute_signature(
        secret=secret,
        auth=auth,
        method=method,
        raw_path=raw_path,
        raw_query=raw_query,
        headers=headers,
        payload_hash=phash,
        timestamp=timestamp,
        s3=s3,
    )
    if not hmac.compare_digest(expected, auth.signature):
        raise FrontError("signature", SIGNATURE_MISMATCH)
