#!/usr/bin/env python3
"""Generates the sample Kinesis events in events/ (python3 standard library only).

    python3 events/generate.py          # rewrite events/<function>/*.json
    python3 events/generate.py --check  # exit 1 if the committed files differ

Each function gets valid, duplicate, out-of-order, malformed and mixed events in the real Lambda
Kinesis shape, plus expected.json: per record what the function must do with it, and the final
state it must leave behind when the fixture is processed in order against an empty store.

Outcomes per record:
  mission-ingest:  write | duplicate (same rev already stored) | stale (a higher rev is stored)
                   | reject (with rejectKind)
  shadow-indexer:  index | conflict (OpenSearch 409: an equal or newer external version is stored)
                   | reject (with rejectKind)

The storage keys and external versions here are the ones fleet-core computes; the fleet-core test
crates/fleet-core/tests/fixtures.rs checks that they agree.
"""

import base64
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/robofleet-fn"
STREAMS = {
    "mission-ingest": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/robofleet-missions",
    "shadow-indexer": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/robofleet-shadows",
}
MAX_PAYLOAD_BYTES = 128 * 1024
SHADOW_EPOCH_SECONDS = 48 * 3600
SHADOW_VERSION_BITS = 48

# 2026-11-23T15:00:00Z, the morning-after rush of the design document's example.
T0 = int(dt.datetime(2026, 11, 23, 15, 0, 0, tzinfo=dt.timezone.utc).timestamp())
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def rfc3339(seconds):
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ulid(ms, seed):
    """A deterministic ULID: 48-bit time in ms, 80 bits from a hash of the seed."""
    rand = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10], "big")
    n = (ms << 80) | rand
    return "".join(CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(26)))


class Batch:
    """One Lambda Kinesis event under construction, with its expectations."""

    def __init__(self, function, seq_base):
        self.function = function
        self.records = []
        self.expected = []
        self.seq = seq_base
        self.arrival = T0 + 3600.0

    def add(self, partition_key, data_b64, outcome, reject_kind=None, note="", **extra):
        self.seq += 1_000_003
        seq = str(self.seq)
        self.arrival += 0.25
        self.records.append({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": partition_key,
                "sequenceNumber": seq,
                "data": data_b64,
                "approximateArrivalTimestamp": round(self.arrival, 3),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"shardId-000000000000:{seq}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": ROLE,
            "awsRegion": REGION,
            "eventSourceARN": STREAMS[self.function],
        })
        exp = {"sequenceNumber": seq, "partitionKey": partition_key, "outcome": outcome}
        if reject_kind:
            exp["rejectKind"] = reject_kind
        exp.update(extra)
        if note:
            exp["note"] = note
        self.expected.append(exp)
        return seq

    def add_json(self, partition_key, payload, outcome, reject_kind=None, note="", **extra):
        data = json.dumps(payload, separators=(",", ":")).encode()
        return self.add(partition_key, b64(data), outcome, reject_kind, note, **extra)

    def event(self):
        return {"Records": self.records}


def b64(data):
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------------------------------------
# mission-ingest
# ---------------------------------------------------------------------------------------------

class Mission:
    def __init__(self, robot, start_offset_s, seed):
        self.robot = robot
        self.started = T0 + start_offset_s
        self.mission_id = ulid(self.started * 1000, seed)

    def report(self, rev, status, *, ended_after=None, area=0.0, duration=0, battery=(100, 100),
               errors=()):
        r = {
            "schema": 1,
            "robotId": self.robot,
            "missionId": self.mission_id,
            "rev": rev,
            "status": status,
            "startedAt": rfc3339(self.started),
        }
        if ended_after is not None:
            r["endedAt"] = rfc3339(self.started + ended_after)
        r.update({
            "areaM2": area,
            "durationS": duration,
            "battery": {"start": battery[0], "end": battery[1]},
            "errors": [{"code": c, "at": rfc3339(self.started + at)} for c, at in errors],
        })
        return r

    def keys(self):
        return {"pk": f"ROBOT#{self.robot}", "sk": f"MISSION#{rfc3339(self.started)}#{self.mission_id}"}


