"""What the front adds to moto: AWS rules moto lacks, APIs moto lacks, and fixes of moto's answers.

An operation listed in `Extensions.handler` is answered here, after authorization (AWS authorizes
before it validates), instead of being streamed straight from moto: the handler refuses what AWS
would refuse, in AWS's words, forwards to moto when the call is allowed (`forward`, which returns
moto's status, headers and body), and corrects or completes moto's answer. The state kept here
(scaling history, account settings, warm throughput, pending metrics) is the front's, per front
process, and survives `POST /_front/reset-stats`.

Sources (AWS documentation unless said otherwise; where AWS documents a rule but not the text of
its error, the message is composed and marked "composed"):

Kinesis UpdateShardCount (API reference, UpdateShardCount; error texts as kinesalite, an emulator
whose tests were checked against AWS, and moto for the on-demand one):
  ScalingType UNIFORM_SCALING only (model enum: ValidationException); ON_DEMAND streams refused
  (ValidationException, "only supported for ... provisioned capacity mode"); ResourceInUseException
  unless the stream is ACTIVE; at most 10 calls per rolling 24 h per stream (LimitExceededException,
  composed); target at most double the open shard count and not below half of it
  (LimitExceededException; "below half" is taken literally: 5 -> 3 is allowed, 5 -> 2 is not, as
  kinesalite does); at most 10,000 shards per stream, and a stream above 10,000 only down below
  10,000 (LimitExceededException); the account's shard quota (open shards of provisioned streams in
  the region; Kinesis "Quotas and limits": 20,000 in us-east-1, us-west-2 and eu-west-1, "1,000 or
  6,000" elsewhere: 6,000 here; settable by `POST /_front/kinesis/scaling`) also on CreateStream.
  Only successful calls count toward the 24 h budget. A call with the current count as target is
  allowed and counts (docs silent). moto reaches the target for every allowed case (checked for
  1..40 shards), but reports a disallowed target as reached (2 -> 8 ends at 4 open shards while
  DescribeStreamSummary says 8); after each call the front checks the open shards and would split
  or merge in moto's backend to reach the target. moto's answer lacks StreamARN: the front answers
  StreamName, CurrentShardCount, TargetShardCount, StreamARN. DescribeStreamSummary's
  OpenShardCount counts the open shards (moto: the last target), and DescribeLimits reports the
  front's ShardLimit and the real OpenShardCount (moto: a fixed 6000 and 0).

Kinesis On-demand Advantage (API reference: UpdateAccountSettings, DescribeAccountSettings,
UpdateStreamWarmThroughput, MinimumThroughputBillingCommitmentInput/Output, WarmThroughputObject;
moto has none of them):
  The commitment starts DISABLED. ENABLED sets StartedAt and EarliestAllowedEndAt = StartedAt +
  24 h. DISABLED before EarliestAllowedEndAt is not an error: the status becomes
  ENABLED_UNTIL_EARLIEST_ALLOWED_END and the commitment ends (DISABLED, EndedAt) at that time;
  ENABLED again before then cancels the pending disable. Warm throughput needs an ON_DEMAND stream
  (else ValidationException, composed) in an account whose commitment is enabled (else
  InvalidArgumentException, composed; the docs name the condition, not the error), an ACTIVE
  stream, and 0..10,240 MiBps (10 GiBps; 200 MiBps outside us-east-1, us-west-2, eu-west-1, the
  on-demand write maximum of the quotas page; LimitExceededException, composed). Locally the
  current value is the target at once. DescribeStreamSummary shows WarmThroughput
  {TargetMiBps, CurrentMiBps} for an on-demand stream whose warm throughput was set while the
  commitment is enabled (the docs: "only present for On-Demand ... in accounts that have
  MinimumThroughputBillingCommitment enabled"; a stream never configured shows none, a choice:
  AWS's value for it is not documented). DescribeStream has no such member (API model).
  CreateStream and UpdateStreamMode (to ON_DEMAND) take WarmThroughputMiBps with the same rules.

DynamoDB warm throughput (developer guide, "Understanding DynamoDB warm throughput": values can be
increased, never decreased; a new on-demand table starts at 12,000 read / 4,000 write units per
second; error texts as observed on AWS and recorded by a public AWS-behaviour catalogue):
  UpdateTable WarmThroughput and GlobalSecondaryIndexUpdates[].Update.WarmThroughput: at least one
  of ReadUnitsPerSecond, WriteUnitsPerSecond (ValidationException, composed); lower than the current
  value -> ValidationException "... is lower than current WarmThroughput, decreasing WarmThroughput
  is not supported"; above the table quota (40,000 units, "Quotas in Amazon DynamoDB") ->
  LimitExceededException "Subscriber limit exceeded: ... exceeds TableMaxReadCapacityUnits ...";
  the same value again is accepted. A field left out keeps its value (moto replaced the whole
  structure, losing it). UpdateTable's answer shows the new values with Status UPDATING for what
  changed (AWS shows UPDATING for minutes); DescribeTable shows them ACTIVE at once. An unknown
  index is ResourceNotFoundException "Requested resource not found: Index X for table Y" (moto: a
  500). CreateTable: moto checks the minimums; the front adds the 40,000 maximum and fills a field
  left out with its default.

CloudWatch (API reference, GetMetricData / GetMetricStatistics StartTime; moto 5.2.5 got these
wrong): the start time is rounded down to the minute (5 minutes after 15 days, the hour after 63
days; to the period for 5, 10, 20 and 30 s periods) and buckets follow it (moto bucketed from the
unrounded start time, and GetMetricStatistics from the first data point); a metric matches on
namespace, name and its exact set of dimensions (moto ignored the namespace when dimensions were
given, and matched every dimension set when none were); queries with math expressions or other
statistics than Sum, Average, Minimum, Maximum, SampleCount are left to moto (with the rounded
start time).

Kinesis metrics (developer guide, "Monitoring ... with Amazon CloudWatch": IncomingBytes and
IncomingRecords per stream, dimension StreamName, from successful PutRecord and PutRecords;
"Minimum, Maximum, and Average statistics represent the bytes/records in a single put operation"):
the front publishes them into moto's CloudWatch as one statistic set per stream and minute
(SampleCount = calls, Sum, Minimum, Maximum per call), aggregated in memory and flushed when the
minute changes or before a CloudWatch read; moto's own per-call publication is turned off (it grew
without bound). Bytes are the data plus the partition key (UTF-8), as the 1 MiB/s shard write
quota counts them (the metric's byte definition is not documented further).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import zlib
from typing import Any, Callable

from . import errors as E
from . import services as S
from .errors import FrontError

Reply = tuple[int, list, bytes]
Forward = Callable[..., Reply]

DAY = 86400.0
KINESIS_SCALING_CALLS_PER_DAY = 10
KINESIS_MAX_SHARDS_PER_STREAM = 10_000
_KINESIS_LARGE_REGIONS = {"us-east-1", "us-west-2", "eu-west-1"}
DDB_TABLE_MAX_UNITS = 40_000
DDB_WARM_DEFAULT = {"ReadUnitsPerSecond": 12_000, "WriteUnitsPerSecond": 4_000}
_DDB_WARM_KEYS = (("ReadUnitsPerSecond", "TableMaxReadCapacityUnits"), ("WriteUnitsPerSecond", "TableMaxWriteCapacityUnits"))
_COMMITMENT = "MinimumThroughputBillingCommitment"


def default_shard_limit(region: str) -> int:
    """Kinesis "Quotas and limits": 20,000 shards in us-east-1, us-west-2, eu-west-1; "1,000 or 6,000" elsewhere."""
    return 20_000 if region in _KINESIS_LARGE_REGIONS else 6_000


def warm_throughput_max(region: str) -> int:
    """UpdateStreamWarmThroughput: at most 10 GiBps; on-demand streams outside the three large regions write at most 200 MB/s."""
    return 10_240 if region in _KINESIS_LARGE_REGIONS else 200


def _refuse(code: str, message: str) -> FrontError:
    return FrontError("invalid", message, code=code, status=400)


def _null(field: str) -> FrontError:
    return _refuse("ValidationException", f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")


def _constraint(field: str, value: Any, constraint: str) -> FrontError:
    return _refuse("ValidationException", f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}")


def _int(value: Any, field: str) -> int:
    if value is None:
        raise _null(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse("SerializationException", f"Unexpected value type for '{field}': expected an integer, got {json.dumps(value)}")
    return value


def _utc(ts: float) -> dt.datetime:
    """moto keeps naive UTC datetimes."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).replace(tzinfo=None)


