"""The front's WSGI application: admin API, authentication, authorization, forwarding."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import io
import json
import os
import re
import secrets
import socket
import string
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

from . import errors as E
from . import execute_api as A
from . import extensions as X
from . import policy as P
from . import rpcv2cbor as C
from . import services as S
from . import sigv4
from .errors import FrontError

ROLE_AWS, ROLE_OPENSEARCH, ROLE_IOT, ROLE_EXECUTE_API = "aws", "opensearch", "iot", "execute-api"
DEFAULT_OPENSEARCH_MAX_BODY = 10 * 1024 * 1024
ENDPOINT_THREADS = 4  # waitress threads of each endpoint opened at run time
_AWS_EID, _OPENSEARCH_EID, _IOT_EID = 0, 1, 2  # the startup endpoints' ids
_DOMAIN_NAME = re.compile(r"[a-z][a-z0-9-]{2,27}")  # AWS: 3 to 28 of a-z 0-9 -, starting with a letter
_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
}
_ALNUM = string.ascii_uppercase + string.digits
_AUTH_KINDS = {"missing", "malformed", "unknown_key", "bad_token", "signature", "expired"}


def load_moto_app() -> Callable:
    """moto's WSGI application, with tools/moto_server.py's fixes applied first."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if here not in sys.path:
        sys.path.insert(0, here)
    import moto_server  # noqa: E402  (sibling of the package directory)

    moto_server.apply()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


# ------------------------------------------------------------------------------------------
# Registry of principals, resource policies and encrypted resources (copy-on-write)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    access_key: str
    secret: str
    token: str | None
    principal_key: str  # the registered ARN (role or user)


@dataclass(frozen=True)
class Principal:
    registered_arn: str
    info: P.PrincipalInfo
    user_id: str
    policies: tuple[P.Policy, ...]


@dataclass(frozen=True)
class State:
    keys: dict[str, Credential] = field(default_factory=dict)
    principals: dict[str, Principal] = field(default_factory=dict)
    resource_policies: dict[str, P.Policy] = field(default_factory=dict)
    encrypted: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """An OpenSearch domain endpoint, an IoT data endpoint or an HTTP API: one loopback port,
    one backend."""

    id: int
    kind: str  # ROLE_OPENSEARCH, ROLE_IOT or ROLE_EXECUTE_API
    backend: str | None
    domain_arn: str = ""  # opensearch: arn:aws:es:REGION:ACCOUNT:domain/NAME
    name: str | None = None  # iot: the local stack's name (None for the startup port)
    url: str = ""
    startup: bool = False
    api: A.Api | None = None  # execute-api: the API's id and routes

    def describe(self) -> dict:
        if self.api is not None:
            return {"kind": self.kind, "url": self.url, **self.api.describe(), "backend": self.backend, "startup": False}
        key = {"domainArn": self.domain_arn} if self.kind == ROLE_OPENSEARCH else {"name": self.name}
        return {"kind": self.kind, "url": self.url, **key, "backend": self.backend, "startup": self.startup}


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _unique_id(prefix: str, arn: str) -> str:
    digest = hashlib.sha256(arn.encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:17]


class Registry:
    def __init__(self, state: State):
        self.state = state  # replaced whole, never mutated: readers need no lock
        self._lock = threading.Lock()

    def _update(self, **changes: Any) -> None:
        s = self.state
        self.state = State(**{**s.__dict__, **changes})

    def register_principal(self, arn: str, policies: list[Any], session_name: str | None = None,
                           access_key: str | None = None, secret_key: str | None = None) -> dict:
        import re

        m_role = re.fullmatch(r"arn:aws:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)", arn)
        m_user = re.fullmatch(r"arn:aws:iam::(\d{12}):user/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)", arn)
        if not (m_role or m_user):
            raise P.PolicyError(f"arn must be an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME or :user/NAME), not {arn!r}")
        if not isinstance(policies, list):
            raise P.PolicyError("policies must be a list of policy documents")
        compiled = tuple(P.compile_policy(doc, resource_policy=False, name=f"policy {i}") for i, doc in enumerate(policies))
        if m_role:
            account, name = m_role.groups()
            session = session_name or name
            if session_name is not None and not re.fullmatch(r"[\w+=,.@-]{2,64}", session_name):
                raise P.PolicyError(f"invalid sessionName {session_name!r} (2 to 64 of [\\w+=,.@-])")
            info = P.PrincipalInfo(f"arn:aws:sts::{account}:assumed-role/{name}/{session}", arn, account)
            user_id = f"{_unique_id('AROA', arn)}:{session}"
            key = access_key or "ASIA" + _rand(16)
            token = base64.b64encode(secrets.token_bytes(96)).decode()
        else:
            account = m_user.group(1)
            info = P.PrincipalInfo(arn, None, account)
            user_id = _unique_id("AIDA", arn)
            key = access_key or "AKIA" + _rand(16)
            token = None
        secret = secret_key or base64.b64encode(secrets.token_bytes(30)).decode()
        with self._lock:
            keys = dict(self.state.keys)
            keys[key] = Credential(key, secret, token, arn)
            principals = dict(self.state.principals)
            principals[arn] = Principal(arn, info, user_id, compiled)
            self._update(keys=keys, principals=principals)
        return {"accessKeyId": key, "secretAccessKey": secret, "sessionToken": token, "principalArn": info.arn}

    def put_resource_policy(self, resource_arn: str, doc: Any) -> None:
        if not isinstance(resource_arn, str) or not resource_arn.startswith("arn:"):
            raise P.PolicyError(f"resourceArn must be an ARN, not {resource_arn!r}")
        compiled = None if doc is None else P.compile_policy(doc, resource_policy=True, name="resource policy")
        with self._lock:
            rp = dict(self.state.resource_policies)
            if compiled is None:  # "policy": null removes it
                rp.pop(resource_arn, None)
            else:
                rp[resource_arn] = compiled
            self._update(resource_policies=rp)

    def set_encrypted(self, resource_arn: str, key_arn: str) -> None:
        for what, v in (("resourceArn", resource_arn), ("keyArn", key_arn)):
            if not isinstance(v, str) or not v.startswith("arn:"):
                raise P.PolicyError(f"{what} must be an ARN, not {v!r}")
        with self._lock:
            enc = dict(self.state.encrypted)
            enc[resource_arn] = key_arn
            self._update(encrypted=enc)


