//! The AWS front (`tools/aws_front`): the one process every function, tool and test reaches the
//! stand-ins through. It runs moto in-process, verifies SigV4 with botocore, evaluates the
//! template's IAM policies for the principal that signed, refuses what AWS refuses on size, and
//! forwards OpenSearch and IoT Data Plane requests to osmem and the shadow service through one
//! endpoint per domain and per stack, as AWS gives one per domain and per account.
//!
//! This module starts it ([`start`], from files embedded in the binary, so `robofleet dev` works
//! outside the repository), talks to its admin API ([`FrontAdmin`]), and reads from the
//! evaluated template what the front must know ([`AccessModel`]): each role with its identity
//! policies, the resource policies (bucket, KMS key, domain access policy), and which resources
//! are encrypted with which key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fleet_process::{ManagedProcess, free_port};
use fleet_template::Stack;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::error::{ProvisionError, StandinError};
use crate::standins::Standin;

/// The front's files, written beside the logs at start: the package and moto's launcher.
const FILES: &[(&str, &str)] = &[
    (
        "aws_front/__init__.py",
        include_str!("../../../tools/aws_front/__init__.py"),
    ),
    (
        "aws_front/__main__.py",
        include_str!("../../../tools/aws_front/__main__.py"),
    ),
    (
        "aws_front/errors.py",
        include_str!("../../../tools/aws_front/errors.py"),
    ),
    (
        "aws_front/execute_api.py",
        include_str!("../../../tools/aws_front/execute_api.py"),
    ),
    (
        "aws_front/extensions.py",
        include_str!("../../../tools/aws_front/extensions.py"),
    ),
    (
        "aws_front/policy.py",
        include_str!("../../../tools/aws_front/policy.py"),
    ),
    (
        "aws_front/rpcv2cbor.py",
        include_str!("../../../tools/aws_front/rpcv2cbor.py"),
    ),
    (
        "aws_front/server.py",
        include_str!("../../../tools/aws_front/server.py"),
    ),
    (
        "aws_front/services.py",
        include_str!("../../../tools/aws_front/services.py"),
    ),
    (
        "aws_front/sigv4.py",
        include_str!("../../../tools/aws_front/sigv4.py"),
    ),
    (
        "moto_server.py",
        include_str!("../../../tools/moto_server.py"),
    ),
];

/// The local developer: every permission, signing with
/// [`fleet_aws::config::LOCAL_DEVELOPER_ACCESS_KEY_ID`]. The front registers this user as
/// `--developer-name robofleet-developer`.
pub const DEVELOPER_NAME: &str = "robofleet-developer";

/// A started front: its AWS endpoint (also the admin API) and the default OpenSearch endpoint.
#[derive(Debug)]
pub struct StartedFront {
    /// The AWS endpoint, moto behind it.
    pub aws: Standin,
    /// The OpenSearch endpoint of the front's default domain.
    pub opensearch_url: String,
}

/// Starts the front on free loopback ports in front of `osmem_url`, with moto inside, as
/// `region`/`account`; logs to `log_dir/aws-front.log`.
pub async fn start(
    venv: &Path,
    log_dir: &Path,
    osmem_url: &str,
    region: &str,
    account: &str,
) -> Result<StartedFront, StandinError> {
    crate::standins::moto_binary(venv)?;
    for (name, text) in FILES {
        let path = log_dir.join(name);
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|source| StandinError::Launcher {
                path: path.clone(),
                source,
            })?;
    }
    let (aws_port, os_port, iot_port) = (free_port()?, free_port()?, free_port()?);
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.arg(log_dir.join("aws_front"))
        .args(["--aws-port", &aws_port.to_string()])
        .args(["--opensearch-port", &os_port.to_string()])
        .args(["--iot-port", &iot_port.to_string()])
        .args(["--opensearch-backend", osmem_url])
        .args(["--region", region, "--account", account])
        .args(["--developer-name", DEVELOPER_NAME])
        .args([
            "--developer",
            &format!(
                "{}:{}",
                fleet_aws::config::LOCAL_DEVELOPER_ACCESS_KEY_ID,
                fleet_aws::config::LOCAL_DEVELOPER_SECRET_ACCESS_KEY
            ),
        ]);
    let mut p = ManagedProcess::spawn("aws-front", cmd, log_dir.join("aws-front.log"))?;
    let url = format!("http://127.0.0.1:{aws_port}");
    p.wait_http(&format!("{url}/_front/health"), Duration::from_secs(60))
        .await?;
    Ok(StartedFront {
        aws: Standin {
            url,
            process: Some(p),
        },
        opensearch_url: format!("http://127.0.0.1:{os_port}"),
    })
}

