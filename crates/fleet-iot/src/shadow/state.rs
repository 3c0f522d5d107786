//! The shadow state machine: documents per (thing, shadow name), IoT Core's merge, version and
//! delta rules, and the exact messages each operation produces. Pure: no I/O, the clock is an
//! argument.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

/// IoT Core's limit on a shadow's state document (desired + reported), 8 KiB.
pub const MAX_STATE_BYTES: usize = 8 * 1024;

/// Which shadow: a thing's classic shadow (`name: None`) or one of its named shadows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShadowKey {
    /// Thing name.
    pub thing: String,
    /// Shadow name; `None` is the classic shadow.
    pub name: Option<String>,
}

impl ShadowKey {
    /// The classic shadow of `thing`.
    pub fn classic(thing: impl Into<String>) -> Self {
        Self {
            thing: thing.into(),
            name: None,
        }
    }

    /// Named shadow `name` of `thing`.
    pub fn named(thing: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            thing: thing.into(),
            name: Some(name.into()),
        }
    }

    /// `$aws/things/<thing>/shadow[/name/<name>]`, the prefix of every topic of this shadow.
    pub fn topic_prefix(&self) -> String {
        match &self.name {
            None => format!("$aws/things/{}/shadow", self.thing),
            Some(n) => format!("$aws/things/{}/shadow/name/{n}", self.thing),
        }
    }

    fn display(&self) -> String {
        match &self.name {
            None => self.thing.clone(),
            Some(n) => format!("{}~{n}", self.thing),
        }
    }
}

/// A refused request: IoT Core's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP-style code: 400, 404, 409, 413.
    pub code: u16,
    /// IoT Core's message.
    pub message: String,
}

impl Rejection {
    fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The `/rejected` payload.
    pub fn payload(&self, timestamp: u64, client_token: Option<&str>) -> Value {
        let mut v = json!({"code": self.code, "message": self.message, "timestamp": timestamp});
        if let Some(t) = client_token {
            v["clientToken"] = Value::String(t.to_owned());
        }
        v
    }

    /// The AWS error type the HTTP face returns for this code.
    pub fn error_type(&self) -> &'static str {
        match self.code {
            404 => "ResourceNotFoundException",
            409 => "ConflictException",
            413 => "RequestEntityTooLargeException",
            _ => "InvalidRequestException",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Doc {
    desired: Option<Map<String, Value>>,
    reported: Option<Map<String, Value>>,
    meta_desired: Map<String, Value>,
    meta_reported: Map<String, Value>,
    version: u64,
    timestamp: u64,
}

impl Doc {
    fn state(&self) -> Value {
        let mut s = Map::new();
        if let Some(d) = &self.desired {
            s.insert("desired".into(), Value::Object(d.clone()));
        }
        if let Some(r) = &self.reported {
            s.insert("reported".into(), Value::Object(r.clone()));
        }
        Value::Object(s)
    }

    fn metadata(&self) -> Value {
        let mut m = Map::new();
        if self.desired.is_some() {
            m.insert("desired".into(), Value::Object(self.meta_desired.clone()));
        }
        if self.reported.is_some() {
            m.insert("reported".into(), Value::Object(self.meta_reported.clone()));
        }
        Value::Object(m)
    }

    /// `{state, metadata, version}` as in `/update/documents`.
    fn snapshot(&self) -> Value {
        json!({"state": self.state(), "metadata": self.metadata(), "version": self.version})
    }

    fn delta(&self) -> Option<(Map<String, Value>, Map<String, Value>)> {
        let desired = self.desired.as_ref()?;
        let empty = Map::new();
        let reported = self.reported.as_ref().unwrap_or(&empty);
        let (d, m) = delta_of(desired, reported, &self.meta_desired);
        if d.is_empty() { None } else { Some((d, m)) }
    }

    fn state_size(&self) -> usize {
        self.state().to_string().len()
    }
}

/// Desired keys whose values differ from reported (recursing into objects on both sides), with
/// the matching desired metadata.
fn delta_of(
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
    meta: &Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut d = Map::new();
    let mut m = Map::new();
    for (k, dv) in desired {
        let km = meta.get(k);
        match (dv, reported.get(k)) {
            (Value::Object(dobj), Some(Value::Object(robj))) => {
                let empty = Map::new();
                let sub_meta = km.and_then(Value::as_object).unwrap_or(&empty);
                let (sd, sm) = delta_of(dobj, robj, sub_meta);
                if !sd.is_empty() {
                    d.insert(k.clone(), Value::Object(sd));
                    m.insert(k.clone(), Value::Object(sm));
                }
            }
            (dv, Some(rv)) if dv == rv => {}
            (dv, _) => {
                d.insert(k.clone(), dv.clone());
                if let Some(km) = km {
                    m.insert(k.clone(), km.clone());
                }
            }
        }
    }
    (d, m)
}

/// Metadata for a value written at `ts`: per leaf `{timestamp}`, per array element likewise.
fn metadata_for(v: &Value, ts: u64) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), metadata_for(v, ts)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| metadata_for(v, ts)).collect()),
        _ => json!({"timestamp": ts}),
    }
}

