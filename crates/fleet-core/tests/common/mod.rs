//! Helpers shared by the fleet-core integration tests.

pub mod arb_json;

/// A JSON file of the repository (`schemas/…`, `events/…`), by path from the workspace root.
#[allow(clippy::unwrap_used)]
pub fn load(rel: &str) -> serde_json::Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
