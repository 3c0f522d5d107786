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

/// An SDK config in `region`. With `endpoint` (a stand-in such as moto), every client goes
/// there, and static test credentials are used unless the environment has some, since the
/// stand-ins need a signature but no account. Without it, the SDK's default chain applies.
pub async fn sdk_config(endpoint: Option<&str>, region: &str) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()));
    if let Some(ep) = endpoint {
        loader = loader.endpoint_url(ep);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "robofleet-local",
            ));
        }
    }
    loader.load().await
}
