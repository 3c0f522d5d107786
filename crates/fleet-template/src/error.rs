//! The one error type of the reader. Every variant says where in the template the problem is
//! (`at`, a dotted path such as `Resources.MissionsStream.Properties.Name`) and what to do.

use std::path::PathBuf;

/// Why a template could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error(
        "cannot read template {path}: {source}; check the path (the template is template.yaml at the workspace root)"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The text is not YAML.
    #[error("template is not valid YAML: {0}; run cfn-lint on it for a precise location")]
    Yaml(#[from] serde_yaml_ng::Error),

    /// A construct the reader deliberately does not evaluate (by name), so the local stack never
    /// runs with a silently wrong value.
    #[error(
        "unsupported {what} at {at}: the local stack cannot evaluate it; use a supported construct or extend fleet-template"
    )]
    Unsupported { what: String, at: String },

    /// The template is malformed at a place (wrong shape, missing property, bad reference).
    #[error("invalid template at {at}: {detail}")]
    Invalid { at: String, detail: String },

    /// A parameter value is missing or breaks its constraints.
    #[error("parameter {name}: {detail}")]
    Parameter { name: String, detail: String },

    /// An override names a parameter the template does not declare (usually a typo).
    #[error(
        "parameter override {name} does not match any parameter of the template; check its spelling"
    )]
    UnknownOverride { name: String },

    /// An event source mapping setting is out of range or unknown. Linting does not catch these
    /// inside SAM `Events`, so the reader does.
    #[error("function {function}, event {event}: {property} {detail}")]
    InvalidMapping {
        function: String,
        event: String,
        property: String,
        detail: String,
    },

    /// A `Rules` assertion does not hold for the parameter values: CloudFormation would refuse
    /// the deploy with the same description.
    #[error("rule {rule} failed: {description}")]
    RuleFailed { rule: String, description: String },

    /// A reference loops back on itself (a condition or a name that needs itself).
    #[error("circular reference at {at}: break the cycle in the template")]
    Cycle { at: String },
}

impl TemplateError {
    pub(crate) fn invalid(at: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            at: at.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>, at: impl Into<String>) -> Self {
        Self::Unsupported {
            what: what.into(),
            at: at.into(),
        }
    }
}
