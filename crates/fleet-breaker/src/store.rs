//! Where the shared state lives: one DynamoDB item per downstream, written only on the
//! condition that its `version` is the one read ([`DynamoStore`]); and an in-memory store with
//! the same compare-and-set semantics for tests and models ([`MemoryStore`]).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::state::{Lease, State, Status};

/// The breaker table could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("breaker table: {0}")]
pub struct StoreError(pub String);

/// Reads and conditionally writes breaker states.
pub trait StateStore: Send + Sync {
    /// The state of `downstream` (a fresh closed one, version 0, if it was never written).
    fn load(&self, downstream: &str) -> impl Future<Output = Result<State, StoreError>> + Send;
    /// Writes `new` if the stored version is still `new.version - 1`. `Ok(false)`: someone
    /// else wrote first.
    fn save(&self, new: &State) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Every stored state.
    fn list(&self) -> impl Future<Output = Result<Vec<State>, StoreError>> + Send;
}

/// States in memory, with the compare-and-set of the DynamoDB store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    items: Mutex<HashMap<String, State>>,
}

impl StateStore for MemoryStore {
    async fn load(&self, downstream: &str) -> Result<State, StoreError> {
        Ok(self
            .items
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?
            .get(downstream)
            .cloned()
            .unwrap_or_else(|| State::new(downstream)))
    }

    async fn save(&self, new: &State) -> Result<bool, StoreError> {
        let mut items = self
            .items
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?;
        let current = items.get(&new.downstream).map_or(0, |s| s.version);
        if current + 1 != new.version {
            return Ok(false);
        }
        items.insert(new.downstream.clone(), new.clone());
        Ok(true)
    }

    async fn list(&self) -> Result<Vec<State>, StoreError> {
        let items = self
            .items
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?;
        let mut all: Vec<State> = items.values().cloned().collect();
        all.sort_by(|a, b| a.downstream.cmp(&b.downstream));
        Ok(all)
    }
}

/// The breaker table: key `downstream` (S); every write conditional on `version`. The SDK's
/// retries are off and each call is bounded (`timeout`), so an unreachable table costs a
/// batch at most that long before the breaker fails open.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    timeout: Duration,
}

impl DynamoStore {
    /// The table `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            timeout: Duration::from_secs(2),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn bounded(&self) -> aws_sdk_dynamodb::config::Builder {
        fleet_aws::retry::one_bounded_dynamodb_attempt(self.timeout)
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The item of a state.
pub fn to_item(state: &State) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("downstream".to_string(), s(&state.downstream)),
        ("status".to_string(), s(state.status.as_str())),
        ("version".to_string(), n(state.version)),
        ("openings".to_string(), n(u64::from(state.openings))),
        ("openedAtMs".to_string(), n(state.opened_at_ms)),
        ("openUntilMs".to_string(), n(state.open_until_ms)),
        ("closedAtMs".to_string(), n(state.closed_at_ms)),
        ("successes".to_string(), n(u64::from(state.successes))),
        ("cause".to_string(), s(&state.cause)),
    ]);
    if let Some(l) = &state.lease {
        item.insert("leaseHolder".into(), s(&l.holder));
        item.insert("leaseUntilMs".into(), n(l.until_ms));
    }
    if let Some(by) = &state.forced_by {
        item.insert("forcedBy".into(), s(by));
    }
    item
}

/// The state of an item; `Err` names the attribute that is missing or wrong.
pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<State, StoreError> {
    let text = |k: &str| -> Result<String, StoreError> {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError(format!("item without string attribute {k}")))
    };
    let num = |k: &str| -> Result<u64, StoreError> {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError(format!("item without number attribute {k}")))
    };
    let status_text = text("status")?;
    let status = Status::parse(&status_text)
        .ok_or_else(|| StoreError(format!("unknown status {status_text:?}")))?;
    let lease = match (item.get("leaseHolder"), item.get("leaseUntilMs")) {
        (Some(_), Some(_)) => Some(Lease {
            holder: text("leaseHolder")?,
            until_ms: num("leaseUntilMs")?,
        }),
        _ => None,
    };
    Ok(State {
        downstream: text("downstream")?,
        status,
        version: num("version")?,
        openings: u32::try_from(num("openings")?).unwrap_or(u32::MAX),
        opened_at_ms: num("openedAtMs")?,
        open_until_ms: num("openUntilMs")?,
        closed_at_ms: num("closedAtMs")?,
        lease,
        successes: u32::try_from(num("successes")?).unwrap_or(u32::MAX),
        forced_by: item.get("forcedBy").and_then(|v| v.as_s().ok()).cloned(),
        cause: text("cause").unwrap_or_default(),
    })
}

impl StateStore for DynamoStore {
    async fn load(&self, downstream: &str) -> Result<State, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("downstream", s(downstream))
            .consistent_read(true)
            .customize()
            .config_override(self.bounded())
            .send()
            .await
            .map_err(|e| StoreError(fleet_aws::error::chain(&e)))?;
        match out.item() {
            Some(item) => from_item(item),
            None => Ok(State::new(downstream)),
        }
    }

    async fn save(&self, new: &State) -> Result<bool, StoreError> {
        let expected = new.version.saturating_sub(1);
        // The first write (version 1) must find no item; every later one the version read.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(new)));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(downstream)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(expected))
        };
        let result = put.customize().config_override(self.bounded()).send().await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError(fleet_aws::error::chain(&e))),
        }
    }

    async fn list(&self) -> Result<Vec<State>, StoreError> {
        let mut out = BTreeMap::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError(fleet_aws::error::chain(&e)))?;
            for item in page.items() {
                let state = from_item(item)?;
                out.insert(state.downstream.clone(), state);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_survives_its_item() {
        let mut s = State::new("robots-index");
        s.status = Status::HalfOpen;
        s.version = 7;
        s.lease = Some(Lease {
            holder: "req-1".into(),
            until_ms: 99,
        });
        s.forced_by = Some("ops".into());
        s.cause = "probing".into();
        assert_eq!(from_item(&to_item(&s)).unwrap(), s);
        let mut broken = to_item(&s);
        broken.insert("status".into(), AttributeValue::S("ajar".into()));
        assert!(from_item(&broken).unwrap_err().0.contains("ajar"));
    }

    #[tokio::test]
    async fn the_memory_store_writes_only_on_the_version_read() {
        let store = MemoryStore::default();
        let s0 = store.load("d").await.unwrap();
        let mut a = s0.clone();
        a.version = 1;
        let mut b = s0.clone();
        b.version = 1;
        b.cause = "b".into();
        assert!(store.save(&a).await.unwrap());
        assert!(!store.save(&b).await.unwrap(), "b read version 0 too");
        assert_eq!(store.load("d").await.unwrap(), a);
    }
}
