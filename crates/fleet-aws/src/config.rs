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

/// An S3 client over `sdk` with path-style addressing (`endpoint/bucket/key`): the AWS front
/// serves only that form, and AWS accepts it too. Every S3 client of the workspace is made here.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
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

/// The operator's AWS identity and region, shared by every `robofleet` subcommand that talks to
/// AWS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsAccess {
    /// Named profile of ~/.aws/config (SSO, `sso-session` and `aws login` profiles work);
    /// default: `AWS_PROFILE`, else the default credential chain.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// Region; default: the profile's, else us-east-1 (the local stack: the dev report's).
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
}

impl AwsAccess {
    /// The SDK config for these flags, against `endpoint` (the local stack's front) or AWS:
    /// see [`operator_sdk_config`].
    pub async fn sdk_config(
        &self,
        endpoint: Option<&str>,
    ) -> Result<aws_config::SdkConfig, CredentialsError> {
        operator_sdk_config(endpoint, self.region.as_deref(), self.profile.as_deref()).await
    }
}

/// The region operators' tools use when neither `--region`, `AWS_REGION` nor the profile
/// names one.
pub const DEFAULT_OPERATOR_REGION: &str = "us-east-1";

/// How a profile signs in, as far as the error for missing credentials cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// IAM Identity Center: `sso_session` or `sso_start_url` (`aws sso login`).
    Sso,
    /// An `aws login` session: `login_session` (`aws login`).
    Login,
    /// Keys, roles, processes, or nothing known.
    Other,
}

/// No credentials for an operator's command, said so that the operator knows what to run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "profile `{profile}` signs in through AWS IAM Identity Center (SSO), and its cached sign-in is missing or expired: run `aws sso login --profile {profile}`, then try again ({cause})"
    )]
    SsoSignIn { profile: String, cause: String },
    #[error(
        "profile `{profile}` uses an `aws login` session, which is missing or expired: run `aws login --profile {profile}`, then try again ({cause})"
    )]
    LoginSession { profile: String, cause: String },
    #[error("no AWS credentials for profile `{profile}`: {cause}")]
    Profile { profile: String, cause: String },
    #[error(
        "no AWS credentials: set AWS_PROFILE or pass --profile (an SSO profile works: `aws configure sso`), or set AWS_ACCESS_KEY_ID; {cause}"
    )]
    None { cause: String },
}

/// How `profile` signs in, read from the shared config file (`AWS_CONFIG_FILE`, else
/// `~/.aws/config`): `[profile NAME]` or `[default]`.
pub fn sign_in_of(profile: &str) -> SignIn {
    let path = std::env::var_os("AWS_CONFIG_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".aws/config")));
    let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return SignIn::Other;
    };
    sign_in_in(&text, profile)
}

/// [`sign_in_of`] over the config file's text.
pub fn sign_in_in(config: &str, profile: &str) -> SignIn {
    let wanted = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let mut inside = false;
    let mut found = SignIn::Other;
    for line in config.lines() {
        let line = line.trim();
        let line = line.split(['#', ';']).next().unwrap_or_default().trim();
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.split_whitespace().collect::<Vec<_>>().join(" ");
            inside = section == wanted || (profile == "default" && section == "profile default");
            continue;
        }
        if !inside {
            continue;
        }
        let key = line.split('=').next().unwrap_or_default().trim();
        match key {
            "sso_session" | "sso_start_url" => found = SignIn::Sso,
            "login_session" => found = SignIn::Login,
            _ => {}
        }
    }
    found
}