class MissionBatch(Batch):
    def __init__(self, seq_base):
        super().__init__("mission-ingest", seq_base)
        self.stored = {}

    def send(self, mission, report, note="", partition_key=None):
        key = mission.keys()
        have = self.stored.get((key["pk"], key["sk"]))
        if have is None or have["rev"] < report["rev"]:
            outcome = "write"
            self.stored[(key["pk"], key["sk"])] = {**key, "rev": report["rev"], "status": report["status"]}
        elif have["rev"] == report["rev"]:
            outcome = "duplicate"
        else:
            outcome = "stale"
        return self.add_json(partition_key or mission.robot, report, outcome, note=note,
                             rev=report["rev"], **key)

    def final(self):
        return sorted(self.stored.values(), key=lambda i: (i["pk"], i["sk"]))


A = Mission("rb-000123", 4, "mission-a")
B = Mission("rb-000124", 95, "mission-b")
C = Mission("rb-000125", 610, "mission-c")
D = Mission("rb-000126", 1200, "mission-d")


def a_rev(rev):
    if rev == 1:
        return A.report(1, "running", area=3.25, duration=180, battery=(100, 96))
    if rev == 2:
        return A.report(2, "running", area=21.0, duration=1230, battery=(100, 70),
                        errors=[("stuck", 960)])
    return A.report(3, "completed", ended_after=2466, area=42.5, duration=2466, battery=(100, 37),
                    errors=[("stuck", 960)])


def b_rev(rev):
    if rev == 1:
        return B.report(1, "running", area=5.0, duration=300, battery=(88, 80))
    return B.report(2, "battery_low", ended_after=1900, area=30.75, duration=1850, battery=(88, 9))


def c_report():
    return C.report(1, "completed", ended_after=1500, area=18.0, duration=1480, battery=(95, 61))


def d_report():
    return D.report(1, "error", area=2.5, duration=140, battery=(60, 58),
                    errors=[("brush_jam", 120), ("wheel_stall", 138)])


def too_large_mission():
    report = c_report()
    # A robot that dumps its map into the report: valid JSON, just over the 128 KiB limit.
    report["map"] = ""
    overhead = len(json.dumps(report, separators=(",", ":")))
    report["map"] = "A" * (MAX_PAYLOAD_BYTES + 1 - overhead)
    data = json.dumps(report, separators=(",", ":")).encode()
    assert len(data) == MAX_PAYLOAD_BYTES + 1, len(data)
    return data


def add_mission_malformed(b):
    """One record per reject kind the decoder produces (and two shapes of bad JSON)."""
    b.add("rb-000123", "eyJzY2hlbWEiOjEsI!!not-base64", "reject", "bad_base64",
          "data is not base64")
    b.add("rb-000123", b64(b'{"schema":1,"robotId":"rb-000123",'), "reject", "bad_json",
          "truncated JSON")
    b.add("rb-000124", b64(b"\xff\xfe\x00garbage"), "reject", "bad_json", "not UTF-8")
    bad = c_report()
    bad["battery"]["end"] = 120
    b.add_json("rb-000125", bad, "reject", "schema_violation", "battery.end over 100")
    missing = b_rev(1)
    del missing["missionId"]
    b.add_json("rb-000124", missing, "reject", "missing_field", "no missionId")
    b.add("rb-000125", b64(too_large_mission()), "reject", "too_large",
          "131073 bytes, one over the limit")
    b.add_json("rb-000123", d_report() | {"robotId": "rb-000999"}, "reject", "robot_mismatch",
               "payload robotId rb-000999 published under rb-000123")