# ------------------------------------------------------------------------------------------
# Counters
# ------------------------------------------------------------------------------------------

_COUNTERS = ("requests", "allowed", "denied", "signature_errors", "size_refusals", "unsupported", "invalid", "backend_errors", "internal_errors")


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.counts = dict.fromkeys(_COUNTERS, 0)
            self.by_service: dict[str, dict[str, int]] = {}
            self.front_cpu = 0.0
            self.moto_cpu = 0.0
            self.moto_requests = 0

    def count(self, service: str, outcome: str | None, front_cpu: float, moto_cpu: float = 0.0, to_moto: bool = False) -> None:
        with self._lock:
            self.counts["requests"] += 1
            svc = self.by_service.setdefault(service, dict.fromkeys(_COUNTERS, 0))
            svc["requests"] += 1
            if outcome:
                self.counts[outcome] += 1
                svc[outcome] += 1
            self.front_cpu += front_cpu
            self.moto_cpu += moto_cpu
            if to_moto:
                self.moto_requests += 1

    def snapshot(self) -> dict:
        with self._lock:
            n = self.counts["requests"]
            return {
                **self.counts,
                "by_service": {k: dict(v) for k, v in sorted(self.by_service.items())},
                "front_cpu_seconds": round(self.front_cpu, 6),
                "front_cpu_us_per_request": round(self.front_cpu / n * 1e6, 1) if n else 0.0,
                "moto_cpu_seconds": round(self.moto_cpu, 6),
                "moto_requests": self.moto_requests,
                "moto_cpu_us_per_request": round(self.moto_cpu / self.moto_requests * 1e6, 1) if self.moto_requests else 0.0,
            }


def _outcome(err: FrontError) -> str:
    if err.kind in _AUTH_KINDS:
        return "signature_errors"
    if err.kind in ("denied", "kms_denied"):
        return "denied"
    if err.kind == "size":
        return "size_refusals"
    if err.kind == "unsupported":
        return "unsupported"
    if err.kind == "backend":
        return "backend_errors"
    if err.kind == "internal":
        return "internal_errors"
    return "invalid"


# ------------------------------------------------------------------------------------------
# The application
# ------------------------------------------------------------------------------------------


