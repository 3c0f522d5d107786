"""IAM policy documents: validation, compilation and AWS's evaluation logic.

`compile_policy` validates a document and turns it into statements with precompiled matchers; it
raises `PolicyError` (naming the offending part) for anything malformed or unknown, in
particular an unknown condition operator or condition key: a condition the front cannot
evaluate is refused at registration instead of being silently treated as true or false.

`evaluate` applies AWS's logic for one (action, resource) in one request context: an explicit
Deny in any applicable policy wins; otherwise an Allow in an identity policy, or a same-account
Allow in the resource's policy that names the principal, allows; otherwise the request is
implicitly denied. KMS keys differ: the key policy must allow, either directly or by delegating to
IAM through the account principal (then an identity policy must allow too).
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

# Condition keys the front can put in a request context (lower case: keys are case-insensitive).
KNOWN_CONDITION_KEYS = {
    "aws:securetransport": "always 'true': the front stands for AWS's TLS-only endpoints",
    "aws:principalarn": "the role ARN of an assumed-role session, or the user ARN",
    "aws:principalaccount": "the principal's account",
    "aws:requestedregion": "the front's region",
    "aws:currenttime": "now, ISO 8601",
    "aws:epochtime": "now, epoch seconds",
    "aws:sourceaccount": "present only when a service principal acts (never here)",
    "aws:sourcearn": "present only when a service principal acts (never here)",
    "kms:viaservice": "<service>.<region>.amazonaws.com when a service uses a key for the caller",
    "kms:calleraccount": "the caller's account, on KMS requests",
    "kms:encryptioncontext:aws:logs:arn": "absent (the front does not serve CloudWatch Logs)",
    "lambda:functionarn": "the function of an event source mapping operation",
    "cloudwatch:namespace": "the namespace of PutMetricData",
    "s3:prefix": "the prefix parameter of ListObjects(V2)",
}

_BASE_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
    "StringLike", "StringNotLike",
    "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
    "NumericGreaterThan", "NumericGreaterThanEquals",
    "DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals",
    "DateGreaterThan", "DateGreaterThanEquals",
    "Bool", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
}
_NEGATED = {
    "StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "NumericNotEquals",
    "DateNotEquals", "ArnNotEquals", "ArnNotLike",
}
_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition", "Principal", "NotPrincipal"}


class PolicyError(ValueError):
    pass


def glob_regex(pattern: str, ignore_case: bool) -> str:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _compile_globs(patterns: list[str], ignore_case: bool) -> re.Pattern:
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("(?:" + "|".join(glob_regex(p, ignore_case) for p in patterns) + r")\Z", flags)


# ------------------------------------------------------------------------------------------
# Condition operators
# ------------------------------------------------------------------------------------------


def _parse_date(value: str) -> float:
    value = value.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return float(value)
    v = value.replace("z", "Z")
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%d", "%Y-%m-%dT%H:%MZ"):
        try:
            return float(calendar.timegm(time.strptime(v, fmt)))
        except ValueError:
            continue
    raise ValueError(f"not a date: {value!r}")


def _arn_like(ctx: str, pattern: str) -> bool:
    cparts = ctx.split(":", 5)
    pparts = pattern.split(":", 5)
    if len(cparts) != 6 or len(pparts) != 6:
        return False
    return all(re.match(glob_regex(p, False) + r"\Z", c, re.DOTALL) for c, p in zip(cparts, pparts))


def _string_like(ctx: str, pattern: str) -> bool:
    return re.match(glob_regex(pattern, False) + r"\Z", ctx, re.DOTALL) is not None


def _num(op: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def f(c: str, p: str) -> bool:
        try:
            return op(float(c), float(p))
        except ValueError:
            return False

    return f


def _date(op: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def f(c: str, p: str) -> bool:
        try:
            return op(_parse_date(c), _parse_date(p))
        except ValueError:
            return False

    return f


_MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda c, p: c == p,
    "StringEqualsIgnoreCase": lambda c, p: c.lower() == p.lower(),
    "StringLike": _string_like,
    "NumericEquals": _num(lambda a, b: a == b),
    "NumericLessThan": _num(lambda a, b: a < b),
    "NumericLessThanEquals": _num(lambda a, b: a <= b),
    "NumericGreaterThan": _num(lambda a, b: a > b),
    "NumericGreaterThanEquals": _num(lambda a, b: a >= b),
    "DateEquals": _date(lambda a, b: a == b),
    "DateLessThan": _date(lambda a, b: a < b),
    "DateLessThanEquals": _date(lambda a, b: a <= b),
    "DateGreaterThan": _date(lambda a, b: a > b),
    "DateGreaterThanEquals": _date(lambda a, b: a >= b),
    "Bool": lambda c, p: c.lower() == p.lower(),
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
}
_MATCHERS["StringNotEquals"] = _MATCHERS["StringEquals"]
_MATCHERS["StringNotEqualsIgnoreCase"] = _MATCHERS["StringEqualsIgnoreCase"]
_MATCHERS["StringNotLike"] = _MATCHERS["StringLike"]
_MATCHERS["NumericNotEquals"] = _MATCHERS["NumericEquals"]
_MATCHERS["DateNotEquals"] = _MATCHERS["DateEquals"]
_MATCHERS["ArnNotEquals"] = _MATCHERS["ArnEquals"]
_MATCHERS["ArnNotLike"] = _MATCHERS["ArnLike"]


@dataclass
class Condition:
    operator: str  # as written, for messages
    base: str
    qualifier: str | None  # ForAnyValue / ForAllValues / None
    if_exists: bool
    key: str  # lower case
    values: list[str]

    def holds(self, ctx: dict[str, list[str]]) -> bool:
        present = ctx.get(self.key)
        if self.base == "Null":
            want_absent = any(v.lower() == "true" for v in self.values)
            return (not present) == want_absent
        if not present:
            if self.if_exists:
                return True
            if self.qualifier == "ForAllValues":
                return True
            if self.qualifier == "ForAnyValue":
                return False
            return self.base in _NEGATED
        match = _MATCHERS[self.base]
        negated = self.base in _NEGATED

        def one(cv: str) -> bool:
            hit = any(match(cv, pv) for pv in self.values)
            return not hit if negated else hit

        if self.qualifier == "ForAllValues":
            return all(one(cv) for cv in present)
        if self.qualifier == "ForAnyValue":
            return any(one(cv) for cv in present)
        if negated:
            return all(one(cv) for cv in present)
        return any(one(cv) for cv in present)


def _parse_operator(op: str) -> tuple[str, str | None, bool]:
    qualifier = None
    base = op
    for q in ("ForAnyValue:", "ForAllValues:"):
        if base.startswith(q):
            qualifier = q[:-1]
            base = base[len(q) :]
    if_exists = False
    if base.endswith("IfExists") and base != "IfExists":
        if_exists = True
        base = base[: -len("IfExists")]
    if base not in _BASE_OPERATORS or (if_exists and base == "Null"):
        raise PolicyError(f"unknown condition operator {op!r}: the AWS front knows {sorted(_BASE_OPERATORS)}, with IfExists and ForAnyValue:/ForAllValues:")
    return base, qualifier, if_exists


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    raise PolicyError(f"{where}: condition values must be strings, numbers or booleans, not {type(value).__name__}")


# ------------------------------------------------------------------------------------------
# Statements and policies
# ------------------------------------------------------------------------------------------


@dataclass
class PrincipalSpec:
    any: bool = False
    arns: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)

    def match(self, principal: "PrincipalInfo") -> str | None:
        """'direct' (names the principal or everyone), 'account' (the account principal), or None."""
        if self.any:
            return "direct"
        if principal.arn in self.arns or (principal.role_arn and principal.role_arn in self.arns):
            return "direct"
        if principal.account in self.accounts:
            return "account"
        return None


@dataclass
class PrincipalInfo:
    arn: str  # the session or user ARN
    role_arn: str | None  # the role of an assumed-role session
    account: str


@dataclass
class Statement:
    sid: str | None
    allow: bool
    actions: re.Pattern
    not_action: bool
    resources: re.Pattern
    not_resource: bool
    conditions: list[Condition]
    principal: PrincipalSpec | None

    def applies(self, action: str, resource: str, ctx: dict[str, list[str]]) -> bool:
        if (self.actions.match(action) is None) != self.not_action:
            return False
        if (self.resources.match(resource) is None) != self.not_resource:
            return False
        for cond in self.conditions:
            if not cond.holds(ctx):
                return False
        return True


@dataclass
class Policy:
    statements: list[Statement]
    document: dict


def _str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise PolicyError(f"{where} must be a string or a non-empty list of strings")


def _principal(value: Any, where: str) -> PrincipalSpec:
    spec = PrincipalSpec()
    if value == "*":
        spec.any = True
        return spec
    if not isinstance(value, dict) or not value:
        raise PolicyError(f"{where}: Principal must be \"*\" or an object like {{\"AWS\": ...}}")
    for kind, ids in value.items():
        ids = _str_list(ids, f"{where}.Principal.{kind}")
        if kind == "AWS":
            for ident in ids:
                if ident == "*":
                    spec.any = True
                elif re.fullmatch(r"\d{12}", ident):
                    spec.accounts.add(ident)
                elif m := re.fullmatch(r"arn:aws[\w-]*:iam::(\d{12}):root", ident):
                    spec.accounts.add(m.group(1))
                elif re.fullmatch(r"arn:aws[\w-]*:(iam|sts)::\d{12}:\S+", ident) and "*" not in ident:
                    spec.arns.add(ident)
                else:
                    raise PolicyError(f"{where}: invalid AWS principal {ident!r}")
        elif kind in ("Service", "Federated", "CanonicalUser"):
            pass  # never one of the principals registered with the front
        else:
            raise PolicyError(f"{where}: unknown principal type {kind!r}")
    return spec


def _check_variables(values: list[str], where: str) -> None:
    for v in values:
        if "${" in v:
            raise PolicyError(f"{where}: policy variables ({v!r}) are not supported by the AWS front")


def compile_policy(doc: Any, *, resource_policy: bool, name: str = "policy") -> Policy:
    if isinstance(doc, str):
        import json

        try:
            doc = json.loads(doc)
        except ValueError as e:
            raise PolicyError(f"{name}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PolicyError(f"{name}: a policy document is a JSON object")
    extra = set(doc) - {"Version", "Id", "Statement"}
    if extra:
        raise PolicyError(f"{name}: unknown top-level element(s) {sorted(extra)}")
    version = doc.get("Version", "2008-10-17")
    if version not in ("2012-10-17", "2008-10-17"):
        raise PolicyError(f"{name}: Version must be \"2012-10-17\" (or \"2008-10-17\"), not {version!r}")
    raw = doc.get("Statement")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{name}: Statement must be an object or a non-empty list of objects")
    statements = []
    for i, st in enumerate(raw):
        where = f"{name} statement {i}" + (f" ({st.get('Sid')})" if isinstance(st, dict) and st.get("Sid") else "")
        if not isinstance(st, dict):
            raise PolicyError(f"{where}: a statement is a JSON object")
        extra = set(st) - _STATEMENT_KEYS
        if extra:
            raise PolicyError(f"{where}: unknown element(s) {sorted(extra)}")
        effect = st.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"{where}: Effect must be \"Allow\" or \"Deny\", not {effect!r}")
        if ("Action" in st) == ("NotAction" in st):
            raise PolicyError(f"{where}: exactly one of Action and NotAction is required")
        if ("Resource" in st) == ("NotResource" in st):
            raise PolicyError(f"{where}: exactly one of Resource and NotResource is required")
        actions = _str_list(st.get("Action", st.get("NotAction")), f"{where}.Action")
        for a in actions:
            if a != "*" and not re.fullmatch(r"[A-Za-z0-9-]+:[A-Za-z0-9*?]+", a):
                raise PolicyError(f"{where}: invalid action {a!r} (expected service:Action)")
        resources = _str_list(st.get("Resource", st.get("NotResource")), f"{where}.Resource")
        for r in resources:
            if r != "*" and not r.startswith("arn:"):
                raise PolicyError(f"{where}: invalid resource {r!r} (expected \"*\" or an ARN)")
        _check_variables(resources, where)
        if "NotPrincipal" in st:
            raise PolicyError(f"{where}: NotPrincipal is not supported by the AWS front")
        principal = None
        if resource_policy:
            if "Principal" not in st:
                raise PolicyError(f"{where}: a resource-based policy statement needs a Principal")
            principal = _principal(st["Principal"], where)
        elif "Principal" in st:
            raise PolicyError(f"{where}: an identity-based policy must not have a Principal")
        conditions = []
        cond = st.get("Condition", {})
        if not isinstance(cond, dict):
            raise PolicyError(f"{where}: Condition must be an object")
        for op, block in cond.items():
            base, qualifier, if_exists = _parse_operator(op)
            if not isinstance(block, dict) or not block:
                raise PolicyError(f"{where}: Condition operator {op} needs an object of key: value(s)")
            for key, values in block.items():
                if key.lower() not in KNOWN_CONDITION_KEYS:
                    raise PolicyError(
                        f"unknown condition key {key!r} in {where} ({op}): the AWS front knows "
                        + ", ".join(sorted(KNOWN_CONDITION_KEYS))
                        + "; add it to tools/aws_front if the template needs it"
                    )
                vals = values if isinstance(values, list) else [values]
                if not vals:
                    raise PolicyError(f"{where}: {op} {key} has no values")
                svals = [_scalar(v, f"{where} {op} {key}") for v in vals]
                _check_variables(svals, where)
                if base.startswith("Date"):
                    for v in svals:
                        try:
                            _parse_date(v)
                        except ValueError:
                            raise PolicyError(f"{where}: {op} {key}: {v!r} is not a date") from None
                if base.startswith("Numeric"):
                    for v in svals:
                        try:
                            float(v)
                        except ValueError:
                            raise PolicyError(f"{where}: {op} {key}: {v!r} is not a number") from None
                conditions.append(Condition(op, base, qualifier, if_exists, key.lower(), svals))
        statements.append(
            Statement(
                sid=st.get("Sid"),
                allow=effect == "Allow",
                actions=_compile_globs(actions, ignore_case=True),
                not_action="NotAction" in st,
                resources=_compile_globs(resources, ignore_case=False),
                not_resource="NotResource" in st,
                conditions=conditions,
                principal=principal,
            )
        )
    return Policy(statements, doc)


# ------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------


@dataclass
class Decision:
    allowed: bool
    reason: str  # allowed, identity-deny, resource-deny, no-identity-allow, no-resource-allow


def evaluate(
    principal: PrincipalInfo,
    identity_policies: list[Policy],
    resource_policy: Policy | None,
    action: str,
    resource: str,
    ctx: dict[str, list[str]],
    *,
    kms_key: bool = False,
) -> Decision:
    identity_allow = False
    for pol in identity_policies:
        for st in pol.statements:
            if st.applies(action, resource, ctx):
                if not st.allow:
                    return Decision(False, "identity-deny")
                identity_allow = True
    direct = account = False
    if resource_policy is not None:
        for st in resource_policy.statements:
            m = st.principal.match(principal) if st.principal else None
            if m is None or not st.applies(action, resource, ctx):
                continue
            if not st.allow:
                return Decision(False, "resource-deny")
            if m == "direct":
                direct = True
            else:
                account = True
    if kms_key:
        if resource_policy is None:  # no key policy registered: the key delegates to IAM
            return Decision(identity_allow, "allowed" if identity_allow else "no-identity-allow")
        if direct or (account and identity_allow):
            return Decision(True, "allowed")
        return Decision(False, "no-identity-allow" if account else "no-resource-allow")
    if identity_allow or direct:
        return Decision(True, "allowed")
    return Decision(False, "no-identity-allow")
