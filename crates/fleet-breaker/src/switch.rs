//! Pausing and resuming the event source mappings that feed a downstream: Lambda's
//! `UpdateEventSourceMapping` with `Enabled`, for every mapping of the named functions.
//!
//! A mapping's ARN ends in a UUID the template cannot know in advance, so IAM scopes
//! `lambda:UpdateEventSourceMapping` with the condition `lambda:FunctionArn` on the functions'
//! fixed names, and the mappings are found with `ListEventSourceMappings(FunctionName)`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

/// A mapping could not be listed or switched.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event source mappings: {0}")]
pub struct SwitchError(pub String);

/// Turns the mappings of functions on and off.
pub trait MappingSwitch: Send + Sync {
    /// Sets every mapping of each function in `functions` to `enabled`; returns how many
    /// mappings changed.
    fn set_enabled(
        &self,
        functions: &[String],
        enabled: bool,
    ) -> impl Future<Output = Result<usize, SwitchError>> + Send;
    /// Every mapping of `functions`: (uuid, enabled).
    fn mappings(
        &self,
        functions: &[String],
    ) -> impl Future<Output = Result<Vec<(String, bool)>, SwitchError>> + Send;
}

/// Mappings in memory, for tests and models: function → enabled.
#[derive(Debug, Default)]
pub struct MemorySwitch {
    enabled: Mutex<BTreeMap<String, bool>>,
}

impl MemorySwitch {
    /// Whether `function`'s mappings are enabled (they start enabled).
    pub fn is_enabled(&self, function: &str) -> bool {
        self.enabled
            .lock()
            .map(|m| m.get(function).copied().unwrap_or(true))
            .unwrap_or(true)
    }
}

impl MappingSwitch for MemorySwitch {
    async fn set_enabled(&self, functions: &[String], enabled: bool) -> Result<usize, SwitchError> {
        let mut m = self
            .enabled
            .lock()
            .map_err(|_| SwitchError("poisoned".into()))?;
        let mut changed = 0;
        for f in functions {
            let was = m.insert(f.clone(), enabled).unwrap_or(true);
            changed += usize::from(was != enabled);
        }
        Ok(changed)
    }

    async fn mappings(&self, functions: &[String]) -> Result<Vec<(String, bool)>, SwitchError> {
        Ok(functions
            .iter()
            .map(|f| (f.clone(), self.is_enabled(f)))
            .collect())
    }
}

/// The Lambda control plane.
#[derive(Debug, Clone)]
pub struct LambdaSwitch {
    client: aws_sdk_lambda::Client,
}

impl LambdaSwitch {
    /// Through `client`.
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        LambdaSwitch { client }
    }
}

/// A mapping is running (or about to) unless its state says it is (being) disabled.
fn is_on(state: Option<&str>) -> bool {
    !matches!(state, Some("Disabled" | "Disabling"))
}

impl MappingSwitch for LambdaSwitch {
    async fn mappings(&self, functions: &[String]) -> Result<Vec<(String, bool)>, SwitchError> {
        let mut out = Vec::new();
        for f in functions {
            let mut marker = None;
            loop {
                let page = self
                    .client
                    .list_event_source_mappings()
                    .function_name(f)
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| {
                        SwitchError(format!(
                            "listing the mappings of {f}: {}",
                            fleet_aws::error::chain(&e)
                        ))
                    })?;
                for m in page.event_source_mappings() {
                    if let Some(uuid) = m.uuid() {
                        out.push((uuid.to_string(), is_on(m.state())));
                    }
                }
                match page.next_marker() {
                    Some(next) if !next.is_empty() => marker = Some(next.to_string()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    async fn set_enabled(&self, functions: &[String], enabled: bool) -> Result<usize, SwitchError> {
        let mut changed = 0;
        for (uuid, on) in self.mappings(functions).await? {
            if on == enabled {
                continue;
            }
            self.client
                .update_event_source_mapping()
                .uuid(&uuid)
                .enabled(enabled)
                .send()
                .await
                .map_err(|e| {
                    SwitchError(format!(
                        "setting mapping {uuid} to enabled={enabled}: {}",
                        fleet_aws::error::chain(&e)
                    ))
                })?;
            changed += 1;
        }
        Ok(changed)
    }
}
