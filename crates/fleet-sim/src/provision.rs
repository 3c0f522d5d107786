//! `robofleet sim provision --count N`: the test robots a run against IoT Core needs: a thing,
//! an active certificate and its key per robot, the stack's robot policy attached to the
//! certificate, the certificate attached to the thing. The certificates and keys are written to
//! `--certs-dir` as `<thing>.cert.pem` and `<thing>.private.key`, where `robofleet sim
//! --certs-dir` reads them. `robofleet sim cleanup` removes what this made.
//!
//! The IoT control plane limits each API's requests per second (CreateThing,
//! CreateKeysAndCertificate, AttachPolicy and AttachThingPrincipal are in the tens per second by
//! default), so robots are made `--concurrency` at a time and the calls are paced to `--tps`
//! per API: 10,000 robots at 10/s take about 17 minutes. A robot whose thing and certificate
//! files exist is skipped, so a provision that stopped can be run again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::error::SimError;
use crate::mqtt::ConnectLimiter;

/// `robofleet sim provision`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProvisionArgs {
    /// Robots to make: `<prefix>-000000` to `<prefix>-<count-1>`.
    #[arg(long)]
    pub count: u64,
    /// Thing name prefix (the same `--prefix` the run uses).
    #[arg(long, default_value = "rb")]
    pub prefix: String,
    /// The IoT policy to attach to each certificate: the stack's `RobotPolicyName` output, so
    /// test robots have exactly the rights of real ones.
    #[arg(long)]
    pub policy: String,
    /// Where to write `<thing>.cert.pem` and `<thing>.private.key`.
    #[arg(long)]
    pub certs_dir: PathBuf,
    /// Requests per second per control-plane API.
    #[arg(long, default_value_t = 10.0)]
    pub tps: f64,
    /// Robots made at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Endpoint URL of the IoT control plane (the local stack's AWS front); unset: AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint: Option<String>,
}

/// What a provision made.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProvisionReport {
    pub things_created: u64,
    pub certificates_created: u64,
    /// Robots whose thing and files were already there.
    pub skipped: u64,
    pub errors: Vec<String>,
}

/// The thing name of robot `k`.
pub fn thing_name(prefix: &str, k: u64) -> String {
    crate::args::robot_id(prefix, k)
}

fn cert_paths(dir: &Path, thing: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{thing}.cert.pem")),
        dir.join(format!("{thing}.private.key")),
    )
}

/// One pacer per API.
struct Pacers {
    create_thing: ConnectLimiter,
    create_cert: ConnectLimiter,
    attach_policy: ConnectLimiter,
    attach_thing: ConnectLimiter,
}

/// Makes the robots.
pub async fn provision(
    client: &aws_sdk_iot::Client,
    args: &ProvisionArgs,
) -> Result<ProvisionReport, SimError> {
    if args.count == 0 {
        return Err(SimError::arg("--count", "must be at least 1"));
    }
    if args.tps <= 0.0 {
        return Err(SimError::arg("--tps", "must be above 0"));
    }
    std::fs::create_dir_all(&args.certs_dir)
        .map_err(|e| SimError::arg("--certs-dir", format!("{}: {e}", args.certs_dir.display())))?;
    client
        .get_policy()
        .policy_name(&args.policy)
        .send()
        .await
        .map_err(|e| {
            SimError::arg(
                "--policy",
                format!(
                    "{}: {} (pass the stack's RobotPolicyName output)",
                    args.policy,
                    fleet_aws::error::describe(&e)
                ),
            )
        })?;
    let pacers = Arc::new(Pacers {
        create_thing: ConnectLimiter::new(args.tps),
        create_cert: ConnectLimiter::new(args.tps),
        attach_policy: ConnectLimiter::new(args.tps),
        attach_thing: ConnectLimiter::new(args.tps),
    });
    let results: Vec<Result<bool, String>> = futures::stream::iter(0..args.count)
        .map(|k| {
            let pacers = pacers.clone();
            async move { one(client, args, &pacers, &thing_name(&args.prefix, k)).await }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let mut report = ProvisionReport::default();
    for r in results {
        match r {
            Ok(true) => {
                report.things_created += 1;
                report.certificates_created += 1;
            }
            Ok(false) => report.skipped += 1,
            Err(e) => report.errors.push(e),
        }
    }
    Ok(report)
}

/// Makes one robot; `Ok(false)`: it was already there.
async fn one(
    client: &aws_sdk_iot::Client,
    args: &ProvisionArgs,
    pacers: &Pacers,
    thing: &str,
) -> Result<bool, String> {
    let (cert_path, key_path) = cert_paths(&args.certs_dir, thing);
    let err = |what: &str, e: String| format!("{thing}: {what}: {e}");
    // Made before: its files are written only once it is whole (thing, certificate, policy).
    if cert_path.exists() && key_path.exists() {
        let attached = client
            .list_thing_principals()
            .thing_name(thing)
            .send()
            .await
            .is_ok_and(|p| !p.principals().is_empty());
        if attached {
            return Ok(false);
        }
    }
    let exists = client
        .describe_thing()
        .thing_name(thing)
        .send()
        .await
        .is_ok();
    if !exists {
        pacers.create_thing.acquire().await;
        client
            .create_thing()
            .thing_name(thing)
            .send()
            .await
            .map_err(|e| err("CreateThing", fleet_aws::error::describe(&e)))?;
    }
    pacers.create_cert.acquire().await;
    let cert = client
        .create_keys_and_certificate()
        .set_as_active(true)
        .send()
        .await
        .map_err(|e| err("CreateKeysAndCertificate", fleet_aws::error::describe(&e)))?;
    let arn = cert.certificate_arn().unwrap_or_default().to_string();
    let pem = cert.certificate_pem().unwrap_or_default();
    let key = cert
        .key_pair()
        .and_then(|k| k.private_key())
        .unwrap_or_default();
    let attached = async {
        pacers.attach_policy.acquire().await;
        client
            .attach_policy()
            .policy_name(&args.policy)
            .target(&arn)
            .send()
            .await
            .map_err(|e| err("AttachPolicy", fleet_aws::error::describe(&e)))?;
        pacers.attach_thing.acquire().await;
        client
            .attach_thing_principal()
            .thing_name(thing)
            .principal(&arn)
            .send()
            .await
            .map_err(|e| err("AttachThingPrincipal", fleet_aws::error::describe(&e)))?;
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = attached {
        // Leave no active certificate behind: the next run makes a new one.
        let id = cert.certificate_id().unwrap_or_default();
        let _ = client
            .detach_policy()
            .policy_name(&args.policy)
            .target(&arn)
            .send()
            .await;
        let _ = client
            .update_certificate()
            .certificate_id(id)
            .new_status(aws_sdk_iot::types::CertificateStatus::Inactive)
            .send()
            .await;
        let _ = client.delete_certificate().certificate_id(id).send().await;
        return Err(e);
    }
    // The files last: their presence means the robot is whole.
    std::fs::write(&cert_path, pem).map_err(|e| err("writing the certificate", e.to_string()))?;
    write_private(&key_path, key).map_err(|e| err("writing the key", e.to_string()))?;
    Ok(true)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
    std::fs::write(path, key)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// How long a provision of `count` robots takes at `tps` calls per second per API (each robot
/// needs one call of each of four APIs, paced separately).
pub fn estimated(count: u64, tps: f64) -> Duration {
    Duration::from_secs_f64(count as f64 / tps.max(0.001))
}