/// Merge `patch` into `target` (and its metadata): objects merge, `null` deletes, anything else
/// (arrays included) replaces.
fn merge(
    target: &mut Map<String, Value>,
    meta: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    ts: u64,
) {
    for (k, pv) in patch {
        match pv {
            Value::Null => {
                target.remove(k);
                meta.remove(k);
            }
            Value::Object(pobj) => {
                let existing = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !existing.is_object() {
                    *existing = Value::Object(Map::new());
                }
                let m = meta
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !m.is_object() {
                    *m = Value::Object(Map::new());
                }
                if let (Value::Object(t), Value::Object(mm)) = (existing, m) {
                    merge(t, mm, pobj, ts);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
                meta.insert(k.clone(), metadata_for(other, ts));
            }
        }
    }
}

/// The messages an accepted update produces (the caller publishes them under
/// `<prefix>/update/accepted`, `/update/documents` and, when present, `/update/delta`).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateOutcome {
    /// `/update/accepted` (also the HTTP response body).
    pub accepted: Value,
    /// `/update/documents`.
    pub documents: Value,
    /// `/update/delta`, when the update set desired state that differs from reported.
    pub delta: Option<Value>,
}

/// All shadows. Deleted shadows are forgotten: a re-created one starts again at version 1.
#[derive(Debug, Default, Clone)]
pub struct ShadowStore {
    docs: HashMap<ShadowKey, Doc>,
}

