//! `robofleet` with the credentials teams have: legacy SSO, `sso-session` and `aws login`
//! profiles, through a local stand-in of the IAM Identity Center portal (GetRoleCredentials) and
//! its OIDC token endpoint (CreateToken, the refresh), with the token caches written here.
//!
//! The stand-in hands out the keys of a role registered with the AWS front, so each profile's
//! credentials are then used for real: `robofleet job status` reads the jobs table through the
//! front, which checks the role's policy. Only the SSO clients are pointed at the stand-in
//! (`AWS_ENDPOINT_URL_SSO`, `_SSO_OIDC`, `_SIGNIN`); the table's calls go to `--aws-endpoint`.
//!
//! Run through `make test`, or after `source tools/dev-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha1::Digest as _;

const ACCOUNT: &str = "123456789012";

#[derive(Clone)]
struct Portal {
    creds: Value,
    /// Bearer tokens the portal accepts, and the ones it was shown.
    valid: Vec<String>,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn role_credentials(
    State(p): State<Portal>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, axum::Json<Value>) {
    let token = headers
        .get("x-amz-sso_bearer_token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    p.seen.lock().unwrap().push(token.clone());
    if !p.valid.contains(&token) || q.get("account_id").map(String::as_str) != Some(ACCOUNT) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Session token not found or invalid"})),
        );
    }
    let expiration = (time::OffsetDateTime::now_utc().unix_timestamp() + 3600) * 1000;
    (
        StatusCode::OK,
        axum::Json(json!({"roleCredentials": {
            "accessKeyId": p.creds["accessKeyId"],
            "secretAccessKey": p.creds["secretAccessKey"],
            "sessionToken": p.creds["sessionToken"],
            "expiration": expiration,
        }})),
    )
}

/// OIDC CreateToken with a refresh token: the `sso-session` refresh.
async fn create_token(axum::Json(body): axum::Json<Value>) -> (StatusCode, axum::Json<Value>) {
    if body["grantType"] != "refresh_token" || body["refreshToken"] != "refresh-1" {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        );
    }
    (
        StatusCode::OK,
        axum::Json(json!({
            "accessToken": "modern-token-refreshed",
            "expiresIn": 3600,
            "refreshToken": "refresh-2",
            "tokenType": "Bearer",
        })),
    )
}