/// Credentials the front issued for a principal.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCredentials {
    /// Access key id (ASIA... for a role session).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token (roles only).
    pub session_token: Option<String>,
    /// Who the requests are made as (`arn:aws:sts::...:assumed-role/<role>/<session>`).
    pub principal_arn: String,
}

impl IssuedCredentials {
    /// As SDK credentials.
    pub fn to_sdk(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "robofleet-aws-front",
        )
    }

    /// As the variables Lambda gives a function (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                self.secret_access_key.clone(),
            ),
        ];
        if let Some(t) = &self.session_token {
            out.push(("AWS_SESSION_TOKEN".to_string(), t.clone()));
        }
        out
    }
}

/// The front's admin API (`/_front/...` on its AWS endpoint; loopback only, unsigned).
#[derive(Debug, Clone)]
pub struct FrontAdmin {
    url: String,
    http: reqwest::Client,
}

impl FrontAdmin {
    /// The admin API of the front at `aws_url`.
    pub fn new(aws_url: &str) -> Self {
        FrontAdmin {
            url: aws_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, route: &str, body: Option<Value>) -> Result<Value, ProvisionError> {
        let url = format!("{}/_front/{route}", self.url);
        let request = match &body {
            Some(b) => self.http.post(&url).json(b),
            None => self.http.get(&url),
        };
        let failed = |detail: String| ProvisionError::Front {
            route: route.to_string(),
            detail,
        };
        let resp = request
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| failed(fleet_aws::error::chain(&e)))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let why = value
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| text.clone(), str::to_string);
            return Err(failed(format!("{status}: {why}")));
        }
        Ok(value)
    }

    /// Whether the front answers: tells the front from a bare moto.
    pub async fn health(&self) -> Result<(), ProvisionError> {
        self.call("health", None).await.map(|_| ())
    }

    /// Registers `arn` (a role or a user) with its identity `policies`; requests signed with the
    /// returned credentials act as it. Registering again replaces the policies.
    pub async fn register_principal(
        &self,
        arn: &str,
        policies: &[Value],
        session: &str,
    ) -> Result<IssuedCredentials, ProvisionError> {
        let v = self
            .call(
                "principals",
                Some(json!({"arn": arn, "policies": policies, "sessionName": session})),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| ProvisionError::Front {
            route: "principals".into(),
            detail: format!("unexpected answer: {e}"),
        })
    }

    /// Sets (or with `None` removes) the resource policy of `resource_arn`.
    pub async fn resource_policy(
        &self,
        resource_arn: &str,
        policy: Option<&Value>,
    ) -> Result<(), ProvisionError> {
        self.call(
            "resource-policies",
            Some(json!({"resourceArn": resource_arn, "policy": policy})),
        )
        .await
        .map(|_| ())
    }

    /// Says `resource_arn` is encrypted with `key_arn`: callers then also need the KMS actions
    /// AWS performs for them on that key.
    pub async fn encrypted(&self, resource_arn: &str, key_arn: &str) -> Result<(), ProvisionError> {
        self.call(
            "encrypted",
            Some(json!({"resourceArn": resource_arn, "keyArn": key_arn})),
        )
        .await
        .map(|_| ())
    }

    /// The endpoint of the OpenSearch domain `domain_arn`, in front of `backend` (the front's
    /// default osmem when `None`). Called again, it keeps the endpoint and points it at the new
    /// backend: a cluster stood up again.
    pub async fn opensearch_domain(
        &self,
        domain_arn: &str,
        backend: Option<&str>,
    ) -> Result<String, ProvisionError> {
        let mut body = json!({"domainArn": domain_arn});
        if let Some(b) = backend {
            body["backend"] = json!(b);
        }
        let v = self.call("opensearch", Some(body)).await?;
        url_of(&v, "opensearch")
    }

    /// The IoT Data Plane endpoint of the stack `name`, in front of its shadow service.
    pub async fn iot_endpoint(&self, name: &str, backend: &str) -> Result<String, ProvisionError> {
        let v = self
            .call("iot", Some(json!({"name": name, "backend": backend})))
            .await?;
        url_of(&v, "iot")
    }

    /// Sends the authorized Invokes of these functions (unqualified ARNs) to the Invoke API at
    /// `backend` (`None`: back to moto).
    pub async fn lambda_backend(
        &self,
        function_arns: &[String],
        backend: Option<&str>,
    ) -> Result<(), ProvisionError> {
        self.call(
            "lambda",
            Some(json!({"functionArns": function_arns, "backend": backend})),
        )
        .await
        .map(|_| ())
    }

    /// Sends the authorized Step Functions calls on these state machines (StartExecution,
    /// DescribeExecution, ListExecutions) to the local runner's API at `backend` (`None`: back
    /// to moto).
    pub async fn states_backend(
        &self,
        machine_arns: &[String],
        backend: Option<&str>,
    ) -> Result<(), ProvisionError> {
        self.call(
            "states",
            Some(json!({"stateMachineArns": machine_arns, "backend": backend})),
        )
        .await
        .map(|_| ())
    }

    /// Serves the HTTP API `api_id` on a port of its own: `routes` are `{routeKey, functionArn,
    /// timeoutMs, authorization}`, the functions' Invoke API is `backend`. Returns its URL.
    pub async fn execute_api(
        &self,
        api_id: &str,
        backend: &str,
        routes: Vec<Value>,
    ) -> Result<String, ProvisionError> {
        let v = self
            .call(
                "execute-api",
                Some(json!({"apiId": api_id, "backend": backend, "routes": routes})),
            )
            .await?;
        url_of(&v, "execute-api")
    }

    /// Closes an endpoint opened by [`opensearch_domain`](Self::opensearch_domain) or
    /// [`iot_endpoint`](Self::iot_endpoint).
    pub async fn close(&self, url: &str) -> Result<(), ProvisionError> {
        self.call("close", Some(json!({"url": url})))
            .await
            .map(|_| ())
    }

    /// The front's counters (requests, allowed, denied, ...) and CPU per request.
    pub async fn stats(&self) -> Result<Value, ProvisionError> {
        self.call("stats", None).await
    }
}