class Front:
    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account: str = "123456789012",
        opensearch_domain: str = "robofleet",
        opensearch_backend: str | None = None,
        iot_backend: str | None = None,
        opensearch_max_body: int = DEFAULT_OPENSEARCH_MAX_BODY,
        moto_app: Callable | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.region = region
        self.account = account
        self.opensearch_max_body = opensearch_max_body
        if not _DOMAIN_NAME.fullmatch(opensearch_domain):
            raise ValueError(f"invalid OpenSearch domain name {opensearch_domain!r} (AWS: 3 to 28 of a-z, 0-9 and -, starting with a letter)")
        self.registry = Registry(State())
        self.stats = Stats()
        self.moto_app = moto_app if moto_app is not None else load_moto_app()
        self.clock = clock
        # Rules, APIs and fixes the front adds to moto, and their state (extensions.py).
        X.install_moto_fixes()
        self.ext = X.Extensions(region, account, lambda: self.clock())
        self._local = threading.local()
        # Endpoints (copy-on-write: readers take the dict without a lock), by id. The startup
        # opensearch and iot ports are ids 1 and 2; the ports make_server serves map to ids.
        self.endpoints: dict[int, Endpoint] = {
            _OPENSEARCH_EID: Endpoint(_OPENSEARCH_EID, ROLE_OPENSEARCH, opensearch_backend,
                                      domain_arn=f"arn:aws:es:{region}:{account}:domain/{opensearch_domain}", startup=True),
            _IOT_EID: Endpoint(_IOT_EID, ROLE_IOT, iot_backend, startup=True),
        }
        self.port_eids: dict[str, tuple[int, str]] = {}
        self.host: str | None = None  # set by make_server: endpoints opened at run time listen there
        self.endpoint_threads = ENDPOINT_THREADS
        self._servers: dict[int, tuple[Any, threading.Thread]] = {}
        self._next_eid = 3
        self._ep_lock = threading.Lock()
        # Functions served by a local stack's Invoke API (POST /_front/lambda): unqualified
        # function ARN -> backend URL (copy-on-write, like the endpoints).
        self.lambda_backends: dict[str, str] = {}
        # State machines run by a local stack's runner (POST /_front/states): their authorized
        # StartExecution, DescribeExecution, ListExecutions and StopExecution go to it (moto's
        # Step Functions cannot run them).
        self.states_backends: dict[str, str] = {}

    # -- WSGI entry ------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """The startup server's application: the port tells the endpoint (any other: the AWS port)."""
        eid, kind = self.port_eids.get(environ.get("SERVER_PORT", ""), (_AWS_EID, ROLE_AWS))
        return self._serve(eid, kind, environ, start_response)

    def _serve(self, eid: int, kind: str, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if eid == _AWS_EID:
            path = environ.get("PATH_INFO", "")
            if path.startswith("/_front/"):
                return self._admin(environ, start_response, path)
            if path.startswith("/moto-api"):
                # moto's own control API (reset, state): a stand-in's admin page, not an AWS API.
                return self.moto_app(environ, start_response)
            return self._handle(environ, start_response, ROLE_AWS, None)
        ep = self.endpoints.get(eid)
        if ep is None:  # closed while this request was on its way
            t0 = time.thread_time()
            err = _unavailable(kind, "this endpoint was closed (POST /_front/close)")
            status, hdrs, payload = E.render(err, E.ES if kind == ROLE_OPENSEARCH else E.IOTDATA)
            self.stats.count("es" if kind == ROLE_OPENSEARCH else "iotdata", "backend_errors", time.thread_time() - t0)
            return _reply(start_response, status, hdrs, payload)
        if ep.kind == ROLE_EXECUTE_API:
            return self._execute_api(ep, environ, start_response)
        return self._handle(environ, start_response, ep.kind, ep)

    def _execute_api(self, ep: Endpoint, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """A request to an HTTP API (execute_api.py): route, SigV4, execute-api:Invoke, the function."""
        t0 = time.thread_time()
        api = ep.api
        assert api is not None
        rid = A.request_id()
        method = environ["REQUEST_METHOD"]
        raw_uri = environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", "/"), safe="/~!$&'()*+,;=:@%") + (
            "?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
        if raw_uri.startswith(("http://", "https://")):
            parts = urlsplit(raw_uri)
            raw_uri = parts.path + ("?" + parts.query if parts.query else "")
        raw_path, _, raw_query = raw_uri.partition("?")
        headers = _headers(environ)
        body = _read_body(environ)
        selected = api.select(method, raw_path)
        if selected is None:
            self.stats.count("execute-api", "invalid", time.thread_time() - t0)
            return _reply(start_response, *A.message(404, "Not Found", rid))
        route, params = selected
        state = self.registry.state
        now = self.clock()
        try:
            auth = sigv4.parse_authorization(headers.get("authorization"))
            if auth.service != "execute-api":
                raise FrontError("signature", f"Credential should be scoped to correct service: 'execute-api'. ")
            cred = _credential(state, auth, headers)
            if auth.region != self.region:
                raise FrontError("signature", f"Credential should be scoped to a valid region. (got '{auth.region}', the front serves '{self.region}')")
            sigv4.verify(auth=auth, secret=cred.secret, method=method, raw_path=raw_path, raw_query=raw_query,
                         headers=headers, body=body, service="execute-api", now=now)
            principal = state.principals[cred.principal_key]
            resource = A.invoke_arn(self.region, self.account, api, method, raw_path)
            call = S.Call(service="execute-api", operation="Invoke", protocol=S.protocol_of("", headers),
                          needs=[S.Need("execute-api:Invoke", resource)])
            self._authorize(state, principal, call, now)
        except FrontError as err:
            text = "Forbidden" if err.kind == "missing" else err.message
            self.stats.count("execute-api", _outcome(err), time.thread_time() - t0)
            return _reply(start_response, *A.message(403, text, rid))
        ev = A.event(api, route, params, method, raw_path, raw_query, headers, body, region=self.region,
                     account=self.account, source_ip=environ.get("REMOTE_ADDR", "127.0.0.1"),
                     principal=principal, access_key=auth.access_key, request_id=rid, now=now)
        status, hdrs, payload = A.integrate(api, route, ev, rid)
        self.stats.count("execute-api", "allowed" if status < 500 else "backend_errors", time.thread_time() - t0)
        return _reply(start_response, status, hdrs, payload)

    # -- the request pipeline ----------------------------------------------------------------

    def _handle(self, environ: dict, start_response: Callable, role: str, ep: Endpoint | None) -> Iterable[bytes]:
        t0 = time.thread_time()
        method = environ["REQUEST_METHOD"]
        raw_uri = environ.get("REQUEST_URI")
        if raw_uri is None:  # not waitress: rebuild it from the decoded parts
            raw_uri = quote(environ.get("PATH_INFO", "/"), safe="/~!$&'()*+,;=:@%")
            if environ.get("QUERY_STRING"):
                raw_uri += "?" + environ["QUERY_STRING"]
        if raw_uri.startswith(("http://", "https://")):
            parts = urlsplit(raw_uri)
            raw_uri = parts.path + ("?" + parts.query if parts.query else "")
        raw_path, _, raw_query = raw_uri.partition("?")
        headers = _headers(environ)
        state = self.registry.state
        default_service = {ROLE_OPENSEARCH: "es", ROLE_IOT: "iotdata"}.get(role, "")
        proto = E.DEFAULT_PROTOCOL.get(default_service) or S.protocol_of("", headers)
        service = default_service or "unknown"
        try:
            if role == ROLE_OPENSEARCH:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                if length > self.opensearch_max_body:
                    raise FrontError("size", f"Request size exceeded {self.opensearch_max_body} bytes", status=413)
            body = _read_body(environ)
            try:
                auth = sigv4.parse_authorization(headers.get("authorization"))
            except FrontError as e:
                if role == ROLE_OPENSEARCH and e.kind == "missing":
                    verb = f"es:ESHttp{method.capitalize()}"
                    e.message = f"User: anonymous is not authorized to perform: {verb} because no resource-based policy allows the {verb} action"
                elif role == ROLE_AWS:
                    proto = S.protocol_of(_guess_service(raw_path, headers), headers, raw_path)
                raise
            if role == ROLE_AWS:
                service = auth.service
                proto = S.protocol_of(service, headers, raw_path)
                if service in ("es", "iotdata"):
                    raise FrontError("unsupported", f"{service} requests go to the front's {'opensearch' if service == 'es' else 'iot'} port, not the AWS port")
            elif auth.service != default_service:
                raise FrontError("signature", f"Credential should be scoped to correct service: '{default_service}'. ")
            cred = _credential(state, auth, headers)
            if auth.region != self.region and not (service in ("iam", "sts") and auth.region == "us-east-1"):
                if service == "s3":
                    raise FrontError("malformed", f"The authorization header is malformed; the region '{auth.region}' is wrong; expecting '{self.region}'")
                raise FrontError("signature", f"Credential should be scoped to a valid region. (got '{auth.region}', the front serves '{self.region}')")
            now = self.clock()
            sigv4.verify(
                auth=auth, secret=cred.secret, method=method, raw_path=raw_path, raw_query=raw_query,
                headers=headers, body=body, service=auth.service, now=now,
            )
            principal = state.principals[cred.principal_key]
            req = S.Req(
                method=method, raw_path=raw_path, raw_query=raw_query, headers=headers, body=body,
                service=auth.service, region=self.region, account=self.account, domain_arn=ep.domain_arn if ep else "",
            )
            call = S.describe(req, self._esm_function_arn)
            proto = call.protocol
            self._authorize(state, principal, call, now)
        except Exception as exc:  # noqa: BLE001 - a bug of the front: loud, in the caller's protocol
            if isinstance(exc, FrontError):
                err = exc
            else:
                traceback.print_exc()
                err = FrontError("internal", f"the AWS front failed: {exc!r} (see its log)", code="FrontInternalError", status=500)
            status, hdrs, payload = E.render(err, proto, method)
            self.stats.count(service, _outcome(err), time.thread_time() - t0)
            return _reply(start_response, status, hdrs, payload)
        if call.local == "GetCallerIdentity":
            status, hdrs, payload = _caller_identity(principal, call, headers)
            self.stats.count(service, "allowed", time.thread_time() - t0)
            return _reply(start_response, status, hdrs, payload)
        if call.protocol.kind == "cbor":
            # rpc-v2-cbor (CloudWatch): moto is asked the same call in awsJson1.0, and its answer
            # is written back in CBOR (rpcv2cbor.py), by _extended for every such call.
            environ, body = C.moto_environ(environ, call.operation, call.params)
        handler = self.ext.handler(call) if role == ROLE_AWS else None
        if handler is None and call.protocol.kind == "cbor":
            handler = _forward_only
        if handler is not None:
            return self._extended(handler, call, environ, body, start_response, service, method, t0)
        # An authorized Invoke of a function a local stack serves goes to its Invoke API (moto's
        # Lambda would run the function in Docker), a call on an execution of its state machines
        # to its runner (moto's Step Functions cannot run them).
        routed = self._local_backend(call) if role == ROLE_AWS else None
        # The AWS port, and an IoT endpoint with no backend (the startup one unless re-pointed):
        # moto answers, for IoT with its own IoT Data Plane.
        if routed is None and (role == ROLE_AWS or (role == ROLE_IOT and not (ep and ep.backend))):
            env = environ.copy()
            env["wsgi.input"] = io.BytesIO(body)
            env["CONTENT_LENGTH"] = str(len(body))
            env["HTTP_X_MOTO_ACCOUNT_ID"] = self.account
            t1 = time.thread_time()
            if role == ROLE_AWS and call.may_list is not None:
                result = self._missing_as_denied(env, start_response, call, method)
            else:
                result = self.moto_app(env, start_response)
            t2 = time.thread_time()
            self.stats.count(service, "allowed", t1 - t0, t2 - t1, to_moto=True)
            return result
        kind, backend = routed or (role, ep.backend if ep else None)
        try:
            result = self._to_backend(kind, backend, method, raw_uri, headers, body, start_response)
        except FrontError as err:
            status, hdrs, payload = E.render(err, proto, method)
            self.stats.count(service, _outcome(err), time.thread_time() - t0)
            return _reply(start_response, status, hdrs, payload)
        self.stats.count(service, "allowed", time.thread_time() - t0)
        return result

    def _extended(self, handler: Callable, call: S.Call, environ: dict, body: bytes, start_response: Callable,
                  service: str, method: str, t0: float) -> Iterable[bytes]:
        """An operation the front completes (extensions.py): the handler refuses, answers, or
        forwards to moto and corrects moto's answer."""
        moto = {"cpu": 0.0, "calls": 0}

        def forward(new_body: bytes | None = None) -> tuple[int, list, bytes]:
            t1 = time.thread_time()
            try:
                return self._moto_capture(environ, body if new_body is None else new_body)
            finally:
                moto["cpu"] += time.thread_time() - t1
                moto["calls"] += 1

        outcome = "allowed"
        try:
            status, hdrs, payload = handler(call, forward)
            if call.protocol.kind == "cbor":  # the handler spoke awsJson1.0 with moto
                status, hdrs, payload = C.reply(call.operation, status, hdrs, payload)
        except Exception as exc:  # noqa: BLE001 - as in _handle
            if isinstance(exc, FrontError):
                err = exc
            else:
                traceback.print_exc()
                err = FrontError("internal", f"the AWS front failed: {exc!r} (see its log)", code="FrontInternalError", status=500)
            status, hdrs, payload = E.render(err, call.protocol, method)
            outcome = _outcome(err)
        self.stats.count(service, outcome, time.thread_time() - t0 - moto["cpu"], moto["cpu"], to_moto=moto["calls"] > 0)
        return _reply(start_response, status, hdrs, payload)

    def _missing_as_denied(self, env: dict, start_response: Callable, call: S.Call, method: str) -> Iterable[bytes]:
        """moto's answer to a GetObject/HeadObject, streamed, except that a missing key is 403
        AccessDenied for a caller without s3:ListBucket on the bucket (S3 does not tell such a
        caller whether the key exists)."""
        got: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            got["status"], got["headers"] = status, headers
            return lambda _data: None

        result = self.moto_app(env, capture)
        if "status" not in got:  # an app that answers lazily
            result = list(result)
        if not got["status"].startswith("404") or (call.may_list is not None and call.may_list()):
            start_response(got["status"], got["headers"])
            return result
        close = getattr(result, "close", None)
        if close is not None:
            close()
        err = FrontError("denied", "Access Denied", code="AccessDenied", status=403)
        status, hdrs, payload = E.render(err, call.protocol, method)
        return _reply(start_response, status, hdrs, payload)

    def _moto_capture(self, environ: dict, body: bytes) -> tuple[int, list, bytes]:
        """moto's answer to the request, whole: (status, headers without Content-Length, body)."""
        env = environ.copy()
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        env["HTTP_X_MOTO_ACCOUNT_ID"] = self.account
        got: dict = {}
        chunks: list[bytes] = []

        def start(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
            got["status"], got["headers"] = int(status.split(" ", 1)[0]), headers
            return chunks.append

        result = self.moto_app(env, start)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return got["status"], [(k, v) for k, v in got["headers"] if k.lower() != "content-length"], b"".join(chunks)

    def _authorize(self, state: State, principal: Principal, call: S.Call, now: float) -> None:
        ctx = {
            "aws:securetransport": ["true"],
            "aws:principalarn": [principal.info.role_arn or principal.info.arn],
            "aws:principalaccount": [principal.info.account],
            "aws:requestedregion": [self.region],
            "aws:currenttime": [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))],
            "aws:epochtime": [str(int(now))],
        }
        if not call.needs and call.local is None:  # fail closed: nothing mapped is nothing allowed
            raise FrontError("internal", f"no authorization is mapped for {call.service}:{call.operation}", code="FrontInternalError", status=500)
        for need in call.needs:
            c = {**ctx, **need.context} if need.context else ctx
            rp = state.resource_policies.get(S.owner_of(need.resource)) if need.resource != "*" else None
            d = P.evaluate(principal.info, list(principal.policies), rp, need.action, need.resource, c)
            if not d.allowed:
                raise FrontError("denied", E.denial_message(principal.info.arn, need.action, need.resource, d.reason))
        if call.missing_needs_list is not None:
            # S3 answers a missing key with 404 only to a caller that may list the bucket;
            # evaluated only when the key turns out to be missing.
            bucket = call.missing_needs_list
            call.may_list = lambda: P.evaluate(
                principal.info, list(principal.policies), state.resource_policies.get(bucket), "s3:ListBucket", bucket, ctx
            ).allowed
        if call.size_error is not None:
            raise call.size_error
        if not call.kms or not state.encrypted:
            return
        kctx = {
            **ctx,
            "kms:viaservice": [f"{call.service}.{self.region}.amazonaws.com"],
            "kms:calleraccount": [principal.info.account],
        }
        checked = set()
        for resource, actions in call.kms:
            key = state.encrypted.get(S.owner_of(resource))
            if key is None:
                continue
            for action in actions:
                if (key, action) in checked:
                    continue
                checked.add((key, action))
                d = P.evaluate(principal.info, list(principal.policies), state.resource_policies.get(key), action, key, kctx, kms_key=True)
                if not d.allowed:
                    raise _kms_denied(call, E.denial_message(principal.info.arn, action, key, d.reason))

    def _esm_function_arn(self, uuid: str) -> str | None:
        """The function ARN of an event source mapping, read from moto's Lambda backend."""
        try:
            from moto.awslambda.models import lambda_backends

            esm = lambda_backends[self.account][self.region]._event_source_mappings.get(uuid)
        except Exception:  # noqa: BLE001 - moto internals: a miss is "no such mapping"
            return None
        return getattr(esm, "function_arn", None) if esm is not None else None

    # -- HTTP backends -----------------------------------------------------------------------

    def _conn(self, base: str, fresh: bool = False, timeout: int = 300) -> http.client.HTTPConnection:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = _Pool()
        conn = pool.get(base)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            parts = urlsplit(base)
            conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
            pool[base] = conn
        return conn

    def _to_backend(self, role: str, base: str | None, method: str, raw_uri: str, headers: dict[str, str],
                    body: bytes, start_response: Callable) -> Iterable[bytes]:
        def unavailable(why: str) -> FrontError:
            return _unavailable(role, why)

        if not base:
            raise unavailable("no backend is configured for this port (POST /_front/opensearch or /_front/iot)")
        prefix = urlsplit(base).path.rstrip("/")
        fwd = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
        fwd["Content-Length"] = str(len(body))
        resp = None
        # An Invoke runs a function, a StartExecution without a name starts one: never sent twice.
        # They go on a fresh connection (no stale keep-alive to retry from); an Invoke waits
        # longer than any function may run (900 s).
        attempts = (1,) if role in ("lambda", "states") else (0, 1)
        for attempt in attempts:
            conn = self._conn(base, fresh=attempt > 0, timeout=960 if role == "lambda" else 300)
            try:
                conn.request(method, prefix + raw_uri, body=body, headers=fwd)
                resp = conn.getresponse()
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if attempt == attempts[-1]:
                    raise unavailable(f"the backend {base} cannot be reached: {e}") from None
        assert resp is not None
        out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP or k.lower() == "content-length"]
        start_response(f"{resp.status} {resp.reason}", out_headers)

        def stream() -> Iterable[bytes]:
            done = False
            try:
                while True:
                    chunk = resp.read(65536)
                    if not chunk:
                        break
                    yield chunk
                done = True
            finally:
                if not done or resp.will_close:
                    conn.close()

        return stream()

    # -- endpoints (one per OpenSearch domain, one per local stack's IoT data endpoint) ---------

    def opensearch_endpoint(self, domain_arn: str | None, backend: str | None) -> Endpoint:
        """The endpoint of this domain (None: the startup domain), opened if new, re-pointed to
        `backend` (None: the startup port's current backend, the front's default)."""
        startup = self.endpoints[_OPENSEARCH_EID]
        if domain_arn is None:
            domain_arn = startup.domain_arn
        domain_arn = self._check_domain_arn(domain_arn)
        with self._ep_lock:
            backend = backend or self.endpoints[_OPENSEARCH_EID].backend
            if backend is None:
                raise P.PolicyError(
                    f"no backend for {domain_arn}: give \"backend\" (the front has no default OpenSearch backend, --opensearch-backend)"
                )
            for ep in self.endpoints.values():
                if ep.kind == ROLE_OPENSEARCH and ep.domain_arn == domain_arn:
                    return self._repoint(ep, backend)
            return self._open(ROLE_OPENSEARCH, backend, domain_arn=domain_arn)

    def iot_endpoint(self, name: str | None, backend: str) -> Endpoint:
        """The IoT data endpoint of this stack (None: the startup port), opened if new, re-pointed to `backend`."""
        if name is not None and (not isinstance(name, str) or not _STACK_NAME.fullmatch(name)):
            raise P.PolicyError(f"name must be 1 to 128 of A-Z a-z 0-9 _ . - (a local stack's name), not {name!r}")
        with self._ep_lock:
            for ep in self.endpoints.values():
                if ep.kind == ROLE_IOT and ep.name == name:
                    return self._repoint(ep, backend)
            return self._open(ROLE_IOT, backend, name=name)

    def execute_api_endpoint(self, body: dict) -> Endpoint:
        """The port of this HTTP API (by id), opened if new, else given the new routes and backend."""
        api = A.parse_api(body, self.region, self.account)
        with self._ep_lock:
            for ep in self.endpoints.values():
                if ep.kind == ROLE_EXECUTE_API and ep.api is not None and ep.api.api_id == api.api_id:
                    new = replace(ep, backend=api.backend, api=api)
                    self.endpoints = {**self.endpoints, ep.id: new}
                    return new
            return self._open(ROLE_EXECUTE_API, api.backend, api=api)

    def close_endpoint(self, url: Any) -> None:
        """Closes an endpoint opened at run time: its port stops listening before this returns;
        its open connections are closed; its worker threads end once their requests are done."""
        if not isinstance(url, str):
            raise P.PolicyError(f"url must be an endpoint's URL (GET /_front/endpoints), not {url!r}")
        url = url.rstrip("/")
        with self._ep_lock:
            ep = next((e for e in self.endpoints.values() if e.url == url), None)
            if ep is None:
                if url in {f"http://{h}:{p}" for p in self.port_eids for h in ("127.0.0.1", "localhost", self.host)}:
                    raise P.PolicyError(f"{url} is a port the front was started with: it cannot be closed")
                raise P.PolicyError(f"no endpoint is served at {url} (GET /_front/endpoints lists them)")
            if ep.startup:
                raise P.PolicyError(f"{url} is the front's startup {ep.kind} port: it cannot be closed")
            endpoints = dict(self.endpoints)
            del endpoints[ep.id]
            self.endpoints = endpoints
            server, thread = self._servers.pop(ep.id)
        _stop_server(server, thread)

    def close_all_endpoints(self) -> None:
        """Closes every endpoint opened at run time (the startup ports stay)."""
        for ep in list(self.endpoints.values()):
            if not ep.startup:
                try:
                    self.close_endpoint(ep.url)
                except P.PolicyError:  # closed meanwhile
                    pass

    def _check_stream_arn(self, arn: Any) -> str:
        prefix = f"arn:aws:kinesis:{self.region}:{self.account}:stream/"
        if not isinstance(arn, str) or not arn.startswith(prefix) or not re.fullmatch(r"[a-zA-Z0-9_.-]{1,128}", arn[len(prefix):]):
            raise P.PolicyError(f"stream must be a Kinesis stream ARN of the front's region and account ({prefix}NAME), not {arn!r}")
        return arn

    def _scaling_doc(self, arn: str | None) -> dict:
        doc: dict[str, Any] = {"shardLimit": self.ext.shard_limit}
        if arn is not None:
            doc = {"streamArn": arn, "calls": self.ext.scaling_calls(arn), **doc}
        return doc

    def _seed_scaling(self, body: dict) -> dict:
        """POST /_front/kinesis/scaling: replaces a stream's UpdateShardCount history, sets the account's shard limit."""
        arn = self._check_stream_arn(body["streamArn"]) if body.get("streamArn") is not None else None
        calls = body.get("calls")
        if calls is not None:
            if arn is None:
                raise P.PolicyError("calls needs streamArn")
            if not isinstance(calls, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in calls):
                raise P.PolicyError("calls must be a list of epoch seconds")
        limit = body.get("shardLimit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise P.PolicyError(f"shardLimit must be a positive integer, not {limit!r}")
        if calls is not None:
            self.ext.seed_scaling(arn, [float(t) for t in calls])
        if limit is not None:
            self.ext.shard_limit = limit
        return self._scaling_doc(arn)

    def _local_backend(self, call: S.Call) -> tuple[str, str] | None:
        """Where a local stack serves this call: ("lambda" | "states", its URL), or None (moto)."""
        if call.service == "lambda" and call.operation == "Invoke":
            backend = self.lambda_backends.get(S.unqualified_function_arn(call.needs[0].resource))
            return None if backend is None else ("lambda", backend)
        if call.service == "states":
            backend = self.states_backends.get(S.state_machine_of(call.needs[0].resource))
            return None if backend is None else ("states", backend)
        return None

    def _set_backends(self, body: dict, member: str, kind: str, what: str) -> dict:
        """POST /_front/lambda and /_front/states: the authorized calls on these resources (unqualified
        function ARNs, state machine ARNs) go to `backend`, a local stack's API (null: moto)."""
        arns = body.get(member)
        if not isinstance(arns, list) or not arns or not all(isinstance(a, str) for a in arns):
            raise P.PolicyError(f"{member} must be a non-empty list of {what} ARNs")
        prefix = f"arn:aws:{'lambda' if kind == 'lambda' else 'states'}:{self.region}:{self.account}:{'function' if kind == 'lambda' else 'stateMachine'}:"
        for a in arns:
            if not a.startswith(prefix) or a.count(":") != 6:
                raise P.PolicyError(f"{a!r} is not an unqualified {what} ARN of this front ({prefix}NAME)")
        backend = body.get("backend")
        url = None if backend is None else _backend_url(backend)
        attr = "lambda_backends" if kind == "lambda" else "states_backends"
        with self._ep_lock:
            table = dict(getattr(self, attr))
            for a in arns:
                if url is None:
                    table.pop(a, None)
                else:
                    table[a] = url
            setattr(self, attr, table)
        return {"ok": True, member: arns, "backend": url}

    def _check_domain_arn(self, arn: Any) -> str:
        m = re.fullmatch(r"arn:aws:es:([a-z0-9-]+):(\d{12}):domain/([^/]+)/?", arn) if isinstance(arn, str) else None
        if m is None:
            raise P.PolicyError(f"domainArn must look like arn:aws:es:REGION:ACCOUNT:domain/NAME, not {arn!r}")
        region, account, name = m.groups()
        if region != self.region or account != self.account:
            raise P.PolicyError(f"domainArn {arn!r} is not in the front's region and account ({self.region}, {self.account})")
        if not _DOMAIN_NAME.fullmatch(name):
            raise P.PolicyError(f"invalid domain name {name!r} in {arn!r} (AWS: 3 to 28 of a-z, 0-9 and -, starting with a letter)")
        return f"arn:aws:es:{region}:{account}:domain/{name}"

    def _repoint(self, ep: Endpoint, backend: str) -> Endpoint:  # under _ep_lock
        new = replace(ep, backend=backend)
        self.endpoints = {**self.endpoints, ep.id: new}
        return new

    def _open(self, kind: str, backend: str, **what: Any) -> Endpoint:  # under _ep_lock
        from waitress import create_server

        if self.host is None:
            raise P.PolicyError("endpoints are opened by a front served by make_server (no host to listen on)")
        eid = self._next_eid
        self._next_eid += 1
        sock = _listen(self.host, 0)
        try:
            server = create_server(
                functools.partial(self._serve, eid, kind),
                sockets=[sock],
                threads=self.endpoint_threads,
                connection_limit=1000,
                asyncore_use_poll=True,
                channel_timeout=300,
                ident="aws-front",
                clear_untrusted_proxy_headers=False,
            )
        except BaseException:
            sock.close()
            raise
        port = sock.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        ep = Endpoint(eid, kind, backend, url=f"http://{host}:{port}", **what)
        self.endpoints = {**self.endpoints, eid: ep}
        thread = threading.Thread(target=server.run, name=f"aws-front-{kind}-{port}", daemon=True)
        self._servers[eid] = (server, thread)
        thread.start()
        return ep

    # -- admin API ---------------------------------------------------------------------------

    def _admin(self, environ: dict, start_response: Callable, path: str) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        try:
            if path == "/_front/health" and method == "GET":
                return _json_reply(start_response, 200, {"ok": True})
            if path == "/_front/stats" and method == "GET":
                return _json_reply(start_response, 200, self.stats.snapshot())
            if path == "/_front/reset-stats" and method == "POST":
                self.stats.reset()
                return _json_reply(start_response, 200, {"ok": True})
            if path == "/_front/endpoints" and method == "GET":
                return _json_reply(start_response, 200, [ep.describe() for _, ep in sorted(self.endpoints.items())])
            if path == "/_front/kinesis/scaling" and method == "GET":
                query = parse_qs(environ.get("QUERY_STRING", ""))
                arn = self._check_stream_arn((query.get("stream") or [None])[0])
                return _json_reply(start_response, 200, self._scaling_doc(arn))
            if method != "POST":
                return _json_reply(start_response, 404, {"error": f"no such admin endpoint: {method} {path}"})
            try:
                body = json.loads(_read_body(environ) or b"{}")
            except ValueError as e:
                raise P.PolicyError(f"the body is not JSON: {e}") from None
            if not isinstance(body, dict):
                raise P.PolicyError("the body must be a JSON object")
            if path == "/_front/principals":
                creds = self.registry.register_principal(
                    body.get("arn"), body.get("policies", []), body.get("sessionName"),
                    body.get("accessKeyId"), body.get("secretAccessKey"),
                )
                return _json_reply(start_response, 200, creds)
            if path == "/_front/resource-policies":
                self.registry.put_resource_policy(body.get("resourceArn"), body.get("policy"))
                return _json_reply(start_response, 200, {"ok": True})
            if path == "/_front/encrypted":
                self.registry.set_encrypted(body.get("resourceArn"), body.get("keyArn"))
                return _json_reply(start_response, 200, {"ok": True})
            if path == "/_front/opensearch":
                backend = body.get("backend")
                ep = self.opensearch_endpoint(body.get("domainArn"), None if backend is None else _backend_url(backend))
                return _json_reply(start_response, 200, {"ok": True, "url": ep.url, "domainArn": ep.domain_arn, "backend": ep.backend})
            if path == "/_front/iot":
                # "backend": null (explicitly): moto's own IoT Data Plane answers (a test without
                # a shadow service). A missing backend is a mistake.
                explicit_none = "backend" in body and body["backend"] is None
                backend = None if explicit_none else _backend_url(body.get("backend"))
                ep = self.iot_endpoint(body.get("name"), backend)
                return _json_reply(start_response, 200, {"ok": True, "url": ep.url, "name": ep.name, "backend": ep.backend})
            if path == "/_front/lambda":
                return _json_reply(start_response, 200, self._set_backends(body, "functionArns", "lambda", "function"))
            if path == "/_front/states":
                return _json_reply(start_response, 200, self._set_backends(body, "stateMachineArns", "states", "state machine"))
            if path == "/_front/execute-api":
                ep = self.execute_api_endpoint(body)
                return _json_reply(start_response, 200, {"ok": True, "url": ep.url, **ep.api.describe()})
            if path == "/_front/close":
                self.close_endpoint(body.get("url"))
                return _json_reply(start_response, 200, {"ok": True})
            if path == "/_front/kinesis/scaling":
                return _json_reply(start_response, 200, self._seed_scaling(body))
            if path == "/_front/metrics":
                try:
                    count = self.ext.inject_metrics(body.get("namespace"), body.get("metricData"))
                except ValueError as e:
                    raise P.PolicyError(str(e)) from None
                return _json_reply(start_response, 200, {"ok": True, "count": count})
            return _json_reply(start_response, 404, {"error": f"no such admin endpoint: {method} {path}"})
        except P.PolicyError as e:
            return _json_reply(start_response, 400, {"error": str(e)})
        except OSError as e:  # a port could not be opened
            return _json_reply(start_response, 500, {"error": f"the front could not open the endpoint: {e}"})


class _Pool(dict):
    """A thread's backend connections, closed when the thread ends (an endpoint's workers do)."""

    def __del__(self) -> None:
        for conn in self.values():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - at thread exit
                pass


def _forward_only(call: S.Call, forward: Callable[..., tuple[int, list, bytes]]) -> tuple[int, list, bytes]:
    """The handler of a translated call the front adds nothing to: moto's answer, whole."""
    return forward()


def _credential(state: State, auth: sigv4.ParsedAuth, headers: dict[str, str]) -> Credential:
    """The registered key a request is signed with, its session token checked."""
    cred = state.keys.get(auth.access_key)
    if cred is None:
        raise FrontError("unknown_key", E.INVALID_TOKEN)
    token = headers.get("x-amz-security-token")
    if cred.token is not None:
        if token != cred.token:
            raise FrontError("bad_token", E.INVALID_TOKEN)
        if "x-amz-security-token" not in auth.signed_headers:
            raise FrontError("signature", "x-amz-security-token must be a signed header. " + E.SIGNATURE_MISMATCH)
    elif token is not None:
        raise FrontError("bad_token", E.INVALID_TOKEN)
    return cred


def _unavailable(role: str, why: str) -> FrontError:
    if role == ROLE_OPENSEARCH:  # the client treats a 502 like an unavailable cluster
        return FrontError("backend", why, status=502)
    if role == "lambda":  # Lambda's own error for a failure on its side
        return FrontError("backend", why, code="ServiceException", status=500)
    return FrontError("backend", why, code="ServiceUnavailableException", status=503)


def _backend_url(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("http://"):
        raise P.PolicyError(f"backend must be an http:// URL, not {value!r}")
    return value.rstrip("/")


def _kms_denied(call: S.Call, message: str) -> FrontError:
    msg = f"{message} (Service: AWSKMS; Status Code: 400; Error Code: AccessDeniedException)"
    if call.service == "kinesis":
        return FrontError("kms_denied", msg, code="KMSAccessDeniedException", status=400)
    if call.service == "sqs":
        if call.protocol.kind == "query":
            return FrontError("kms_denied", msg, code="KMS.AccessDeniedException", status=400)
        return FrontError("kms_denied", msg, code="KmsAccessDenied", query_code="KMS.AccessDeniedException", status=400)
    if call.service == "s3":
        return FrontError("kms_denied", msg, code="AccessDenied", status=403)
    return FrontError("denied", msg)  # dynamodb: AccessDeniedException naming the KMS action


def _caller_identity(principal: Principal, call: S.Call, headers: dict[str, str]) -> tuple[int, list, bytes]:
    rid = E.request_id()
    result = {"UserId": principal.user_id, "Account": principal.info.account, "Arn": principal.info.arn}
    if call.protocol.kind == "json":
        return 200, [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", rid)], json.dumps(result).encode()
    if "application/json" in headers.get("accept", ""):
        doc = {"GetCallerIdentityResponse": {"GetCallerIdentityResult": result, "ResponseMetadata": {"RequestId": rid}}}
        return 200, [("Content-Type", "application/json"), ("x-amzn-RequestId", rid)], json.dumps(doc).encode()
    xml = (
        '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<GetCallerIdentityResult>"
        f"<Arn>{escape(result['Arn'])}</Arn><UserId>{escape(result['UserId'])}</UserId>"
        f"<Account>{result['Account']}</Account>"
        "</GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    )
    return 200, [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)], xml.encode()


def _guess_service(raw_path: str, headers: dict[str, str]) -> str:
    """For an unsigned request on the AWS port: which protocol to refuse it in."""
    target = headers.get("x-amz-target", "")
    for prefix, svc in (("DynamoDB_", "dynamodb"), ("Kinesis_", "kinesis"), ("AmazonSQS", "sqs"), ("GraniteService", "monitoring")):
        if target.startswith(prefix):
            return svc
    if raw_path.startswith("/2015-03-31/"):
        return "lambda"
    if f"/service/{C.SERVICE}/" in raw_path or f"/service/{C.NAMESPACE}.{C.SERVICE}/" in raw_path:
        return "monitoring"  # rpc-v2-cbor
    if target:
        return "logs"
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return "sts"
    return "s3"


def _headers(environ: dict) -> dict[str, str]:
    h = {}
    for k, v in environ.items():
        if k.startswith("HTTP_"):
            h[k[5:].replace("_", "-").lower()] = v
    if environ.get("CONTENT_TYPE"):
        h["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        h["content-length"] = environ["CONTENT_LENGTH"]
    return h


def _read_body(environ: dict) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    return environ["wsgi.input"].read(length)


def _reply(start_response: Callable, status: int, headers: list, body: bytes) -> list[bytes]:
    reason = http.client.responses.get(status, "Error")
    start_response(f"{status} {reason}", headers + [("Content-Length", str(len(body)))])
    return [body]


def _json_reply(start_response: Callable, status: int, doc: Any) -> list[bytes]:
    return _reply(start_response, status, [("Content-Type", "application/json")], json.dumps(doc).encode())


# ------------------------------------------------------------------------------------------
# Serving
# ------------------------------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _stop_server(server: Any, thread: threading.Thread) -> None:
    """Stops a one-socket waitress server from another thread. Its sockets are closed on its own
    loop thread (wasyncore is not thread-safe), at once; the trigger, which worker threads pull,
    only after the workers are gone, so that no worker writes into a closed descriptor."""
    from waitress import wasyncore

    closed = threading.Event()
    socket_map = server._map

    def close_sockets() -> None:
        try:
            for obj in list(socket_map.values()):
                if obj is server.trigger:
                    continue
                try:
                    if obj is server:
                        wasyncore.dispatcher.close(obj)  # not server.close(): that closes the trigger too
                    else:
                        obj.handle_close()  # a channel: drops its buffers, marks it disconnected
                except OSError:
                    pass
        finally:
            closed.set()

    server.trigger.pull_trigger(close_sockets)
    if not closed.wait(10):
        print(f"aws-front: the server of {server.effective_port} did not close its sockets within 10 s", file=sys.stderr, flush=True)

    def finish() -> None:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=330)  # the backend timeout is 300 s
        server.trigger.pull_trigger(lambda: wasyncore.close_all(socket_map, ignore_all=True))
        thread.join(30)

    threading.Thread(target=finish, name="aws-front-close", daemon=True).start()


def make_server(front: Front, host: str, aws_port: int, opensearch_port: int, iot_port: int, threads: int = 8):
    """A waitress server on the three startup sockets (port 0 = any free port); returns (server, ports).
    Endpoints opened at run time (POST /_front/opensearch, /_front/iot) get a server each, on `host`."""
    from waitress import create_server

    socks = [_listen(host, aws_port), _listen(host, opensearch_port), _listen(host, iot_port)]
    ports = [s.getsockname()[1] for s in socks]
    front.host = host
    front.port_eids = {
        str(ports[0]): (_AWS_EID, ROLE_AWS),
        str(ports[1]): (_OPENSEARCH_EID, ROLE_OPENSEARCH),
        str(ports[2]): (_IOT_EID, ROLE_IOT),
    }
    h = f"[{host}]" if ":" in host else host
    with front._ep_lock:
        front.endpoints = {
            **front.endpoints,
            _OPENSEARCH_EID: replace(front.endpoints[_OPENSEARCH_EID], url=f"http://{h}:{ports[1]}"),
            _IOT_EID: replace(front.endpoints[_IOT_EID], url=f"http://{h}:{ports[2]}"),
        }
    server = create_server(
        front,
        sockets=socks,
        threads=threads,
        connection_limit=1000,
        asyncore_use_poll=True,  # select() cannot watch descriptors above 1024
        channel_timeout=300,
        ident="aws-front",
        clear_untrusted_proxy_headers=False,
    )
    return server, ports