def mission_fixtures():
    out = {}

    b = MissionBatch(49_659_873_001_000_000_000_000_000_000_000_000_000_000_000_000)
    b.send(A, a_rev(1), "first report of mission A")
    b.send(B, b_rev(1))
    b.send(C, c_report())
    b.send(A, a_rev(2), "richer revision of mission A")
    b.send(D, d_report(), "terminal status without endedAt")
    b.send(A, a_rev(3), "final revision of mission A")
    out["valid"] = b

    b = MissionBatch(49_659_873_002_000_000_000_000_000_000_000_000_000_000_000_000)
    b.send(A, a_rev(1))
    b.send(A, a_rev(1), "QoS 0 redelivery of the same report")
    b.send(B, b_rev(1))
    b.send(A, a_rev(2))
    b.send(B, b_rev(1), "replay of an already stored report")
    b.send(A, a_rev(2), "duplicate of the newest revision")
    out["duplicate"] = b

    b = MissionBatch(49_659_873_003_000_000_000_000_000_000_000_000_000_000_000_000)
    b.send(A, a_rev(3), "rev 3 overtakes the earlier revisions")
    b.send(A, a_rev(1), "late rev 1 must not overwrite rev 3")
    b.send(B, b_rev(2))
    b.send(A, a_rev(2), "late rev 2 must not overwrite rev 3")
    b.send(B, b_rev(1), "late rev 1 must not overwrite rev 2")
    out["out-of-order"] = b

    b = MissionBatch(49_659_873_004_000_000_000_000_000_000_000_000_000_000_000_000)
    add_mission_malformed(b)
    out["malformed"] = b

    b = MissionBatch(49_659_873_005_000_000_000_000_000_000_000_000_000_000_000_000)
    b.send(A, a_rev(1))
    b.add("rb-000123", b64(b"{not json"), "reject", "bad_json")
    b.send(B, b_rev(2))
    b.send(A, a_rev(1), "duplicate")
    b.add_json("rb-000125", c_report() | {"status": "finished"}, "reject", "schema_violation",
               "unknown status")
    b.send(A, a_rev(3))
    b.send(B, b_rev(1), "stale")
    b.add_json("rb-000124", c_report(), "reject", "robot_mismatch",
               "rb-000125's report under rb-000124")
    b.send(C, c_report())
    b.send(A, a_rev(2), "stale")
    out["mixed"] = b
    return out


# ---------------------------------------------------------------------------------------------
# shadow-indexer
# ---------------------------------------------------------------------------------------------