fn client_token(req: &Value) -> Option<String> {
    req.get("clientToken")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn with_token(mut v: Value, token: &Option<String>) -> Value {
    if let Some(t) = token {
        v["clientToken"] = Value::String(t.clone());
    }
    v
}

/// The client token of a request payload, if it is JSON and has one (for `/rejected`).
pub fn request_client_token(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .as_ref()
        .and_then(client_token)
}

impl ShadowStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many shadows exist.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// No shadows at all?
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// UpdateThingShadow / `.../update`.
    pub fn update(
        &mut self,
        key: &ShadowKey,
        payload: &[u8],
        now: u64,
    ) -> Result<UpdateOutcome, Rejection> {
        let req: Value = serde_json::from_slice(payload)
            .map_err(|_| Rejection::new(400, "Payload contains invalid json"))?;
        let Value::Object(req_obj) = &req else {
            return Err(Rejection::new(400, "Payload contains invalid json"));
        };
        let token = client_token(&req);
        let state = req_obj
            .get("state")
            .ok_or_else(|| Rejection::new(400, "Missing required node: state"))?;
        let Value::Object(state) = state else {
            return Err(Rejection::new(400, "State node must be an object"));
        };
        for k in state.keys() {
            if k != "desired" && k != "reported" {
                return Err(Rejection::new(
                    400,
                    format!("State contains an invalid node: '{k}'"),
                ));
            }
        }
        for section in ["desired", "reported"] {
            if let Some(v) = state.get(section)
                && !(v.is_object() || v.is_null())
            {
                return Err(Rejection::new(
                    400,
                    format!("{} node must be an object", capitalise(section)),
                ));
            }
        }
        let current = self.docs.get(key);
        if let Some(v) = req_obj.get("version") {
            let Some(v) = v.as_u64() else {
                return Err(Rejection::new(400, "Invalid version"));
            };
            if current.map(|d| d.version) != Some(v) {
                return Err(Rejection::new(409, "Version conflict"));
            }
        }
        let previous = current.cloned();
        let mut doc = previous.clone().unwrap_or_default();
        let mut req_meta = Map::new();
        for (section, value) in state {
            let (target, meta) = if section == "desired" {
                (&mut doc.desired, &mut doc.meta_desired)
            } else {
                (&mut doc.reported, &mut doc.meta_reported)
            };
            match value {
                Value::Null => {
                    *target = None;
                    meta.clear();
                }
                Value::Object(patch) => {
                    let t = target.get_or_insert_with(Map::new);
                    merge(t, meta, patch, now);
                    if t.is_empty() {
                        // A section emptied by deletes is gone, as in IoT Core's documents.
                        *target = None;
                        meta.clear();
                    }
                    req_meta.insert(section.clone(), metadata_for(value, now));
                }
                _ => {}
            }
        }
        if doc.state_size() > MAX_STATE_BYTES {
            return Err(Rejection::new(
                413,
                "The payload exceeds the maximum size allowed",
            ));
        }
        doc.version = previous.as_ref().map_or(1, |p| p.version + 1);
        doc.timestamp = now;

        let accepted = with_token(
            json!({
                "state": Value::Object(state.clone()),
                "metadata": Value::Object(req_meta),
                "version": doc.version,
                "timestamp": now,
            }),
            &token,
        );
        let mut documents = json!({"current": doc.snapshot(), "timestamp": now});
        if let Some(p) = &previous {
            documents["previous"] = p.snapshot();
        }
        let documents = with_token(documents, &token);
        let delta = if state.get("desired").is_some_and(Value::is_object) {
            doc.delta().map(|(d, m)| {
                with_token(
                    json!({"version": doc.version, "timestamp": now, "state": d, "metadata": m}),
                    &token,
                )
            })
        } else {
            None
        };
        self.docs.insert(key.clone(), doc);
        Ok(UpdateOutcome {
            accepted,
            documents,
            delta,
        })
    }

    /// GetThingShadow / `.../get`: state (with delta), metadata, version, timestamp.
    pub fn get(&self, key: &ShadowKey, request: &[u8], now: u64) -> Result<Value, Rejection> {
        let token = request_client_token(request);
        let doc = self.docs.get(key).ok_or_else(|| not_found(key))?;
        let mut state = doc.state();
        let mut metadata = doc.metadata();
        if let Some((d, _)) = doc.delta() {
            state["delta"] = Value::Object(d);
        }
        if metadata.as_object().is_some_and(Map::is_empty) {
            metadata = json!({});
        }
        Ok(with_token(
            json!({"state": state, "metadata": metadata, "version": doc.version, "timestamp": now}),
            &token,
        ))
    }

    /// DeleteThingShadow / `.../delete`: `{version, timestamp}`.
    pub fn delete(
        &mut self,
        key: &ShadowKey,
        request: &[u8],
        now: u64,
    ) -> Result<Value, Rejection> {
        let token = request_client_token(request);
        let doc = self.docs.remove(key).ok_or_else(|| not_found(key))?;
        Ok(with_token(
            json!({"version": doc.version, "timestamp": now}),
            &token,
        ))
    }

    /// Names of `thing`'s named shadows, sorted.
    pub fn list_named(&self, thing: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .docs
            .keys()
            .filter(|k| k.thing == thing)
            .filter_map(|k| k.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Every shadow's current `{state, metadata, version}`, keyed by `thing` or `thing~name`.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        self.docs
            .iter()
            .map(|(k, d)| (k.display(), d.snapshot()))
            .collect()
    }
}

fn not_found(key: &ShadowKey) -> Rejection {
    Rejection::new(
        404,
        format!("No shadow exists with name: '{}'", key.display()),
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(
        store: &mut ShadowStore,
        key: &ShadowKey,
        v: Value,
        now: u64,
    ) -> Result<UpdateOutcome, Rejection> {
        store.update(key, v.to_string().as_bytes(), now)
    }

    #[test]
    fn first_update_creates_version_1_without_previous() {
        let mut s = ShadowStore::new();
        let k = ShadowKey::classic("rb-1");
        let out = upd(
            &mut s,
            &k,
            json!({"state": {"reported": {"battery": 80}}, "clientToken": "t1"}),
            100,
        )
        .expect("accepted");
        assert_eq!(out.accepted["version"], 1);
        assert_eq!(out.accepted["clientToken"], "t1");
        assert_eq!(out.accepted["state"], json!({"reported": {"battery": 80}}));
        assert_eq!(
            out.accepted["metadata"],
            json!({"reported": {"battery": {"timestamp": 100}}})
        );
        assert!(out.documents.get("previous").is_none());
        assert_eq!(out.documents["current"]["version"], 1);
        assert_eq!(
            out.documents["current"]["state"],
            json!({"reported": {"battery": 80}})
        );
        assert_eq!(out.documents["timestamp"], 100);
        assert!(out.delta.is_none());
    }

    #[test]
    fn nested_merge_and_null_delete() {
        let mut s = ShadowStore::new();
        let k = ShadowKey::classic("rb-1");
        upd(
            &mut s,
            &k,
            json!({"state": {"reported": {"a": {"x": 1, "y": 2}, "b": 1, "arr": [1, 2]}}}),
            1,
        )
        .expect("ok");
        let out = upd(
            &mut s,
            &k,
            json!({"state": {"reported": {"a": {"y": null, "z": 3}, "b": null, "arr": [3]}}}),
            2,
        )
        .expect("ok");
        assert_eq!(out.documents["previous"]["version"], 1);
        assert_eq!(out.documents["current"]["version"], 2);
        assert_eq!(
            out.documents["current"]["state"]["reported"],
            json!({"a": {"x": 1, "z": 3}, "arr": [3]})
        );
        let meta = &out.documents["current"]["metadata"]["reported"];
        assert_eq!(meta["a"]["x"]["timestamp"], 1);
        assert_eq!(meta["a"]["z"]["timestamp"], 2);
        assert!(meta.get("b").is_none());
        assert_eq!(meta["arr"], json!([{"timestamp": 2}]));
    }

    #[test]
    fn null_section_deletes_it() {
        let mut s = ShadowStore::new();
        let k = ShadowKey::classic("rb-1");
        upd(
            &mut s,
            &k,
            json!({"state": {"desired": {"a": 1}, "reported": {"a": 0}}}),
            1,
        )
        .expect("ok");
        let out = upd(&mut s, &k, json!({"state": {"desired": null}}), 2).expect("ok");
        assert_eq!(
            out.documents["current"]["state"],
            json!({"reported": {"a": 0}})
        );
    }

    #[test]
    fn a_section_emptied_by_deletes_disappears() {
        let mut s = ShadowStore::new();
        let k = ShadowKey::classic("rb-1");
        upd(
            &mut s,
            &k,
            json!({"state": {"desired": {"a": 1}, "reported": {"b": 1}}}),
            1,
        )
        .expect("ok");
        let out = upd(&mut s, &k, json!({"state": {"desired": {"a": null}}}), 2).expect("ok");
        assert_eq!(
            out.documents["current"]["state"],
            json!({"reported": {"b": 1}})
        );
        assert!(
            out.documents["current"]["metadata"]
                .get("desired")
                .is_none()
        );
    }

    #[test]
    fn version_must_match() {
        let mut s = ShadowStore::new();
        let k = ShadowKey::classic("rb-1");
        upd(&mut s, &k, json!({"state": {"reported": {"a": 1}}}), 1).expect("ok");
        let e = upd(
            &mut s,
            &k,
            json!({"state": {"reported": {"a": 2}}, "version": 5}),
            2,
        )
        .expect_err("conflict");
        assert_eq!(e, Rejection::new(409, "Version conflict"));
        let ok = upd(
            &mut s,
            &k,
            json!({"state": {"reported": {"a": 2}}, "version": 1}),
            2,
        )
        .expect("ok");
        assert_eq!(ok.accepted["version"], 2);
    }

    #[test]
    fn bad_requests_are_400() {
        let mut s = ShadowStore::new();
        let k = ShadowKey::classic("rb-1");
        assert_eq!(s.update(&k, b"not json", 1).expect_err("bad").code, 400);
        assert_eq!(
            upd(&mut s, &k, json!({"nostate": 1}), 1)
                .expect_err("bad")
                .message,
            "Missing required node: state"
        );
        assert_eq!(
            upd(&mut s, &k, json!({"state": {"delta": {}}}), 1)
                .expect_err("bad")
                .code,
            400
        );
        assert_eq!(
            upd(&mut s, &k, json!({"state": {"desired": 3}}), 1)
                .expect_err("bad")
                .code,
            400
        );
        assert_eq!(
            upd(&mut s, &k, json!({"state": 3}), 1)
                .expect_err("bad")
                .code,
            400
        );
        let big = "x".repeat(MAX_STATE_BYTES);
        assert_eq!(
            upd(&mut s, &k, json!({"state": {"reported": {"big": big}}}), 1)
                .expect_err("big")
                .code,
            413
        );
        assert!(s.is_empty(), "a rejected update must not create the shadow");
    }

    #[test]
    fn delta_lists_desired_keys_that_differ_recursively() {
        let mut s = ShadowStore::new();
        let k = ShadowKey::classic("rb-1");
        upd(
            &mut s,
            &k,
            json!({"state": {"reported": {"mode": "idle", "cfg": {"a": 1, "b": 2}}}}),
            1,
        )
        .expect("ok");
        let out = upd(
            &mut s,
            &k,
            json!({"state": {"desired": {"mode": "clean", "cfg": {"a": 1, "b": 3}, "new": true}}, "clientToken": "c"}),
            2,
        )
        .expect("ok");
        let delta = out.delta.expect("delta");
        assert_eq!(
            delta["state"],
            json!({"mode": "clean", "cfg": {"b": 3}, "new": true})
        );
        assert_eq!(delta["metadata"]["cfg"]["b"]["timestamp"], 2);
        assert_eq!(delta["version"], 2);
        assert_eq!(delta["clientToken"], "c");
        // reported catches up: no new delta is published, and get shows none
        let out = upd(
            &mut s,
            &k,
            json!({"state": {"reported": {"mode": "clean", "cfg": {"b": 3}, "new": true}}}),
            3,
        )
        .expect("ok");
        assert!(out.delta.is_none());
        let g = s.get(&k, b"", 4).expect("exists");
        assert!(g["state"].get("delta").is_none());
    }

    #[test]
    fn get_shows_delta_and_metadata() {
        let mut s = ShadowStore::new();
        let k = ShadowKey::classic("rb-1");
        upd(&mut s, &k, json!({"state": {"desired": {"a": 1}}}), 1).expect("ok");
        let g = s.get(&k, br#"{"clientToken":"g"}"#, 5).expect("exists");
        assert_eq!(g["state"]["desired"], json!({"a": 1}));
        assert_eq!(g["state"]["delta"], json!({"a": 1}));
        assert_eq!(g["metadata"]["desired"]["a"]["timestamp"], 1);
        assert_eq!(g["version"], 1);
        assert_eq!(g["timestamp"], 5);
        assert_eq!(g["clientToken"], "g");
    }

    #[test]
    fn named_shadows_are_separate_and_listed() {
        let mut s = ShadowStore::new();
        upd(
            &mut s,
            &ShadowKey::classic("rb-1"),
            json!({"state": {"reported": {"a": 1}}}),
            1,
        )
        .expect("ok");
        upd(
            &mut s,
            &ShadowKey::named("rb-1", "schedule"),
            json!({"state": {"desired": {"at": "10:00"}}}),
            1,
        )
        .expect("ok");
        upd(
            &mut s,
            &ShadowKey::named("rb-1", "maps"),
            json!({"state": {"reported": {"n": 2}}}),
            1,
        )
        .expect("ok");
        upd(
            &mut s,
            &ShadowKey::named("rb-2", "maps"),
            json!({"state": {"reported": {"n": 2}}}),
            1,
        )
        .expect("ok");
        assert_eq!(s.list_named("rb-1"), ["maps", "schedule"]);
        let g = s
            .get(&ShadowKey::named("rb-1", "schedule"), b"", 2)
            .expect("exists");
        assert_eq!(g["version"], 1);
        assert!(g["state"].get("reported").is_none());
        assert_eq!(
            s.get(&ShadowKey::named("rb-1", "nope"), b"", 2)
                .expect_err("missing")
                .code,
            404
        );
    }

    #[test]
    fn delete_forgets_and_recreate_restarts_at_version_1() {
        let mut s = ShadowStore::new();
        let k = ShadowKey::classic("rb-1");
        upd(&mut s, &k, json!({"state": {"reported": {"a": 1}}}), 1).expect("ok");
        upd(&mut s, &k, json!({"state": {"reported": {"a": 2}}}), 2).expect("ok");
        let d = s.delete(&k, b"", 3).expect("deleted");
        assert_eq!(d, json!({"version": 2, "timestamp": 3}));
        assert_eq!(s.get(&k, b"", 4).expect_err("gone").code, 404);
        assert_eq!(s.delete(&k, b"", 4).expect_err("gone").code, 404);
        let out = upd(&mut s, &k, json!({"state": {"reported": {"a": 3}}}), 5).expect("ok");
        assert_eq!(out.accepted["version"], 1);
        assert!(out.documents.get("previous").is_none());
    }

    #[test]
    fn topic_prefixes() {
        assert_eq!(
            ShadowKey::classic("t").topic_prefix(),
            "$aws/things/t/shadow"
        );
        assert_eq!(
            ShadowKey::named("t", "n").topic_prefix(),
            "$aws/things/t/shadow/name/n"
        );
    }
}
