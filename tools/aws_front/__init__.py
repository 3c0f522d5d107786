"""The AWS front: one strict process between every client and the lenient local stand-ins.

moto (DynamoDB, Kinesis, SQS, S3, Lambda and IoT control planes, IAM, CloudWatch), osmem (the
OpenSearch stand-in) and the shadow service (IoT Data Plane) accept requests AWS would refuse:
bad signatures, missing IAM permissions, oversized records. Every function, tool and test reaches
them through this front instead, which refuses what AWS refuses, in AWS's own words, and forwards
the rest. It listens on three loopback ports of one process (waitress, HTTP/1.1 keep-alive):

    aws         every AWS API, forwarded to moto's WSGI app in-process (no network hop);
                /_front/... is the admin API, /moto-api/... passes through to moto unsigned
    opensearch  requests signed for `es`, forwarded over HTTP to osmem
    iot         requests signed for `iotdata`, forwarded over HTTP to the shadow service; with
                no backend (the startup port unless re-pointed), moto's own IoT Data Plane

    python tools/aws_front --aws-port A --opensearch-port O --opensearch-backend http://127.0.0.1:X \
        --iot-port I [--iot-backend URL] [--region us-east-1] [--account 123456789012] \
        [--opensearch-domain robofleet] [--opensearch-max-body 10485760] [--threads 8] \
        [--developer KEY:SECRET [--developer-name developer]]

As in AWS, where every OpenSearch domain has its own endpoint and every account its own IoT data
endpoint, more such ports are opened at run time, so that local stacks running side by side
against one front (one moto state) each have theirs: `POST /_front/opensearch` opens one port per
domain ARN (its requests' resources are that domain's `arn:aws:es:...:domain/NAME/<path>`), and
`POST /_front/iot` one per stack name. Posting again re-points the same port to a new backend
(a cluster replaced under a running pipeline: requests in flight may fail, later ones reach the
new backend); `POST /_front/close` closes a port a stopping stack no longer needs. These ports are
served exactly like the startup ones (same checks, counters and errors), by one more waitress
server each (4 threads), on the front's host. The startup opensearch port serves
--opensearch-domain, the startup iot port has no name; neither can be closed.

What it checks, in this order:

1. **Credentials per principal.** `POST /_front/principals` registers an IAM role or user ARN
   with its identity policies and returns keys: a role gets ASIA keys and a session token and acts
   as `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`; a user gets AKIA keys. Unknown keys,
   a missing, wrong or unsigned session token, are refused.
2. **SigV4, verified with botocore** (`botocore.auth.SigV4Auth`, `S3SigV4Auth` for S3), not
   with the Rust signer: the canonical request is built over exactly the SignedHeaders, with the
   values the request carries (a signed header that is not sent canonicalises as empty, so the
   signature fails: the "content-type signed but not sent" defect is caught), `host` must be
   signed, x-amz-date must be within 15 minutes, the scope must name the front's region (IAM and
   STS also accept us-east-1) and the port's service. The payload hash is sha256(body); S3 takes
   x-amz-content-sha256 (a hex digest is checked against the body; UNSIGNED-PAYLOAD and the
   STREAMING-* values are accepted and the aws-chunked body is forwarded byte for byte).
3. **Authorization.** Each request maps to an operation of an explicit per-service table
   (services.py), then to IAM actions, resource ARNs and condition keys; an operation not in
   the table is refused with 501 `FrontUnsupportedOperation` (fail closed). Policies are
   evaluated with AWS's logic: explicit Deny wins; an identity-policy Allow or a same-account
   resource-policy Allow naming the principal allows; else implicit deny. KMS key policies
   allow directly or by delegating to IAM through the account principal.
4. **Implicit KMS.** A resource registered with `POST /_front/encrypted` also needs the KMS
   actions AWS performs for the caller (Kinesis put: GenerateDataKey, get: Decrypt; SQS send:
   both, receive: Decrypt; S3 put: GenerateDataKey, get: Decrypt; DynamoDB items: Decrypt) on
   the key, with kms:ViaService = `<service>.<region>.amazonaws.com` and kms:CallerAccount.
5. **Sizes**, after authorization as AWS does: Kinesis record data 1 MiB, PutRecords 500 records
   and 5 MiB with partition keys; SQS message and batch 1 MiB with attributes; DynamoDB item
   400 KiB (409,600 bytes, DynamoDB's size rules); Lambda Invoke payload 6 MiB (1 MiB for
   InvocationType Event); IoT Publish 128 KiB; OpenSearch body 10 MiB (--opensearch-max-body),
   checked before anything else like the domain's load balancer does.
6. **Rules and APIs moto lacks** (extensions.py, which names the AWS source of each rule),
   after authorization, for the front's account and region:
   - Kinesis UpdateShardCount: UNIFORM_SCALING only; provisioned and ACTIVE streams only; at most
     10 successful calls per stream in a rolling 24 h (the front's clock); target within double and
     half the open shards, at most 10,000 per stream; the account's shard limit (open shards of
     provisioned streams; 20,000 in us-east-1, also checked by CreateStream). The answer has
     StreamARN; moto's open shards are checked (and split or merged) to end at the target.
     DescribeLimits shows the front's ShardLimit and the real OpenShardCount.
   - Kinesis On-demand Advantage, served by the front: UpdateAccountSettings /
     DescribeAccountSettings (MinimumThroughputBillingCommitment; a disable within the 24 h minimum
     is ENABLED_UNTIL_EARLIEST_ALLOWED_END until then), UpdateStreamWarmThroughput (on-demand
     streams of a committed account, 0..10,240 MiBps; current = target at once; also
     WarmThroughputMiBps on CreateStream and UpdateStreamMode), shown by DescribeStreamSummary.
   - DynamoDB warm throughput (UpdateTable, table and GSI updates, CreateTable): only increases,
     at most 40,000 units, a field left out kept, DescribeTable shows both with Status.
   - CloudWatch: PutMetricData into AWS/... is InvalidParameterValue; GetMetricData and
     GetMetricStatistics round the start time and match metrics as CloudWatch does (moto did not);
     the front publishes AWS/Kinesis IncomingBytes and IncomingRecords per stream and minute from
     the puts it forwards (one statistic set per minute, one sample per put call).
   - CloudWatch in Smithy RPC v2 CBOR (the Rust SDK's protocol for it; rpcv2cbor.py): moto has
     no CBOR, so the body is decoded (gzip undone), authorized like the awsJson call, sent to
     moto as awsJson 1.0 and the answer encoded back, members typed by botocore's CloudWatch
     model (timestamps as tag 1 + a 64-bit float, blobs, doubles, integers).
7. **Errors as each protocol writes them**, so the SDKs parse the right code: awsJson
   (`__type`, `x-amzn-ErrorType`; SQS and CloudWatch add `x-amzn-query-error`), rpc-v2-cbor (a
   CBOR map of `__type`, the absolute shape ID, and `message`; `smithy-protocol: rpc-v2-cbor`;
   CloudWatch's `x-amzn-query-error`), query XML (`ErrorResponse`), restJson
   (`x-amzn-ErrorType`, 403), S3 XML (403 `AccessDenied`), and OpenSearch's bare
   `{"message"}` / `{"Message"}` 403s. Condition keys the front cannot put in a
   request context (anything outside policy.KNOWN_CONDITION_KEYS), unknown condition operators,
   policy variables and NotPrincipal are refused when a policy is registered, naming them.

Condition keys known: aws:SecureTransport (always "true": the front stands for AWS's TLS-only
endpoints), aws:PrincipalArn (the role ARN for a session), aws:PrincipalAccount,
aws:RequestedRegion, aws:CurrentTime, aws:EpochTime, aws:SourceAccount and aws:SourceArn (only a
service principal has them, so they are always absent here), kms:ViaService, kms:CallerAccount,
kms:EncryptionContext:aws:logs:arn (absent), lambda:FunctionArn (event source mapping operations;
for existing mappings read from moto's Lambda backend), cloudwatch:namespace, s3:prefix. As in
AWS, a key missing from the request makes a condition false, except with ...IfExists, Null,
ForAllValues, and the negated operators (StringNotEquals, ArnNotLike, ...), which are true.

What it does not check: the per-chunk signatures of STREAMING-AWS4-HMAC-SHA256-PAYLOAD bodies
(the seed signature is checked); presigned URLs and SigV4a (refused as unauthenticated);
iam:PassRole; permission boundaries, session policies, SCPs, tags (ABAC); Lambda function
policies (AddPermission is authorized, not evaluated on Invoke); cross-account access;
throttling (TPS limits) and quotas other than the sizes and the rules of 6; virtual-hosted S3 addressing (path-style only);
S3 anonymous access (an unsigned S3 request is AccessDenied even under a public bucket policy).
A ListShards call with only a NextToken is authorized on `stream/*` (moto's token does not hold
the stream). Limits of the HTTP server: waitress drops header names containing "_" and joins a
repeated header with ", ", so such signed headers fail where AWS would accept them.

Cost: the front's own CPU per request (thread CPU time, moto's handling excluded; see
`GET /_front/stats` and `python tools/test_aws_front.py bench`) was about 70-160 us for a
kept-alive DynamoDB PutItem, against about 1,200 us of moto's own CPU for the same request, and
about 360-600 us for a Kinesis PutRecords of 100 x 1 KB records (body hash and JSON parse),
against about 7,000 us of moto's; on a 2-core machine that was busy with a Rust build, so the
wall-clock comparison (about 1.9 ms per PutItem either way) is noise-dominated.

Admin API (aws port, unsigned, loopback only), JSON in and out, 400 `{"error": ...}` on a bad
request:
    GET  /_front/health                -> {"ok": true}
    POST /_front/principals            {"arn", "policies": [doc...], "sessionName"?,
                                        "accessKeyId"?, "secretAccessKey"? (fixed keys instead of new ones)}
                                       -> {"accessKeyId", "secretAccessKey", "sessionToken", "principalArn"}
    POST /_front/resource-policies     {"resourceArn", "policy"}   ("policy": null removes it)
    POST /_front/encrypted             {"resourceArn", "keyArn"}
    POST /_front/opensearch            {"domainArn"?, "backend"?}
                                       -> {"ok": true, "url", "domainArn", "backend"}
                                       the port of arn:aws:es:REGION:ACCOUNT:domain/NAME (front's region and
                                       account, NAME 3-28 of a-z 0-9 - as in AWS; default: the startup domain),
                                       opened if new, else re-pointed;
                                       "backend" omitted: the startup port's current one (--opensearch-backend)
    POST /_front/iot                   {"name"?, "backend"} -> {"ok": true, "url", "name", "backend"}
                                       the port of this stack (no name: the startup iot port), opened if new,
                                       else re-pointed; "backend": null serves moto's IoT Data Plane
    POST /_front/lambda                {"functionArns": [unqualified ARN...], "backend": URL | null}
                                       -> {"ok": true, ...}; an authorized Invoke of these functions (any
                                       qualifier) is forwarded to the Invoke API at URL (a local stack's
                                       functions: fleet_esm::invoke_api) instead of moto's Lambda, which
                                       would run them in Docker; null forgets them
    POST /_front/execute-api           {"apiId", "backend", "routes": [{"routeKey": "GET /robots/{id}", "functionArn",
                                        "timeoutMs"?, "authorization"?: "AWS_IAM"}]}
                                       -> {"ok": true, "url", "apiId", "stage", "routes"}; an HTTP API with IAM
                                       routes on a port of its own (execute_api.py): route, SigV4 for execute-api,
                                       execute-api:Invoke, then the function through the Invoke API at backend
    POST /_front/close                 {"url"} -> {"ok": true}; a port opened at run time stops listening and
                                       its connections close (400 for a startup port or an unknown URL)
    GET  /_front/endpoints             -> [{"kind": "opensearch", "url", "domainArn", "backend", "startup"},
                                           {"kind": "iot", "url", "name", "backend", "startup"}, ...]
    GET  /_front/stats                 -> counters, by service, front and moto CPU
    POST /_front/reset-stats           (counters only: scaling history, account settings, warm
                                        throughput and metrics stay)
    GET  /_front/kinesis/scaling?stream=ARN
                                       -> {"streamArn", "calls": [epoch seconds of the successful
                                           UpdateShardCount calls in the last 24 h, oldest first], "shardLimit"}
    POST /_front/kinesis/scaling       {"streamArn"?, "calls"?: [epoch seconds], "shardLimit"?: N}
                                       replaces the stream's call history (needs streamArn), sets the
                                       account's shard limit; -> the GET answer ({"shardLimit"} alone
                                       without streamArn)
    POST /_front/metrics               {"namespace", "metricData": [{"metricName", "dimensions"?: {NAME: VALUE},
                                        "timestamp": epoch seconds, "value", "unit"?}, ...]}
                                       -> {"ok": true, "count": N}; test-only: straight into moto's
                                       CloudWatch (AWS/ namespaces too)
"""

from .server import Front, make_server

__all__ = ["Front", "make_server"]