def shadow_external_version(timestamp, version):
    return ((timestamp // SHADOW_EPOCH_SECONDS) << SHADOW_VERSION_BITS) | min(
        version, (1 << SHADOW_VERSION_BITS) - 1)


def presence_external_version(timestamp_ms, event_type):
    return timestamp_ms * 2 + (1 if event_type == "connected" else 0)


def shadow_docs(thing, version, timestamp, reported, desired=None, name=None, first=False):
    current = {
        "state": {"reported": reported} | ({"desired": desired} if desired else {}),
        "metadata": {"reported": {k: {"timestamp": timestamp} for k in reported}},
        "version": version,
    }
    doc = {}
    if not first:
        doc["previous"] = {
            "state": {"reported": {k: v for k, v in reported.items() if k != "battery"}},
            "metadata": {},
            "version": max(version - 1, 0),
        }
    doc.update({"current": current, "timestamp": timestamp,
                "clientToken": f"{thing}-{version:04d}", "thingName": thing})
    if name:
        doc["shadowName"] = name
    return doc


def presence(thing, event_type, ts_ms, version_number, reason=None):
    e = {
        "clientId": thing,
        "timestamp": ts_ms,
        "eventType": event_type,
        "clientInitiatedDisconnect": False,
        "sessionIdentifier": hashlib.sha256(f"{thing}-{version_number}".encode()).hexdigest()[:32],
        "principalIdentifier": hashlib.sha256(thing.encode()).hexdigest(),
        "versionNumber": version_number,
    }
    if event_type == "connected":
        e["ipAddress"] = "192.0.2.10"
        del e["clientInitiatedDisconnect"]
    else:
        e["disconnectReason"] = reason or "CONNECTION_LOST"
    return e


class ShadowBatch(Batch):
    def __init__(self, seq_base):
        super().__init__("shadow-indexer", seq_base)
        self.stored = {}

    def send(self, payload, note="", partition_key=None):
        if "eventType" in payload:
            thing = payload["clientId"]
            doc_id = f"{thing}#presence"
            version = presence_external_version(payload["timestamp"], payload["eventType"])
        else:
            thing = payload["thingName"]
            doc_id = f"{thing}#{payload['shadowName']}" if payload.get("shadowName") else thing
            version = shadow_external_version(payload["timestamp"], payload["current"]["version"])
        have = self.stored.get(doc_id)
        if have is None or have < version:
            outcome = "index"
            self.stored[doc_id] = version
        else:
            outcome = "conflict"
        return self.add_json(partition_key or thing, payload, outcome, note=note, docId=doc_id,
                             externalVersion=version)

    def final(self):
        return [{"docId": k, "externalVersion": v} for k, v in sorted(self.stored.items())]


REPORTED = {"battery": 79, "status": "docked", "firmware": "4.2.1"}
TS = T0 + 120
MS = TS * 1000 + 123


def add_shadow_malformed(b):
    b.add("rb-000123", "%%%not-base64%%%", "reject", "bad_base64", "data is not base64")
    b.add("rb-000123", b64(b'{"current":{"state":'), "reject", "bad_json", "truncated JSON")
    b.add_json("rb-000123", shadow_docs("rb-000123", 5, TS, REPORTED) | {"timestamp": -1},
               "reject", "schema_violation", "negative timestamp")
    b.add_json("rb-000124", presence("rb-000124", "subscribed", MS, 7), "reject",
               "schema_violation", "lifecycle event other than connected/disconnected")
    no_thing = shadow_docs("rb-000123", 6, TS, REPORTED)
    del no_thing["thingName"]
    b.add_json("rb-000123", no_thing, "reject", "missing_field",
               "documents without the thingName the rule adds")
    big = shadow_docs("rb-000125", 9, TS, REPORTED | {"map": ""})
    overhead = len(json.dumps(big, separators=(",", ":")))
    big["current"]["state"]["reported"]["map"] = "B" * (MAX_PAYLOAD_BYTES + 1 - overhead)
    data = json.dumps(big, separators=(",", ":")).encode()
    assert len(data) == MAX_PAYLOAD_BYTES + 1, len(data)
    b.add("rb-000125", b64(data), "reject", "too_large", "131073 bytes, one over the limit")
    b.add_json("rb-000123", shadow_docs("rb-000124", 3, TS, REPORTED), "reject",
               "robot_mismatch", "rb-000124's shadow under partition key rb-000123")


def shadow_fixtures():
    out = {}

    b = ShadowBatch(49_659_874_001_000_000_000_000_000_000_000_000_000_000_000_000)
    b.send(shadow_docs("rb-000123", 17, TS, REPORTED, desired={"mode": "eco"}), "classic shadow")
    b.send(shadow_docs("rb-000123", 0, TS + 5,
                       {"weekdays": ["mon", "thu"], "at": "09:30"}, name="schedule", first=True),
           "named shadow, first update (no previous)")
    b.send(presence("rb-000124", "connected", MS, 41), "presence")
    b.send(shadow_docs("rb-000124", 1, TS + 7, REPORTED | {"battery": 55}))
    b.send(presence("rb-000125", "disconnected", MS + 2000, 12, "MQTT_KEEP_ALIVE_TIMEOUT"))
    b.send(shadow_docs("rb-000123", 18, TS + 60, REPORTED | {"battery": 78}), "next version")
    out["valid"] = b

    b = ShadowBatch(49_659_874_002_000_000_000_000_000_000_000_000_000_000_000_000)
    b.send(shadow_docs("rb-000123", 17, TS, REPORTED))
    b.send(shadow_docs("rb-000123", 17, TS, REPORTED), "redelivered documents message")
    b.send(presence("rb-000124", "connected", MS, 41))
    b.send(presence("rb-000124", "connected", MS, 41), "redelivered presence event")
    b.send(shadow_docs("rb-000123", 3, TS + 1, {"at": "10:00"}, name="schedule"))
    b.send(shadow_docs("rb-000123", 3, TS + 1, {"at": "10:00"}, name="schedule"),
           "redelivered named shadow")
    out["duplicate"] = b

    b = ShadowBatch(49_659_874_003_000_000_000_000_000_000_000_000_000_000_000_000)
    b.send(shadow_docs("rb-000123", 18, TS + 60, REPORTED | {"battery": 78}))
    b.send(shadow_docs("rb-000123", 17, TS, REPORTED), "older version arrives late")
    b.send(presence("rb-000124", "disconnected", MS + 60_000, 41))
    b.send(presence("rb-000124", "connected", MS, 41), "older connect arrives late")
    b.send(presence("rb-000125", "disconnected", MS, 11, "DUPLICATE_CLIENTID"))
    b.send(presence("rb-000125", "connected", MS, 12),
           "reconnect in the same millisecond: connected wins the tie")
    recreated = TS + 3 * 86_400
    b.send(shadow_docs("rb-000126", 0, recreated, REPORTED, first=True),
           "shadow deleted and re-created three days later: version restarts at 0")
    b.send(shadow_docs("rb-000126", 250, TS, REPORTED),
           "late update of the deleted shadow must not win over the new one")
    out["out-of-order"] = b

    b = ShadowBatch(49_659_874_004_000_000_000_000_000_000_000_000_000_000_000_000)
    add_shadow_malformed(b)
    out["malformed"] = b

    b = ShadowBatch(49_659_874_005_000_000_000_000_000_000_000_000_000_000_000_000)
    b.send(shadow_docs("rb-000123", 17, TS, REPORTED))
    b.add("rb-000123", b64(b"[]"), "reject", "schema_violation", "an array, not an object")
    b.send(presence("rb-000124", "connected", MS, 41))
    b.send(shadow_docs("rb-000123", 17, TS, REPORTED), "duplicate")
    b.add_json("rb-000125", {"state": {"reported": {}}}, "reject", "missing_field",
               "neither documents nor presence")
    b.send(shadow_docs("rb-000124", 2, TS + 9, REPORTED, name="schedule"))
    b.send(presence("rb-000124", "connected", MS - 5000, 40), "stale presence")
    b.add_json("rb-000124", presence("rb-000125", "connected", MS, 3), "reject",
               "robot_mismatch", "rb-000125's presence under rb-000124")
    b.send(shadow_docs("rb-000123", 19, TS + 90, REPORTED | {"battery": 77}))
    out["mixed"] = b
    return out


# ---------------------------------------------------------------------------------------------

def render(function, batches):
    files = {}
    expected = {"function": function, "streamArn": STREAMS[function], "fixtures": {}}
    for name, b in batches.items():
        files[f"{name}.json"] = json.dumps(b.event(), indent=2) + "\n"
        expected["fixtures"][f"{name}.json"] = {"records": b.expected, "final": b.final()}
    files["expected.json"] = json.dumps(expected, indent=2) + "\n"
    return files


def main():
    check = "--check" in sys.argv[1:]
    outputs = {
        "mission-ingest": render("mission-ingest", mission_fixtures()),
        "shadow-indexer": render("shadow-indexer", shadow_fixtures()),
    }
    stale = []
    for function, files in outputs.items():
        directory = ROOT / function
        directory.mkdir(exist_ok=True)
        for name, text in files.items():
            path = directory / name
            if check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path.relative_to(ROOT.parent)))
            else:
                path.write_text(text)
    if stale:
        print("out of date (run python3 events/generate.py):", *stale, sep="\n  ")
        return 1
    if not check:
        print("wrote", sum(len(f) for f in outputs.values()), "files under", ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
