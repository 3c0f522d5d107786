"""API Gateway HTTP APIs with IAM authorization, as the front serves them (POST /_front/execute-api).

One port per API id. A request there is handled as API Gateway handles it for a route whose
authorization type is AWS_IAM:

1. **Route selection** (before any authorization, as in API Gateway): the method and path are
   matched against the API's routes (`GET /robots/{id}`; `{name+}` greedy, last segment only;
   `ANY` matches every method); literal segments win over parameters. No route: 404
   `{"message":"Not Found"}`.
2. **SigV4** for the service `execute-api` in the front's region (the server's verification,
   shared with every other port), and the caller's key and session token.
3. **IAM**: `execute-api:Invoke` on `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH`
   (the request's own path, without its leading slash), evaluated like every other action.
   Refusals are 403 `{"message": ...}` in API Gateway's words.
4. **The integration**: a payload format 2.0 event (routeKey, rawPath, rawQueryString, headers,
   queryStringParameters, pathParameters, requestContext with `authorizer.iam`, body,
   isBase64Encoded) sent to the function's Invoke API with the route's timeout. A timeout is 503
   `{"message":"Service Unavailable"}`; a function error 500 `{"message":"Internal Server
   Error"}`; otherwise the function's response (statusCode, headers, cookies, body,
   isBase64Encoded; a result without statusCode is a 200 JSON body) is the answer.

What it does not do: stages other than `$default`, other authorizers (JWT, Lambda) and routes
without authorization (refused when registered), CORS, throttling, request or response
mapping, custom domains, and Lambda's own check of the function's resource policy.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from . import policy as P

_API_ID = re.compile(r"[a-z0-9]{10}")
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"}
_TEXT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # /robots/{id}
    function_arn: str
    timeout_ms: int

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def segments(self) -> list[str]:
        return [s for s in self.path.strip("/").split("/") if s != ""]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route takes the request, else None."""
        if self.method not in ("ANY", method):
            return None
        want = self.segments()
        got = [s for s in path.strip("/").split("/")] if path.strip("/") else []
        params: dict[str, str] = {}
        for i, seg in enumerate(want):
            if seg.startswith("{") and seg.endswith("+}"):
                rest = got[i:]
                if not rest or any(r == "" for r in rest):
                    return None
                params[seg[1:-2]] = unquote("/".join(rest))
                return params
            if i >= len(got) or got[i] == "":
                return None
            if seg.startswith("{") and seg.endswith("}"):
                params[seg[1:-1]] = unquote(got[i])
            elif seg != got[i]:
                return None
        return params if len(got) == len(want) else None

    def specificity(self) -> tuple[int, int, int]:
        segs = self.segments()
        literal = sum(1 for s in segs if not s.startswith("{"))
        greedy = any(s.endswith("+}") for s in segs)
        return (literal, 0 if greedy else 1, 0 if self.method == "ANY" else 1)