fn rfc3339(offset_secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    t.replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// `robofleet job status JOB --table TABLE --aws-endpoint FRONT`, with only `home`'s AWS files,
/// the SSO clients pointed at `portal`, and `extra` arguments and variables.
fn job_status(
    home: &Path,
    portal: &str,
    [job, table, front]: [&str; 3],
    extra: &[&str],
    vars: &[(&str, &str)],
) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_robofleet"))
        .args([
            "job",
            "status",
            job,
            "--table",
            table,
            "--aws-endpoint",
            front,
        ])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join(".aws/config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_SSO", portal)
        .env("AWS_ENDPOINT_URL_SSO_OIDC", portal)
        .env("AWS_ENDPOINT_URL_SIGNIN", portal)
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_sso_session_and_login_profiles_work_and_an_expired_sign_in_names_the_command() {
    let front = fleet_testkit::aws_endpoint();
    let sdk = fleet_testkit::sdk_config().await;
    // A jobs table with one job, made as the local developer.
    let table = fleet_testkit::unique_name("sso-jobs");
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    fleet_testkit::tables::create_table(&ddb, &table, "pk", Some("sk")).await;
    let jobs = fleet_aws::jobs::JobsTable::new(ddb, &table);
    let job = fleet_testkit::unique_name("job");
    let spec = fleet_jobs::JobSpec::from_json(
        r#"{"command": {"action": "dock"}, "input": {"bucket": "b", "key": "inputs/k", "format": "jsonl"}}"#,
    )
    .unwrap();
    jobs.create(&job, &spec).await.unwrap();
    // The operator's role: it may read that table, nothing else.
    let role = format!(
        "arn:aws:iam::{ACCOUNT}:role/{}",
        fleet_testkit::unique_name("ops")
    );
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "dynamodb:GetItem",
        "Resource": format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}")}]});
    let creds: Value = reqwest::Client::new()
        .post(format!("{front}/_front/principals"))
        .json(&json!({"arn": role, "policies": [policy], "sessionName": "sso"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // The portal and its OIDC endpoint.
    let portal = Portal {
        creds: creds.clone(),
        valid: vec!["legacy-token".into(), "modern-token-refreshed".into()],
        seen: Arc::default(),
    };
    let seen = portal.seen.clone();
    let app = axum::Router::new()
        .route("/federation/credentials", get(role_credentials))
        .route("/token", post(create_token))
        .with_state(portal);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // ~/.aws: a legacy SSO profile, an sso-session profile, an `aws login` profile, and a
    // legacy profile whose sign-in has expired.
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let login_session = format!("arn:aws:iam::{ACCOUNT}:user/ops");
    write(
        &h.join(".aws/config"),
        &format!(
            "[profile legacy]\nsso_start_url = https://legacy.example/start\nsso_region = us-east-1\nsso_account_id = {ACCOUNT}\nsso_role_name = Ops\nregion = us-east-1\n\n\
             [profile modern]\nsso_session = corp\nsso_account_id = {ACCOUNT}\nsso_role_name = Ops\nregion = us-east-1\n\n\
             [sso-session corp]\nsso_start_url = https://corp.example/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n\n\
             [profile console]\nlogin_session = {login_session}\nregion = us-east-1\n\n\
             [profile far]\nsso_start_url = https://legacy.example/start\nsso_region = us-east-1\nsso_account_id = {ACCOUNT}\nsso_role_name = Ops\nregion = eu-west-1\n\n\
             [profile stale]\nsso_start_url = https://stale.example/start\nsso_region = us-east-1\nsso_account_id = {ACCOUNT}\nsso_role_name = Ops\nregion = us-east-1\n"
        ),
    );
    let sso_cache = |key: &str| {
        h.join(".aws/sso/cache").join(format!(
            "{}.json",
            hex::encode(sha1::Sha1::digest(key.as_bytes()))
        ))
    };
    write(
        &sso_cache("https://legacy.example/start"),
        &json!({"accessToken": "legacy-token", "expiresAt": rfc3339(3600),
                "region": "us-east-1", "startUrl": "https://legacy.example/start"})
        .to_string(),
    );
    // Expiring within the SDK's 5-minute refresh window: refreshed through OIDC.
    write(
        &sso_cache("corp"),
        &json!({"accessToken": "modern-token-old", "expiresAt": rfc3339(60),
                "refreshToken": "refresh-1", "clientId": "client", "clientSecret": "secret",
                "registrationExpiresAt": rfc3339(30 * 86_400),
                "region": "us-east-1", "startUrl": "https://corp.example/start"})
        .to_string(),
    );
    write(
        &sso_cache("https://stale.example/start"),
        &json!({"accessToken": "stale-token", "expiresAt": rfc3339(-3600),
                "region": "us-east-1", "startUrl": "https://stale.example/start"})
        .to_string(),
    );
    write(
        &h.join(".aws/login/cache").join(format!(
            "{}.json",
            hex::encode(sha2::Sha256::digest(login_session.as_bytes()))
        )),
        &json!({
            "accessToken": {"accessKeyId": creds["accessKeyId"], "secretAccessKey": creds["secretAccessKey"],
                            "sessionToken": creds["sessionToken"], "accountId": ACCOUNT, "expiresAt": rfc3339(3600)},
            "tokenType": "aws_sigv4", "refreshToken": "login-refresh",
            "clientId": "arn:aws:signin:::devtools/same-device",
            "dpopKey": "not used until a refresh"})
        .to_string(),
    );

    for profile in ["legacy", "modern", "console"] {
        let out = job_status(
            h,
            &url,
            [&job, &table, &front],
            &["--profile", profile],
            &[],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{profile}: {stderr}");
        assert!(
            stdout.contains(&format!("job {job}: scheduled")),
            "{profile}: {stdout}"
        );
    }
    let shown = seen.lock().unwrap().clone();
    assert!(shown.contains(&"legacy-token".to_string()), "{shown:?}");
    assert!(
        shown.contains(&"modern-token-refreshed".to_string()),
        "the sso-session token was refreshed through OIDC first: {shown:?}"
    );

    // The profile's region is the region (no --region, no AWS_REGION): the front, which serves
    // us-east-1, refuses a request signed for eu-west-1.
    let out = job_status(h, &url, [&job, &table, &front], &["--profile", "far"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("eu-west-1"), "{stderr}");

    // AWS_PROFILE works like --profile; an expired sign-in names the profile and the command.
    let out = job_status(
        h,
        &url,
        [&job, &table, &front],
        &[],
        &[("AWS_PROFILE", "stale")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("run `aws sso login --profile stale`"),
        "{stderr}"
    );
    assert!(
        stderr.lines().count() < 12,
        "a short message, not an SDK chain dump: {stderr}"
    );
}