/// An operator's SDK config: the default credential chain (environment, `--profile` or
/// `AWS_PROFILE` with SSO, `sso-session` and `aws login` profiles, web identity, instance
/// roles), in `region` (else the profile's or `AWS_REGION`, else us-east-1). With `endpoint`
/// (the local stack's AWS front) and neither a profile nor keys in the environment, it signs as
/// the local developer. The credentials are resolved once here, so a missing or expired sign-in
/// is an error naming the profile and the command to run, not an SDK chain dump at the first
/// call.
pub async fn operator_sdk_config(
    endpoint: Option<&str>,
    region: Option<&str>,
    profile: Option<&str>,
) -> Result<aws_config::SdkConfig, CredentialsError> {
    // The flag; else the default chain for the profile in use (AWS_REGION, then the profile's
    // `region`); else us-east-1. The chain is built with the profile: a region provider given
    // to the loader does not see the loader's profile.
    let region = match region {
        Some(r) => aws_config::Region::new(r.to_string()),
        None => {
            let mut chain = aws_config::default_provider::region::DefaultRegionChain::builder();
            if let Some(p) = profile {
                chain = chain.profile_name(p);
            }
            chain
                .build()
                .region()
                .await
                .unwrap_or_else(|| aws_config::Region::new(DEFAULT_OPERATOR_REGION))
        }
    };
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region);
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(ep) = endpoint {
        loader = loader.endpoint_url(ep);
        if profile.is_none()
            && std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && std::env::var_os("AWS_PROFILE").is_none()
        {
            loader = loader.credentials_provider(local_developer_credentials());
        }
    }
    let sdk = loader.load().await;
    let Some(provider) = sdk.credentials_provider() else {
        return Err(CredentialsError::None {
            cause: "the SDK has no credential provider".into(),
        });
    };
    use aws_credential_types::provider::ProvideCredentials as _;
    if let Err(e) = provider.provide_credentials().await {
        let cause = crate::error::chain(&e);
        let named = profile
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_PROFILE").ok());
        // No profile named: the chain used `[default]`, which may itself sign in with SSO.
        let p = named.clone().unwrap_or_else(|| "default".to_string());
        return Err(match (sign_in_of(&p), named) {
            (SignIn::Sso, _) => CredentialsError::SsoSignIn { profile: p, cause },
            (SignIn::Login, _) => CredentialsError::LoginSession { profile: p, cause },
            (SignIn::Other, Some(_)) => CredentialsError::Profile { profile: p, cause },
            (SignIn::Other, None) => CredentialsError::None { cause },
        });
    }
    Ok(sdk)
}

#[cfg(test)]
mod operator_tests {
    use super::*;

    const CONFIG: &str = "[default]\nregion = eu-west-1\n\n[profile  legacy] # spaced\nsso_start_url = https://x.awsapps.com/start\nsso_role_name = Ops\n\n[profile modern]\nsso_session = corp\n\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n\n[profile console]\nlogin_session = arn:aws:iam::123456789012:user/ops\n\n[profile keys]\naws_access_key_id = AKIA\n";

    #[test]
    fn the_config_file_says_how_each_profile_signs_in() {
        assert_eq!(sign_in_in(CONFIG, "legacy"), SignIn::Sso);
        assert_eq!(sign_in_in(CONFIG, "modern"), SignIn::Sso);
        assert_eq!(sign_in_in(CONFIG, "console"), SignIn::Login);
        assert_eq!(sign_in_in(CONFIG, "keys"), SignIn::Other);
        assert_eq!(sign_in_in(CONFIG, "default"), SignIn::Other);
        assert_eq!(
            sign_in_in(CONFIG, "corp"),
            SignIn::Other,
            "a session is not a profile"
        );
        assert_eq!(sign_in_in(CONFIG, "missing"), SignIn::Other);
    }

    #[test]
    fn the_errors_name_the_profile_and_the_command_to_run() {
        let e = CredentialsError::SsoSignIn {
            profile: "modern".into(),
            cause: "the token expired".into(),
        };
        assert!(
            e.to_string().contains("aws sso login --profile modern"),
            "{e}"
        );
        let e = CredentialsError::LoginSession {
            profile: "console".into(),
            cause: "x".into(),
        };
        assert!(e.to_string().contains("aws login --profile console"), "{e}");
    }
}