fn url_of(v: &Value, route: &str) -> Result<String, ProvisionError> {
    v.get("url")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProvisionError::Front {
            route: route.to_string(),
            detail: format!("no url in the answer {v}"),
        })
}

// ---------------------------------------------------------------------------------------------
// What the template says about access
// ---------------------------------------------------------------------------------------------

/// A role of the template and its identity policies.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    /// Logical id.
    pub logical_id: String,
    /// Its ARN.
    pub arn: String,
    /// `Policies[].PolicyDocument`, evaluated.
    pub policies: Vec<Value>,
}

/// Everything the front needs to know about the template's access rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessModel {
    /// Roles by logical id.
    pub roles: BTreeMap<String, RoleSpec>,
    /// Resource ARN → resource policy (bucket policies, key policies, domain access policies).
    pub resource_policies: BTreeMap<String, Value>,
    /// Resource ARN → the ARN of the KMS key it is encrypted with.
    pub encrypted: BTreeMap<String, String>,
    /// The role of each function, by function logical id.
    pub function_roles: BTreeMap<String, String>,
    /// The role the topic rules act as (one for all of them), by logical id.
    pub rules_role: Option<String>,
    /// The role of each state machine, by state machine logical id.
    pub machine_roles: BTreeMap<String, String>,
}

