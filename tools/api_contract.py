"""Contract test of the fleet API against its OpenAPI document (openapi/fleet-api.yaml).

1. The document is validated as OpenAPI 3.1 (openapi-spec-validator).
2. For every operation, schemathesis generates requests from the document, valid ones and
   invalid ones (its positive and negative modes), and sends them to the running API signed
   with SigV4 for `execute-api` (botocore), plus one request per operation with an id that
   exists (--robot, --job), and one job submitted with an input that exists (--job-input), so
   that the answers with data are checked too.
3. Every answer is checked: no 5xx, a status code the document declares, the declared content
   type, and a body that matches the declared schema.

    python tools/api_contract.py --url URL --robot ID --job ID [--job-input s3://BUCKET/inputs/KEY]
        [--delete-robot ID] [--spec openapi/fleet-api.yaml]
        [--region us-east-1] [--max-examples 25] [--json report.json]

Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; the
caller needs execute-api:Invoke on every route. Exits 1 when any check failed. The Rust test
tests/tests/api_contract.rs runs it against `robofleet dev`'s stack.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
import traceback

import requests
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class SigV4(requests.auth.AuthBase):
    """Signs the prepared request as it will be sent: method, URL, content type, body."""

    def __init__(self, region: str) -> None:
        self.credentials = Credentials(
            os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ.get("AWS_SESSION_TOKEN")
        )
        self.region = region

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = {}
        if r.headers.get("Content-Type"):
            headers["Content-Type"] = r.headers["Content-Type"]
        signed = AWSRequest(method=r.method, url=r.url, data=body, headers=headers)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(signed)
        for k, v in signed.headers.items():
            r.headers[k] = v
        return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="the API's base URL")
    ap.add_argument("--spec", default=os.path.join(os.path.dirname(__file__), "..", "openapi", "fleet-api.yaml"))
    ap.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    ap.add_argument("--robot", required=True, help="a robot id the API knows")
    ap.add_argument("--delete-robot", help="the robot id DELETE /robots/{id} uses (default: --robot); it is decommissioned")
    ap.add_argument("--job", required=True, help="a job id the API knows")
    ap.add_argument("--job-input", help="s3://BUCKET/inputs/KEY (JSONL): POST /jobs submits one job over it")
    ap.add_argument("--max-examples", type=int, default=25, help="generated requests per operation and mode")
    ap.add_argument("--json", help="write a JSON report here")
    args = ap.parse_args()

    # Imported here: they are slow to import, and --help should not wait for them.
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from openapi_spec_validator import validate

    with open(args.spec) as f:
        doc = yaml.safe_load(f)
    validate(doc)
    print(f"{args.spec}: a valid OpenAPI {doc['openapi']} document", flush=True)

    schema = schemathesis.openapi.from_dict(doc)
    session = requests.Session()
    session.auth = SigV4(args.region)
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.status_code_conformance,
        schemathesis.checks.content_type_conformance,
        schemathesis.checks.response_schema_conformance,
    ]
    statuses: dict[str, collections.Counter] = {}
    failures: list[dict] = []
    started = time.monotonic()

    def check(op, case) -> None:
        response = case.call(base_url=args.url, session=session, timeout=35)
        statuses.setdefault(op.label, collections.Counter())[str(response.status_code)] += 1
        if response.status_code == 403:
            print(f"  403 for {case.method} {case.formatted_path} ({len(case.query or {})} query keys): {response.text[:120]}", flush=True)
        try:
            case.validate_response(response, checks=checks)
        except Exception as e:  # noqa: BLE001 - a failed check: recorded with the request
            failures.append({
                "operation": op.label,
                "request": case.as_curl_command(),
                "status": response.status_code,
                "body": response.text[:500],
                "problem": str(e)[:2000],
            })

    operations = [r.ok() for r in schema.get_all_operations()]
    for op in operations:
        for mode in schemathesis.GenerationMode:
            @settings(max_examples=args.max_examples, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case) -> None:
                check(op, case)

            run()
        # One request with an id that exists (for POST /jobs: an input that exists).
        if op.path == "/jobs":
            if args.job_input:
                bucket, _, key = args.job_input.removeprefix("s3://").partition("/")
                job = {"jobId": f"{args.job}-submitted", "command": {"action": "dock"},
                       "input": {"bucket": bucket, "key": key, "format": "jsonl"}}
                check(op, op.Case(body=job, media_type="application/json"))
            print(f"  {op.label}: {dict(sorted(statuses.get(op.label, {}).items()))}", flush=True)
            continue
        if op.path.startswith("/jobs"):
            known = args.job
        elif op.method.upper() == "DELETE":
            known = args.delete_robot or args.robot
        else:
            known = args.robot
        body = {"action": "dock"} if op.method.upper() == "POST" and "commands" in op.path else None
        kwargs = {"path_parameters": {"id": known}}
        if body is not None:
            kwargs.update(body=body, media_type="application/json")
        check(op, op.Case(**kwargs))
        print(f"  {op.label}: {dict(sorted(statuses.get(op.label, {}).items()))}", flush=True)

    total = sum(sum(c.values()) for c in statuses.values())
    elapsed = time.monotonic() - started
    print(f"{total} requests over {len(operations)} operations in {elapsed:.1f} s; {len(failures)} failed a check")
    for f in failures[:20]:
        print(f"FAILED {f['operation']}: {f['status']} {f['problem']}\n  {f['request']}\n  {f['body']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"requests": total, "operations": len(operations), "seconds": round(elapsed, 1),
                       "statuses": {k: dict(v) for k, v in statuses.items()}, "failures": failures}, out, indent=2)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - a broken run is a failure with its trace, not a pass
        traceback.print_exc()
        sys.exit(2)
