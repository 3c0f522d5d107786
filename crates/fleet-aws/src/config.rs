//! The AWS SDK configuration of Robofleet's functions, tools and tests, in one place.
//!
//! A function loads its configuration from the environment Lambda gives it
//! ([`function_sdk_config`]); a tool either talks to an account through the default chain, or
//! to the local stack's stand-ins through an endpoint URL ([`sdk_config`]).

/// The functions' SDK config: region, credentials and endpoints from the environment Lambda
/// gives them (the local stack gives the same variables), with stalled-stream protection off:
/// it guards large streaming downloads, and on the functions' small request/response calls it
/// would only add a timer to every one.
pub async fn function_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        )
        .load()
        .await
}

/// The access key of the local developer: the principal the local stack's AWS front registers
/// with every permission, and what tools and tests sign with when they talk to the local stack
/// (tools/standins.sh and `robofleet dev` register the same keys).
pub const LOCAL_DEVELOPER_ACCESS_KEY_ID: &str = "AKIALOCALDEVELOPER01";
/// The secret key of the local developer.
pub const LOCAL_DEVELOPER_SECRET_ACCESS_KEY: &str = "robofleet-local-developer-secret";

/// The local developer's credentials.
pub fn local_developer_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        LOCAL_DEVELOPER_ACCESS_KEY_ID,
        LOCAL_DEVELOPER_SECRET_ACCESS_KEY,
        None,
        None,
        "robofleet-local-developer",
    )
}

/// An SDK config in `region`. With `endpoint` (the local stack's AWS front), every client goes
/// there and signs as the local developer unless the environment has credentials (an operator
/// who registered their own principal). Without it, the SDK's default chain applies.
pub async fn sdk_config(endpoint: Option<&str>, region: &str) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()));
    if let Some(ep) = endpoint {
        loader = loader.endpoint_url(ep);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(local_developer_credentials());
        }
    }
    loader.load().await
}

/// An SDK config for `endpoint` in `region` that signs with `credentials` (a role's session
/// credentials from the local stack's AWS front): what a local function, its event source
/// mapping and the rules engine act as.
pub async fn sdk_config_as(
    endpoint: &str,
    region: &str,
    credentials: aws_credential_types::Credentials,
) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        )
        .load()
        .await
}