def _json_reply(call: S.Call, doc: Any) -> Reply:
    body = json.dumps(doc).encode()
    return 200, [("Content-Type", f"application/x-amz-json-{call.protocol.json_version}"), ("x-amzn-RequestId", E.request_id())], body


def _rebody(headers: list, doc: Any) -> Reply:
    """moto's answer with a new JSON body (DynamoDB's x-amz-crc32 recomputed)."""
    body = json.dumps(doc).encode()
    out = []
    for k, v in headers:
        if k.lower() == "x-amz-crc32":
            v = str(zlib.crc32(body) & 0xFFFFFFFF)
        out.append((k, v))
    return 200, out, body


class Extensions:
    def __init__(self, region: str, account: str, clock: Callable[[], float]):
        self.region = region
        self.account = account
        self.clock = clock
        self.shard_limit = default_shard_limit(region)
        self._kinesis_lock = threading.RLock()
        self._scaling: dict[str, list[float]] = {}  # stream ARN -> successful UpdateShardCount times
        self._warm: dict[str, int] = {}  # stream ARN -> warm throughput MiBps
        self._commitment: dict[str, Any] = {"Status": "DISABLED"}
        self._ddb_lock = threading.Lock()
        self._metrics_lock = threading.Lock()
        self._pending: dict[tuple[str, int], list[float]] = {}  # (stream, minute) -> [n, bytes sum/min/max, records sum/min/max]
        self._minute = 0
        self._handlers: dict[tuple[str, str], Callable[[S.Call, Forward], Reply]] = {
            ("kinesis", "UpdateShardCount"): self._update_shard_count,
            ("kinesis", "CreateStream"): self._create_stream,
            ("kinesis", "UpdateStreamMode"): self._update_stream_mode,
            ("kinesis", "DeleteStream"): self._delete_stream,
            ("kinesis", "DescribeLimits"): self._describe_limits,
            ("kinesis", "DescribeStreamSummary"): self._describe_stream_summary,
            ("kinesis", "UpdateAccountSettings"): self._update_account_settings,
            ("kinesis", "DescribeAccountSettings"): self._describe_account_settings,
            ("kinesis", "UpdateStreamWarmThroughput"): self._update_stream_warm_throughput,
            ("kinesis", "PutRecord"): self._put_records,
            ("kinesis", "PutRecords"): self._put_records,
            ("dynamodb", "UpdateTable"): self._ddb_update_table,
            ("dynamodb", "CreateTable"): self._ddb_create_table,
            ("monitoring", "GetMetricData"): self._metrics_read,
            ("monitoring", "GetMetricStatistics"): self._metrics_read,
            ("monitoring", "ListMetrics"): self._metrics_read,
        }

    def handler(self, call: S.Call) -> Callable[[S.Call, Forward], Reply] | None:
        return self._handlers.get((call.service, call.operation))

    # -- moto's backends -----------------------------------------------------------------------

    def _kinesis(self) -> Any:
        from moto.kinesis.models import kinesis_backends

        return kinesis_backends[self.account][self.region]

    def _cloudwatch(self) -> Any:
        from moto.cloudwatch.models import cloudwatch_backends

        return cloudwatch_backends[self.account][self.region]

    def _stream(self, arn: str) -> Any:
        prefix = f"arn:aws:kinesis:{self.region}:{self.account}:stream/"
        name = arn[len(prefix):] if arn.startswith(prefix) else arn.rsplit("/", 1)[-1]
        stream = self._kinesis().streams.get(name) if arn.startswith(prefix) else None
        if stream is None:
            raise _refuse("ResourceNotFoundException", f"Stream {name} under account {self.account} not found.")
        return stream

    @staticmethod
    def _open(stream: Any) -> list:
        return [s for s in stream.shards.values() if s.is_open]

    @staticmethod
    def _on_demand(stream: Any) -> bool:
        return (stream.stream_mode or {}).get("StreamMode") == "ON_DEMAND"

    def _account_open_shards(self) -> int:
        """Open shards of the provisioned streams of the account in the region (the shard quota counts these)."""
        return sum(len(self._open(s)) for s in list(self._kinesis().streams.values()) if not self._on_demand(s))

    def _not_active(self, stream: Any) -> FrontError:
        # kinesalite's text, as AWS writes it.
        return _refuse("ResourceInUseException", f"Stream {stream.stream_name} under account {self.account} not ACTIVE, instead in state {stream.status}")

    def _over_shard_limit(self, additional: int) -> FrontError | None:
        current = self._account_open_shards()
        if additional > 0 and current + additional > self.shard_limit:
            # AWS's text (as kinesalite reproduces it for CreateStream).
            return _refuse(
                "LimitExceededException",
                f"This request would exceed the shard limit for the account {self.account} in {self.region}. "
                f"Current shard count for the account: {current}. Limit: {self.shard_limit}. "
                f"Number of additional shards that would have resulted from this request: {additional}.",
            )
        return None

    # -- Kinesis UpdateShardCount ----------------------------------------------------------------

    def scaling_calls(self, arn: str) -> list[float]:
        """The successful UpdateShardCount calls of the rolling 24 h window (older ones are dropped)."""
        now = self.clock()
        with self._kinesis_lock:
            calls = [t for t in self._scaling.get(arn, []) if t > now - DAY]
            if calls:
                self._scaling[arn] = calls
            else:
                self._scaling.pop(arn, None)
            return sorted(calls)

    def seed_scaling(self, arn: str, calls: list[float]) -> None:
        with self._kinesis_lock:
            self._scaling[arn] = sorted(calls)

    def _update_shard_count(self, call: S.Call, forward: Forward) -> Reply:
        p = call.params or {}
        target = _int(p.get("TargetShardCount"), "targetShardCount")
        if target < 1:
            raise _constraint("targetShardCount", target, "Member must have value greater than or equal to 1")
        scaling = p.get("ScalingType")
        if scaling is None:
            raise _null("scalingType")
        if scaling != "UNIFORM_SCALING":  # the API model's enum
            raise _constraint("scalingType", scaling, "Member must satisfy enum value set: [UNIFORM_SCALING]")
        with self._kinesis_lock:
            stream = self._stream(call.needs[0].resource)
            if self._on_demand(stream):  # moto's text
                raise _refuse("ValidationException", f"Request is invalid. Stream {stream.stream_name} under account {self.account} is in On-Demand mode.")
            if stream.status != "ACTIVE":
                raise self._not_active(stream)
            if len(self.scaling_calls(stream.arn)) >= KINESIS_SCALING_CALLS_PER_DAY:  # composed text
                raise _refuse(
                    "LimitExceededException",
                    f"Rate exceeded for UpdateShardCount of stream {stream.stream_name} under account {self.account}: "
                    f"at most {KINESIS_SCALING_CALLS_PER_DAY} calls are allowed in a rolling 24-hour period.",
                )
            current = len(self._open(stream))
            counts = f"Current open shard count: {current}, Target shard count: {target}"
            if target > KINESIS_MAX_SHARDS_PER_STREAM or (current > KINESIS_MAX_SHARDS_PER_STREAM and target >= KINESIS_MAX_SHARDS_PER_STREAM):
                raise _refuse("LimitExceededException", f"Target shard count or number of open shards cannot be greater than {KINESIS_MAX_SHARDS_PER_STREAM}. {counts}")
            if target > 2 * current:
                raise _refuse("LimitExceededException", f"UpdateShardCount cannot scale up over double your current open shard count. {counts}")
            if 2 * target < current:
                raise _refuse("LimitExceededException", f"UpdateShardCount cannot scale down below half your current open shard count. {counts}")
            over = self._over_shard_limit(target - current)
            if over is not None:
                raise over
            status, headers, body = forward()
            if status != 200:  # moto refused: nothing changed, nothing counted
                return status, headers, body
            self._settle(stream, target)
            self._scaling.setdefault(stream.arn, []).append(self.clock())
        return _json_reply(call, {"StreamName": stream.stream_name, "CurrentShardCount": current,
                                  "TargetShardCount": target, "StreamARN": stream.arn})

    def _settle(self, stream: Any, target: int) -> None:
        """Makes moto's stream end with `target` open shards: splits the widest open shard or merges
        the narrowest adjacent pair until it does (moto's own scaling needs none for allowed targets)."""
        while True:
            shards = sorted(self._open(stream), key=lambda s: s.starting_hash)
            if len(shards) < target:
                widest = max(shards, key=lambda s: s.ending_hash - s.starting_hash)
                stream.split_shard(widest.shard_id, str((widest.starting_hash + widest.ending_hash) // 2))
            elif len(shards) > target:
                pairs = [(b.ending_hash - a.starting_hash, a, b) for a, b in zip(shards, shards[1:]) if a.ending_hash + 1 == b.starting_hash]
                _, a, b = min(pairs, key=lambda x: x[0])
                stream.merge_shards(a.shard_id, b.shard_id)
            else:
                break
        stream.shard_count = target

    def _create_stream(self, call: S.Call, forward: Forward) -> Reply:
        p = call.params or {}
        on_demand = (p.get("StreamModeDetails") or {}).get("StreamMode") == "ON_DEMAND"
        warm = p.get("WarmThroughputMiBps")
        with self._kinesis_lock:
            if warm is not None:
                warm = self._check_warm(warm, on_demand)
            if not on_demand:
                shards = p.get("ShardCount")
                over = self._over_shard_limit(shards) if isinstance(shards, int) and not isinstance(shards, bool) else None
                if over is not None:
                    raise over
            status, headers, body = forward()
            if status == 200:
                arn = call.needs[0].resource
                self._scaling.pop(arn, None)
                self._warm.pop(arn, None)
                if warm is not None:
                    self._warm[arn] = warm
        return status, headers, body

    def _update_stream_mode(self, call: S.Call, forward: Forward) -> Reply:
        p = call.params or {}
        on_demand = (p.get("StreamModeDetails") or {}).get("StreamMode") == "ON_DEMAND"
        warm = p.get("WarmThroughputMiBps")
        with self._kinesis_lock:
            if warm is not None:  # "only valid when the stream mode is being updated to on-demand"
                warm = self._check_warm(warm, on_demand)
            status, headers, body = forward()
            if status == 200:
                arn = call.needs[0].resource
                if not on_demand:
                    self._warm.pop(arn, None)
                elif warm is not None:
                    self._warm[arn] = warm
        return status, headers, body

    def _delete_stream(self, call: S.Call, forward: Forward) -> Reply:
        status, headers, body = forward()
        if status == 200:
            with self._kinesis_lock:
                self._scaling.pop(call.needs[0].resource, None)
                self._warm.pop(call.needs[0].resource, None)
        return status, headers, body

    def _describe_limits(self, call: S.Call, forward: Forward) -> Reply:
        status, headers, body = forward()
        if status != 200:
            return status, headers, body
        doc = json.loads(body)
        streams = list(self._kinesis().streams.values())
        doc["ShardLimit"] = self.shard_limit
        doc["OpenShardCount"] = self._account_open_shards()
        doc["OnDemandStreamCount"] = sum(1 for s in streams if self._on_demand(s))
        return _rebody(headers, doc)

    # -- Kinesis On-demand Advantage ----------------------------------------------------------------

    def _commitment_now(self) -> dict[str, Any]:
        """The account's commitment, a scheduled disable carried out once its time has come."""
        c = self._commitment
        if c["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END" and self.clock() >= c["EarliestAllowedEndAt"]:
            c = self._commitment = {"Status": "DISABLED", "StartedAt": c["StartedAt"], "EndedAt": c["EarliestAllowedEndAt"]}
            self._warm.clear()
        return dict(c)

    def _committed(self) -> bool:
        return self._commitment_now()["Status"] != "DISABLED"

    def _check_warm(self, value: Any, on_demand: bool) -> int:
        warm = _int(value, "warmThroughputMiBps")
        if warm < 0:
            raise _constraint("warmThroughputMiBps", warm, "Member must have value greater than or equal to 0")
        if not self._committed():  # composed text
            raise _refuse(
                "InvalidArgumentException",
                f"Warm throughput requires MinimumThroughputBillingCommitment to be enabled for account {self.account} (UpdateAccountSettings).",
            )
        if not on_demand:  # composed text
            raise _refuse("ValidationException", "Warm throughput is only supported for data streams with the on-demand capacity mode.")
        limit = warm_throughput_max(self.region)
        if warm > limit:  # composed text
            raise _refuse("LimitExceededException", f"WarmThroughputMiBps {warm} exceeds the maximum warm throughput of {limit} MiBps for an on-demand stream.")
        return warm

    def _update_account_settings(self, call: S.Call, forward: Forward) -> Reply:
        p = call.params or {}
        spec = p.get(_COMMITMENT)
        if not isinstance(spec, dict):
            raise _null("minimumThroughputBillingCommitment")
        wanted = spec.get("Status")
        if wanted is None:
            raise _null("minimumThroughputBillingCommitment.status")
        if wanted not in ("ENABLED", "DISABLED"):
            raise _constraint("minimumThroughputBillingCommitment.status", wanted, "Member must satisfy enum value set: [ENABLED, DISABLED]")
        now = self.clock()
        with self._kinesis_lock:
            c = self._commitment_now()
            if wanted == "ENABLED":
                if c["Status"] == "DISABLED":
                    c = {"Status": "ENABLED", "StartedAt": now, "EarliestAllowedEndAt": now + DAY}
                else:  # enabling again cancels a pending disable
                    c["Status"] = "ENABLED"
            elif c["Status"] != "DISABLED":
                if now >= c["EarliestAllowedEndAt"]:
                    c = {"Status": "DISABLED", "StartedAt": c["StartedAt"], "EndedAt": now}
                    self._warm.clear()
                else:  # the 24 h minimum is honoured: disabled at the earliest allowed end
                    c["Status"] = "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
            self._commitment = c
            return _json_reply(call, {_COMMITMENT: dict(c)})

    def _describe_account_settings(self, call: S.Call, forward: Forward) -> Reply:
        with self._kinesis_lock:
            return _json_reply(call, {_COMMITMENT: self._commitment_now()})

    def _update_stream_warm_throughput(self, call: S.Call, forward: Forward) -> Reply:
        p = call.params or {}
        with self._kinesis_lock:
            value = p.get("WarmThroughputMiBps")
            _int(value, "warmThroughputMiBps")
            stream = self._stream(call.needs[0].resource)
            warm = self._check_warm(value, self._on_demand(stream))
            if stream.status != "ACTIVE":
                raise self._not_active(stream)
            self._warm[stream.arn] = warm
        return _json_reply(call, {"StreamARN": stream.arn, "StreamName": stream.stream_name,
                                  "WarmThroughput": {"TargetMiBps": warm, "CurrentMiBps": warm}})

    def _describe_stream_summary(self, call: S.Call, forward: Forward) -> Reply:
        status, headers, body = forward()
        if status != 200:
            return status, headers, body
        doc = json.loads(body)
        summary = doc.get("StreamDescriptionSummary") or {}
        with self._kinesis_lock:
            warm = self._warm.get(summary.get("StreamARN", "")) if self._committed() else None
            stream = self._kinesis().streams.get(summary.get("StreamName", ""))
            if stream is not None:  # moto reports the last target, not the open shards
                summary["OpenShardCount"] = len(self._open(stream))
        if warm is not None and (summary.get("StreamModeDetails") or {}).get("StreamMode") == "ON_DEMAND":
            summary["WarmThroughput"] = {"TargetMiBps": warm, "CurrentMiBps": warm}
        return _rebody(headers, doc)

    # -- Kinesis metrics ---------------------------------------------------------------------------

    def _put_records(self, call: S.Call, forward: Forward) -> Reply:
        status, headers, body = forward()
        if status != 200:
            return status, headers, body
        p = call.params or {}
        if call.operation == "PutRecord":
            sizes = [S.kinesis_record_size(p)]
        else:
            records = [r for r in (p.get("Records") or []) if r.__class__ is dict]
            sizes = [S.kinesis_record_size(r) for r in records]
            if b'"FailedRecordCount": 0' not in body and b'"FailedRecordCount":0' not in body:
                results = json.loads(body).get("Records") or []
                sizes = [n for n, r in zip(sizes, results) if not r.get("ErrorCode")]
        if sizes:
            self.record_put(call.needs[0].resource.rsplit("/", 1)[-1], sum(sizes), len(sizes))
        return status, headers, body

    def record_put(self, stream_name: str, nbytes: int, nrecords: int) -> None:
        minute = int(self.clock() // 60) * 60
        with self._metrics_lock:
            if minute != self._minute:
                self._flush(before=minute)
                self._minute = minute
            agg = self._pending.get((stream_name, minute))
            if agg is None:
                self._pending[(stream_name, minute)] = [1, nbytes, nbytes, nbytes, nrecords, nrecords, nrecords]
            else:
                agg[0] += 1
                agg[1] += nbytes
                agg[2] = min(agg[2], nbytes)
                agg[3] = max(agg[3], nbytes)
                agg[4] += nrecords
                agg[5] = min(agg[5], nrecords)
                agg[6] = max(agg[6], nrecords)

    def flush_metrics(self) -> None:
        with self._metrics_lock:
            self._flush(before=None)

    def _flush(self, before: int | None) -> None:  # under _metrics_lock
        keys = [k for k in self._pending if before is None or k[1] < before]
        if not keys:
            return
        data = []
        for key in keys:
            stream, minute = key
            n, bsum, bmin, bmax, rsum, rmin, rmax = self._pending.pop(key)
            common = {"Dimensions": [{"Name": "StreamName", "Value": stream}], "Timestamp": _utc(minute)}
            data.append({"MetricName": "IncomingBytes", "Unit": "Bytes", **common,
                         "StatisticValues": {"SampleCount": n, "Sum": bsum, "Minimum": bmin, "Maximum": bmax}})
            data.append({"MetricName": "IncomingRecords", "Unit": "Count", **common,
                         "StatisticValues": {"SampleCount": n, "Sum": rsum, "Minimum": rmin, "Maximum": rmax}})
        self._cloudwatch().put_metric_data("AWS/Kinesis", data)

    def _metrics_read(self, call: S.Call, forward: Forward) -> Reply:
        self.flush_metrics()
        return forward()

    def inject_metrics(self, namespace: Any, metric_data: Any) -> int:
        """Test-only: metric data straight into moto's CloudWatch (no AWS/ check), for the front's account and region."""
        if not isinstance(namespace, str) or not namespace:
            raise ValueError("namespace must be a non-empty string")
        if not isinstance(metric_data, list) or not metric_data:
            raise ValueError("metricData must be a non-empty list")
        data = []
        for i, m in enumerate(metric_data):
            if not isinstance(m, dict):
                raise ValueError(f"metricData[{i}] must be an object")
            name, value, ts = m.get("metricName"), m.get("value"), m.get("timestamp")
            dims = m.get("dimensions") or {}
            if not isinstance(name, str) or not name:
                raise ValueError(f"metricData[{i}].metricName must be a non-empty string")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"metricData[{i}].value must be a number")
            if isinstance(ts, bool) or not isinstance(ts, (int, float)):
                raise ValueError(f"metricData[{i}].timestamp must be epoch seconds")
            if not isinstance(dims, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in dims.items()):
                raise ValueError(f"metricData[{i}].dimensions must map names to string values")
            datum = {"MetricName": name, "Value": float(value), "Timestamp": _utc(float(ts)),
                     "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()]}
            if m.get("unit") is not None:
                datum["Unit"] = str(m["unit"])
            data.append(datum)
        self._cloudwatch().put_metric_data(namespace, data)
        return len(data)

    # -- DynamoDB warm throughput ------------------------------------------------------------------

    def _ddb_table(self, call: S.Call) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        name = call.needs[0].resource.split(":table/", 1)[-1]
        return dynamodb_backends[self.account][self.region].tables.get(name)

    def _warm_limits(self, requested: Any, current: dict | None, what: str) -> dict[str, int]:
        """The new warm throughput of a table or index (`what`: "table" or "index NAME"), refused as AWS refuses it."""
        if not isinstance(requested, dict) or not any(k in requested for k, _ in _DDB_WARM_KEYS):  # composed text
            raise _refuse("ValidationException", f"One or more parameter values were invalid: ReadUnitsPerSecond or WriteUnitsPerSecond must be specified for WarmThroughput for {what}")
        new = {}
        for key, quota in _DDB_WARM_KEYS:
            old = (current or {}).get(key, DDB_WARM_DEFAULT[key])
            value = requested.get(key)
            if value is None:
                new[key] = old
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise _refuse("SerializationException", f"Unexpected value type for '{key}': expected an integer, got {json.dumps(value)}")
            if current is not None and value < old:
                raise _refuse("ValidationException", f"One or more parameter values were invalid: Requested {key} for WarmThroughput for {what} is lower than current WarmThroughput, decreasing WarmThroughput is not supported")
            if value > DDB_TABLE_MAX_UNITS:
                raise _refuse("LimitExceededException", f"Subscriber limit exceeded: Requested {key} for WarmThroughput for {what} exceeds {quota} of the account in region {self.region}")
            new[key] = value
        return new

    def _ddb_update_table(self, call: S.Call, forward: Forward) -> Reply:
        p = call.params or {}
        table_warm = p.get("WarmThroughput")
        gsi_updates = [u["Update"] for u in (p.get("GlobalSecondaryIndexUpdates") or [])
                       if isinstance(u, dict) and isinstance(u.get("Update"), dict) and "WarmThroughput" in u["Update"]]
        if table_warm is None and not gsi_updates:
            return forward()
        with self._ddb_lock:
            table = self._ddb_table(call)
            if table is None:
                return forward()  # moto's ResourceNotFoundException
            new_table = self._warm_limits(table_warm, table.warm_throughput, "table") if table_warm is not None else None
            new_gsis: dict[str, dict] = {}
            gsis = {g.name: g for g in table.global_indexes}
            for u in gsi_updates:
                name = u.get("IndexName")
                if name not in gsis:
                    if name in {i.name for i in table.indexes}:
                        raise _refuse("ValidationException", f"Cannot update an index that is not a GlobalSecondaryIndex: {name}")
                    raise _refuse("ResourceNotFoundException", f"Requested resource not found: Index {name} for table {table.name}")
                new_gsis[name] = self._warm_limits(u["WarmThroughput"], gsis[name].warm_throughput, f"index {name}")
            old = {name: dict(gsis[name].warm_throughput) for name in new_gsis}
            old_table = dict(table.warm_throughput)
            status, headers, body = forward()
            if status != 200:
                return status, headers, body
            if new_table is not None:
                table.warm_throughput = {**new_table, "Status": "ACTIVE"}
            for g in table.global_indexes:
                if g.name in new_gsis:
                    g.warm_throughput = {**new_gsis[g.name], "Status": "ACTIVE"}
        doc = json.loads(body)
        desc = doc.get("TableDescription") or {}

        def shown(new: dict, before: dict) -> dict:
            changed = any(new[k] != before.get(k) for k, _ in _DDB_WARM_KEYS)
            return {**new, "Status": "UPDATING" if changed else "ACTIVE"}

        if new_table is not None:
            desc["WarmThroughput"] = shown(new_table, old_table)
        for g in desc.get("GlobalSecondaryIndexes") or []:
            if g.get("IndexName") in new_gsis:
                g["WarmThroughput"] = shown(new_gsis[g["IndexName"]], old[g["IndexName"]])
        return _rebody(headers, doc)

    def _ddb_create_table(self, call: S.Call, forward: Forward) -> Reply:
        p = call.params or {}
        specs = [("table", p.get("WarmThroughput"))] + [
            (f"index {g.get('IndexName')}", g.get("WarmThroughput")) for g in (p.get("GlobalSecondaryIndexes") or []) if isinstance(g, dict)
        ]
        if all(w is None for _, w in specs):
            return forward()
        for what, w in specs:
            if w is not None:
                self._warm_limits(w, None, what)  # the maximum; moto checks the minimums
        status, headers, body = forward()
        if status != 200:
            return status, headers, body
        table = self._ddb_table(call)
        if table is None:
            return status, headers, body
        # A field left out keeps its default (moto stored the partial structure).
        for holder in [table] + list(table.global_indexes):
            w = holder.warm_throughput
            tp = getattr(holder, "throughput", None) or {}
            for key, cap in (("ReadUnitsPerSecond", "ReadCapacityUnits"), ("WriteUnitsPerSecond", "WriteCapacityUnits")):
                if key not in w:
                    w[key] = tp.get(cap) or DDB_WARM_DEFAULT[key]
        doc = json.loads(body)
        desc = doc.get("TableDescription") or {}
        desc["WarmThroughput"] = dict(table.warm_throughput)
        by_name = {g.name: g for g in table.global_indexes}
        for g in desc.get("GlobalSecondaryIndexes") or []:
            if g.get("IndexName") in by_name:
                g["WarmThroughput"] = dict(by_name[g["IndexName"]].warm_throughput)
        return _rebody(headers, doc)


# ------------------------------------------------------------------------------------------
# Fixes of moto's CloudWatch statistics, and moto's per-call Kinesis metrics turned off
# ------------------------------------------------------------------------------------------

_STATS = {"Sum", "Average", "Minimum", "Maximum", "SampleCount"}


def _naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def round_start(start: dt.datetime, period: int, now: dt.datetime) -> dt.datetime:
    """CloudWatch's rounding of StartTime (GetMetricData and GetMetricStatistics API reference)."""
    start = start.replace(microsecond=0)
    if period in (5, 10, 20, 30):
        return start - dt.timedelta(seconds=start.second % period)
    if period < 60:
        return start
    age = now - start
    if age < dt.timedelta(days=15):
        return start.replace(second=0)
    if age < dt.timedelta(days=63):
        return start.replace(second=0, minute=start.minute - start.minute % 5)
    return start.replace(second=0, minute=0)


def _matching(md: Any, namespace: str, name: str, dims: set, unit: str | None) -> bool:
    return (md.namespace == namespace and md.name == name and {(d.name, d.value) for d in md.dimensions} == dims
            and (unit is None or md.unit == unit))


def _buckets(data: list, start: dt.datetime, end: dt.datetime, period: int) -> dict[int, list]:
    out: dict[int, list] = {}
    step = dt.timedelta(seconds=period)
    for md in data:
        if start <= md.timestamp < end:
            out.setdefault((md.timestamp - start) // step, []).append(md)
    return out


def install_moto_fixes() -> None:
    """Replaces moto's GetMetricData and GetMetricStatistics arithmetic (see the module docstring)
    and turns off moto's per-call Kinesis metrics (the front publishes them per minute). Idempotent."""
    from moto.cloudwatch import models as cw
    from moto.kinesis import models as kinesis

    kinesis.KinesisBackend._send_stream_metrics = lambda self, *args, **kwargs: None
    if getattr(cw.CloudWatchBackend.get_metric_data, "_front_fixed", False):
        return
    original_data = cw.CloudWatchBackend.get_metric_data

    def get_metric_data(self: Any, queries: list, start_time: dt.datetime, end_time: dt.datetime,
                        scan_by: str = "TimestampAscending") -> list:
        now = _utc(time.time())
        start_time, end_time = _naive(start_time), _naive(end_time)
        simple = all("MetricStat" in q and q["MetricStat"].get("Stat") in _STATS for q in queries)
        if not simple or start_time >= end_time:
            periods = [int(q["MetricStat"]["Period"]) for q in queries if "MetricStat" in q] or [60]
            return original_data(self, queries, round_start(start_time, min(periods), now), end_time, scan_by)
        everything = self.get_all_metrics()
        results = []
        for q in queries:
            ms = q["MetricStat"]
            metric = ms["Metric"]
            period, stat = int(ms["Period"]), ms["Stat"]
            start = round_start(start_time, period, now)
            dims = {(d["Name"], d["Value"]) for d in metric.get("Dimensions") or []}
            data = [md for md in everything if _matching(md, metric.get("Namespace"), metric.get("MetricName"), dims, ms.get("Unit"))]
            values, stamps = [], []
            for index, mds in sorted(_buckets(data, start, end_time, period).items()):
                stats = cw.Statistics([stat], start + dt.timedelta(seconds=index * period))
                stats.metric_data = mds
                values.append(stats.get_statistics_for_type(stat))
                stamps.append(stats.timestamp)
            if scan_by == "TimestampDescending":
                values.reverse()
                stamps.reverse()
            if q.get("ReturnData", True):
                results.append({"id": q["Id"], "label": q.get("Label") or f"{metric.get('MetricName')} {stat}",
                                "values": values, "timestamps": stamps, "status_code": "Complete"})
        return results

    def get_metric_statistics(self: Any, namespace: str, metric_name: str, start_time: dt.datetime, end_time: dt.datetime,
                              period: int, stats: list, dimensions: list, unit: str | None = None) -> list:
        start_time, end_time = _naive(start_time), _naive(end_time)
        if start_time.replace(microsecond=0) >= end_time.replace(microsecond=0):
            raise cw.InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
        start = round_start(start_time, period, _utc(time.time()))
        dims = {(d["Name"], d["Value"]) for d in dimensions or []}
        data = [md for md in self.get_all_metrics() if _matching(md, namespace, metric_name, dims, unit)]
        out = []
        for index, mds in sorted(_buckets(data, start, end_time, period).items()):
            s = cw.Statistics(stats, start + dt.timedelta(seconds=index * period))
            s.metric_data = mds
            s.unit = mds[-1].unit
            out.append(s)
        return out

    get_metric_data._front_fixed = True  # type: ignore[attr-defined]
    cw.CloudWatchBackend.get_metric_data = get_metric_data
    cw.CloudWatchBackend.get_metric_statistics = get_metric_statistics