@dataclass(frozen=True)
class Api:
    api_id: str
    stage: str
    backend: str  # the Invoke API of the functions
    routes: tuple[Route, ...]

    def select(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        best = None
        for r in self.routes:
            params = r.match(method, path)
            if params is not None and (best is None or r.specificity() > best[0].specificity()):
                best = (r, params)
        return best

    def describe(self) -> dict:
        return {"apiId": self.api_id, "stage": self.stage, "routes": [r.key for r in self.routes]}


def parse_api(body: dict, region: str, account: str) -> Api:
    """The body of POST /_front/execute-api, checked."""
    api_id = body.get("apiId")
    if not isinstance(api_id, str) or not _API_ID.fullmatch(api_id):
        raise P.PolicyError(f"apiId must be 10 of a-z and 0-9 (API Gateway's ids), not {api_id!r}")
    stage = body.get("stage", "$default")
    if stage != "$default":
        raise P.PolicyError(f"only the $default stage is served, not {stage!r}")
    backend = body.get("backend")
    if not isinstance(backend, str) or not backend.startswith("http://"):
        raise P.PolicyError(f"backend must be the http:// URL of the functions' Invoke API, not {backend!r}")
    routes = body.get("routes")
    if not isinstance(routes, list) or not routes:
        raise P.PolicyError("routes must be a non-empty list of {routeKey, functionArn, timeoutMs?, authorization?}")
    prefix = f"arn:aws:lambda:{region}:{account}:function:"
    out = []
    for i, r in enumerate(routes):
        if not isinstance(r, dict):
            raise P.PolicyError(f"routes[{i}] must be an object")
        key = r.get("routeKey")
        m = re.fullmatch(r"([A-Z]+) (/\S*)", key) if isinstance(key, str) else None
        if m is None or m.group(1) not in _METHODS:
            raise P.PolicyError(f"routes[{i}].routeKey must be 'METHOD /path' (METHOD one of {sorted(_METHODS)}), not {key!r}")
        auth = r.get("authorization", "AWS_IAM")
        if auth != "AWS_IAM":
            raise P.PolicyError(f"routes[{i}] ({key}): authorization {auth!r}: the front serves AWS_IAM routes only")
        fn = r.get("functionArn")
        if not isinstance(fn, str) or not fn.startswith(prefix):
            raise P.PolicyError(f"routes[{i}].functionArn must be a function ARN of this front ({prefix}NAME), not {fn!r}")
        timeout = r.get("timeoutMs", 30000)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 50 <= timeout <= 30000:
            raise P.PolicyError(f"routes[{i}].timeoutMs must be 50 to 30000 (API Gateway's integration timeout), not {timeout!r}")
        out.append(Route(m.group(1), m.group(2), fn, timeout))
    keys = [r.key for r in out]
    if len(set(keys)) != len(keys):
        raise P.PolicyError(f"routes has a route key twice: {keys}")
    return Api(api_id, stage, backend.rstrip("/"), tuple(out))


def invoke_arn(region: str, account: str, api: Api, method: str, raw_path: str) -> str:
    """The resource of execute-api:Invoke for this request."""
    return f"arn:aws:execute-api:{region}:{account}:{api.api_id}/{api.stage}/{method}/{raw_path.lstrip('/')}"


def message(status: int, text: str, request_id: str) -> tuple[int, list, bytes]:
    """API Gateway's own error answer."""
    return status, [("Content-Type", "application/json"), ("apigw-requestid", request_id)], json.dumps({"message": text}).encode()


def _is_text(content_type: str) -> bool:
    ct = content_type.lower()
    return any(ct.startswith(t) for t in _TEXT_TYPES) or ct.endswith("+json")


def event(api: Api, route: Route, params: dict[str, str], method: str, raw_path: str, raw_query: str,
          headers: dict[str, str], body: bytes, *, region: str, account: str, source_ip: str,
          principal: Any, access_key: str, request_id: str, now: float) -> dict:
    """The payload format 2.0 event API Gateway sends for this request."""
    hdrs = {k.lower(): v for k, v in headers.items()}
    ev: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": hdrs,
    }
    if "cookie" in hdrs:
        ev["cookies"] = [c.strip() for c in hdrs["cookie"].split(";") if c.strip()]
    if raw_query:
        q: dict[str, list[str]] = {}
        for k, v in parse_qsl(raw_query, keep_blank_values=True):
            q.setdefault(k, []).append(v)
        ev["queryStringParameters"] = {k: ",".join(v) for k, v in q.items()}
    if params:
        ev["pathParameters"] = params
    ev["requestContext"] = {
        "accountId": account,
        "apiId": api.api_id,
        "authorizer": {"iam": {
            "accessKey": access_key,
            "accountId": principal.info.account,
            "callerId": principal.user_id,
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": principal.info.arn,
            "userId": principal.user_id,
        }},
        "domainName": hdrs.get("host", ""),
        "domainPrefix": api.api_id,
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                 "userAgent": hdrs.get("user-agent", "")},
        "requestId": request_id,
        "routeKey": route.key,
        "stage": api.stage,
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if body:
        if _is_text(hdrs.get("content-type", "")):
            try:
                ev["body"], ev["isBase64Encoded"] = body.decode("utf-8"), False
            except UnicodeDecodeError:
                ev["body"], ev["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            ev["body"], ev["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        ev["isBase64Encoded"] = False
    return ev


def integrate(api: Api, route: Route, ev: dict, request_id: str) -> tuple[int, list, bytes]:
    """Invokes the route's function with `ev` and turns its answer into the HTTP response."""
    parts = urlsplit(api.backend)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=route.timeout_ms / 1000)
    try:
        conn.request("POST", f"{parts.path.rstrip('/')}/2015-03-31/functions/{quote(route.function_arn, safe='')}/invocations",
                     body=json.dumps(ev).encode(), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
        function_error = resp.getheader("X-Amz-Function-Error")
    except TimeoutError:
        return message(503, "Service Unavailable", request_id)
    except (OSError, http.client.HTTPException):
        return message(500, "Internal Server Error", request_id)
    finally:
        conn.close()
    if resp.status != 200 or function_error:
        return message(500, "Internal Server Error", request_id)
    try:
        result = json.loads(payload or b"null")
    except ValueError:
        return message(500, "Internal Server Error", request_id)
    if not isinstance(result, dict) or "statusCode" not in result:
        # Format 2.0: a result without statusCode is the body of a 200 JSON answer.
        return 200, [("Content-Type", "application/json"), ("apigw-requestid", request_id)], json.dumps(result).encode()
    status = result.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return message(500, "Internal Server Error", request_id)
    out_headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()
                   if str(k).lower() not in ("content-length", "connection", "transfer-encoding")]
    for k, values in (result.get("multiValueHeaders") or {}).items():
        out_headers.extend((str(k), str(v)) for v in values)
    out_headers.extend(("Set-Cookie", str(c)) for c in result.get("cookies") or [])
    out_headers.append(("apigw-requestid", request_id))
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return status, out_headers, data


def request_id() -> str:
    return uuid.uuid4().hex[:16]