fn unsupported(logical_id: &str, detail: impl Into<String>) -> ProvisionError {
    ProvisionError::Unsupported {
        logical_id: logical_id.to_string(),
        detail: detail.into(),
    }
}

/// A value of the evaluated template that must be known here (not deferred to the cloud).
fn known<'a>(v: &'a Value, logical_id: &str, what: &str) -> Result<&'a Value, ProvisionError> {
    if v.to_string().contains(fleet_template::DEFERRED_KEY) {
        return Err(unsupported(
            logical_id,
            format!("{what} depends on a value only the cloud knows ({v})"),
        ));
    }
    Ok(v)
}

/// Reads the access model from the evaluated template.
pub fn access_model(stack: &Stack) -> Result<AccessModel, ProvisionError> {
    let mut model = AccessModel::default();
    // KMS keys by every name a property may use for them: key id, key ARN, alias name.
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for r in stack.resources() {
        if r.type_ == "AWS::KMS::Key"
            && let Some(arn) = stack.arn(r)
        {
            keys.insert(r.physical_name.clone(), arn.clone());
            keys.insert(arn.clone(), arn);
        }
    }
    for r in stack.resources() {
        if r.type_ == "AWS::KMS::Alias"
            && let (Some(alias), Some(target)) = (
                r.properties.get("AliasName").and_then(Value::as_str),
                r.properties.get("TargetKeyId").and_then(Value::as_str),
            )
            && let Some(arn) = keys.get(target).cloned()
        {
            keys.insert(alias.to_string(), arn);
        }
    }
    let key_arn = |logical_id: &str, v: Option<&Value>| -> Result<Option<String>, ProvisionError> {
        let Some(v) = v else { return Ok(None) };
        let text = known(v, logical_id, "the KMS key")?
            .as_str()
            .ok_or_else(|| unsupported(logical_id, format!("KMS key {v} is not a string")))?;
        if text.starts_with("alias/aws/") {
            // An AWS managed key: its policy is AWS's, nothing for the front to check.
            return Ok(None);
        }
        keys.get(text).cloned().map(Some).ok_or_else(|| {
            unsupported(
                logical_id,
                format!("KMS key {text} is not a key or alias of this template"),
            )
        })
    };

    for r in stack.resources() {
        let id = r.logical_id.as_str();
        let p = &r.properties;
        match r.type_.as_str() {
            "AWS::IAM::Role" => {
                if p.get("ManagedPolicyArns").is_some() {
                    return Err(unsupported(
                        id,
                        "ManagedPolicyArns cannot be evaluated locally; use inline Policies",
                    ));
                }
                let mut policies = Vec::new();
                for policy in p
                    .get("Policies")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let doc = policy
                        .get("PolicyDocument")
                        .ok_or_else(|| unsupported(id, "a policy without a PolicyDocument"))?;
                    policies.push(known(doc, id, "a policy document")?.clone());
                }
                let arn = stack.arn(r).unwrap_or_default();
                model.roles.insert(
                    id.to_string(),
                    RoleSpec {
                        logical_id: id.to_string(),
                        arn,
                        policies,
                    },
                );
            }
            "AWS::KMS::Key" => {
                if let Some(policy) = p.get("KeyPolicy") {
                    model.resource_policies.insert(
                        stack.arn(r).unwrap_or_default(),
                        known(policy, id, "the key policy")?.clone(),
                    );
                }
            }
            "AWS::S3::BucketPolicy" => {
                let bucket = p
                    .get("Bucket")
                    .and_then(Value::as_str)
                    .ok_or_else(|| unsupported(id, "Bucket must name a bucket"))?;
                let doc = p
                    .get("PolicyDocument")
                    .ok_or_else(|| unsupported(id, "no PolicyDocument"))?;
                model.resource_policies.insert(
                    format!("arn:aws:s3:::{bucket}"),
                    known(doc, id, "the bucket policy")?.clone(),
                );
            }
            "AWS::OpenSearchService::Domain" => {
                if let Some(policy) = p.get("AccessPolicies") {
                    model.resource_policies.insert(
                        stack.arn(r).unwrap_or_default(),
                        known(policy, id, "the access policy")?.clone(),
                    );
                }
            }
            "AWS::Kinesis::Stream" => {
                if let Some(key) = key_arn(id, p.pointer("/StreamEncryption/KeyId"))? {
                    model
                        .encrypted
                        .insert(stack.arn(r).unwrap_or_default(), key);
                }
            }
            "AWS::SQS::Queue" => {
                if let Some(key) = key_arn(id, p.get("KmsMasterKeyId"))? {
                    model
                        .encrypted
                        .insert(stack.arn(r).unwrap_or_default(), key);
                }
            }
            "AWS::DynamoDB::Table" => {
                if let Some(key) = key_arn(id, p.pointer("/SSESpecification/KMSMasterKeyId"))? {
                    model
                        .encrypted
                        .insert(stack.arn(r).unwrap_or_default(), key);
                }
            }
            "AWS::S3::Bucket" => {
                let rule = p.pointer(
                    "/BucketEncryption/ServerSideEncryptionConfiguration/0/ServerSideEncryptionByDefault",
                );
                if rule
                    .and_then(|d| d.get("SSEAlgorithm"))
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.starts_with("aws:kms"))
                    && let Some(key) = key_arn(id, rule.and_then(|d| d.get("KMSMasterKeyID")))?
                {
                    model
                        .encrypted
                        .insert(stack.arn(r).unwrap_or_default(), key);
                }
            }
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => {
                let role = p.get("Role").ok_or_else(|| {
                    unsupported(
                        id,
                        "a function without an explicit Role (SAM's generated roles from Policies are not evaluated locally)",
                    )
                })?;
                let role = known(role, id, "the function's role")?
                    .as_str()
                    .unwrap_or_default();
                let logical = role_logical_id(stack, role).ok_or_else(|| {
                    unsupported(id, format!("role {role} is not in the template"))
                })?;
                model.function_roles.insert(id.to_string(), logical);
            }
            "AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine" => {
                let role = p
                    .get("Role")
                    .or_else(|| p.get("RoleArn"))
                    .ok_or_else(|| unsupported(id, "a state machine without an explicit Role"))?;
                let role = known(role, id, "the state machine's role")?
                    .as_str()
                    .unwrap_or_default();
                let logical = role_logical_id(stack, role).ok_or_else(|| {
                    unsupported(id, format!("role {role} is not in the template"))
                })?;
                model.machine_roles.insert(id.to_string(), logical);
            }
            "AWS::IoT::TopicRule" => {
                let mut roles: Vec<&str> = Vec::new();
                collect_role_arns(p, &mut roles);
                for role in roles {
                    let logical = role_logical_id(stack, role).ok_or_else(|| {
                        unsupported(id, format!("rule role {role} is not in the template"))
                    })?;
                    match &model.rules_role {
                        Some(existing) if *existing != logical => {
                            return Err(unsupported(
                                id,
                                format!(
                                    "the local rules engine acts as one role for every rule; this rule uses {logical}, another uses {existing}"
                                ),
                            ));
                        }
                        _ => model.rules_role = Some(logical),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(model)
}

/// Every `RoleArn` under a topic rule's payload (actions and the error action).
fn collect_role_arns<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "RoleArn"
                    && let Some(s) = child.as_str()
                {
                    out.push(s);
                } else {
                    collect_role_arns(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_role_arns(i, out)),
        _ => {}
    }
}

fn role_logical_id(stack: &Stack, arn: &str) -> Option<String> {
    stack
        .resources()
        .filter(|r| r.type_ == "AWS::IAM::Role")
        .find(|r| stack.arn(r).as_deref() == Some(arn))
        .map(|r| r.logical_id.clone())
}

/// Registers the access model with the front: resource policies, encrypted resources, and each
/// role (credentials returned by role logical id, with the session named after the stack).
pub async fn register(
    admin: &FrontAdmin,
    model: &AccessModel,
    session: &str,
) -> Result<BTreeMap<String, IssuedCredentials>, ProvisionError> {
    for (arn, policy) in &model.resource_policies {
        admin.resource_policy(arn, Some(policy)).await?;
    }
    for (arn, key) in &model.encrypted {
        admin.encrypted(arn, key).await?;
    }
    let mut out = BTreeMap::new();
    for (id, role) in &model.roles {
        let creds = admin
            .register_principal(&role.arn, &role.policies, session)
            .await?;
        out.insert(id.clone(), creds);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_front_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/aws_front");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py"))
            .map(|n| format!("aws_front/{n}"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = FILES
            .iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| n.starts_with("aws_front/"))
            .collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "add new tools/aws_front files to FILES");
    }

    #[test]
    fn the_standins_script_registers_the_same_developer() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/standins.sh"),
        )
        .unwrap();
        for needle in [
            fleet_aws::config::LOCAL_DEVELOPER_ACCESS_KEY_ID,
            fleet_aws::config::LOCAL_DEVELOPER_SECRET_ACCESS_KEY,
            DEVELOPER_NAME,
        ] {
            assert!(script.contains(needle), "tools/standins.sh lacks {needle}");
        }
    }

    fn real() -> Stack {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let opts = crate::dev::load_options("am", "us-east-1", &[]);
        fleet_template::load(&path, &opts).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_template_gives_each_function_its_role_and_every_key_its_resources() {
        let stack = real();
        let m = access_model(&stack).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m.function_roles["MissionIngestFunction"],
            "MissionIngestRole"
        );
        assert_eq!(
            m.function_roles["ShadowIndexerFunction"],
            "ShadowIndexerRole"
        );
        assert_eq!(m.rules_role.as_deref(), Some("IotRulesRole"));
        assert_eq!(m.machine_roles["JobLoopStateMachine"], "JobLoopRole");
        assert_eq!(m.machine_roles["JobMapStateMachine"], "JobMapRole");
        assert_eq!(
            m.roles["MissionIngestRole"].arn,
            "arn:aws:iam::123456789012:role/am-MissionIngestRole"
        );
        assert!(!m.roles["MissionIngestRole"].policies.is_empty());
        let key = "arn:aws:kms:us-east-1:123456789012:key/am-DataKey";
        for resource in [
            "arn:aws:kinesis:us-east-1:123456789012:stream/am-missions",
            "arn:aws:kinesis:us-east-1:123456789012:stream/am-shadows",
            "arn:aws:sqs:us-east-1:123456789012:am-rejects",
            "arn:aws:dynamodb:us-east-1:123456789012:table/am-MissionsTable",
            "arn:aws:s3:::am-failedbatchesbucket",
        ] {
            assert_eq!(
                m.encrypted.get(resource).map(String::as_str),
                Some(key),
                "{resource}"
            );
        }
        assert!(m.resource_policies.contains_key(key));
        assert!(
            m.resource_policies
                .contains_key("arn:aws:s3:::am-failedbatchesbucket")
        );
        assert!(
            m.resource_policies
                .keys()
                .any(|k| k.starts_with("arn:aws:es:us-east-1:123456789012:domain/"))
        );
    }
}
