//! What `!Ref` and `!GetAtt` of a resource evaluate to. In the cloud CloudFormation knows; here a
//! [`PhysicalResolver`] decides. [`DefaultResolver`] gives the values AWS would give (names,
//! ARNs, queue URLs) built from the physical name; the local stack wraps it to return its
//! stand-ins' values (moto's queue URLs, the osmem endpoint) instead.

/// One resource, as a resolver sees it.
#[derive(Debug, Clone, Copy)]
pub struct ResourceRef<'a> {
    pub logical_id: &'a str,
    /// CloudFormation type, e.g. `AWS::SQS::Queue`.
    pub type_: &'a str,
    /// The name the resource has in the account: its name property, or a generated name.
    pub physical_name: &'a str,
    pub stack_name: &'a str,
    pub region: &'a str,
    pub account_id: &'a str,
    pub partition: &'a str,
}

/// Decides what `Ref` and `Fn::GetAtt` of a resource evaluate to. `None` means "not known
/// here": the value becomes a deferred marker (see [`crate::deferred`]) instead of a guess.
pub trait PhysicalResolver {
    /// `!Ref Resource`.
    fn reference(&self, r: &ResourceRef<'_>) -> Option<String> {
        default_reference(r)
    }
    /// `!Ref Function.Alias` for a SAM function with `AutoPublishAlias`.
    fn alias_reference(&self, r: &ResourceRef<'_>, alias: &str) -> Option<String> {
        Some(format!("{}:{alias}", lambda_arn(r)))
    }
    /// `!GetAtt Resource.Attribute`.
    fn attribute(&self, r: &ResourceRef<'_>, attribute: &str) -> Option<String> {
        default_attribute(r, attribute)
    }
}

/// The values AWS would return, derived from names (no network).
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultResolver;

impl PhysicalResolver for DefaultResolver {}

fn lambda_arn(r: &ResourceRef<'_>) -> String {
    format!(
        "arn:{}:lambda:{}:{}:function:{}",
        r.partition, r.region, r.account_id, r.physical_name
    )
}

/// The queue URL AWS gives a queue in this region and account.
pub fn sqs_queue_url(r: &ResourceRef<'_>) -> String {
    format!(
        "https://sqs.{}.amazonaws.com/{}/{}",
        r.region, r.account_id, r.physical_name
    )
}

/// The id API Gateway would give an API: 10 characters of a-z and 0-9, here derived from the
/// physical name so that it is the same on every load.
pub fn api_id(r: &ResourceRef<'_>) -> String {
    // FNV-1a over the name, written in base 36.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in r.physical_name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..10)
        .map(|_| {
            let c = alphabet[(h % 36) as usize] as char;
            h /= 36;
            c
        })
        .collect()
}

/// What `Ref` returns per type in CloudFormation, as far as it can be known offline.
pub fn default_reference(r: &ResourceRef<'_>) -> Option<String> {
    let name = r.physical_name.to_string();
    match r.type_ {
        "AWS::SQS::Queue" => Some(sqs_queue_url(r)),
        "AWS::SNS::Topic"
        | "AWS::StepFunctions::StateMachine"
        | "AWS::Serverless::StateMachine" => default_attribute(r, "Arn"),
        // A key's id is a UUID in AWS; offline, its (stack-unique) physical name stands for it.
        "AWS::KMS::Key" => Some(name),
        "AWS::Serverless::HttpApi" | "AWS::ApiGatewayV2::Api" => Some(api_id(r)),
        "AWS::Kinesis::Stream"
        | "AWS::DynamoDB::Table"
        | "AWS::S3::Bucket"
        | "AWS::Serverless::Function"
        | "AWS::Lambda::Function"
        | "AWS::IAM::Role"
        | "AWS::IAM::ManagedPolicy"
        | "AWS::Logs::LogGroup"
        | "AWS::IoT::TopicRule"
        | "AWS::IoT::Policy"
        | "AWS::IoT::Thing"
        | "AWS::OpenSearchService::Domain"
        | "AWS::KMS::Alias"
        | "AWS::CloudWatch::Alarm"
        | "AWS::CloudWatch::Dashboard"
        | "AWS::Events::Rule"
        | "AWS::Scheduler::Schedule" => Some(name),
        _ => None,
    }
}

/// What `Fn::GetAtt` returns per type and attribute in CloudFormation, offline.
pub fn default_attribute(r: &ResourceRef<'_>, attribute: &str) -> Option<String> {
    let (p, reg, acct, name) = (r.partition, r.region, r.account_id, r.physical_name);
    let v = match (r.type_, attribute) {
        ("AWS::Kinesis::Stream", "Arn") => format!("arn:{p}:kinesis:{reg}:{acct}:stream/{name}"),
        ("AWS::DynamoDB::Table", "Arn") => format!("arn:{p}:dynamodb:{reg}:{acct}:table/{name}"),
        ("AWS::DynamoDB::Table", "StreamArn") => {
            format!("arn:{p}:dynamodb:{reg}:{acct}:table/{name}/stream/1970-01-01T00:00:00.000")
        }
        ("AWS::SQS::Queue", "Arn") => format!("arn:{p}:sqs:{reg}:{acct}:{name}"),
        ("AWS::SQS::Queue", "QueueName") => name.to_string(),
        ("AWS::SQS::Queue", "QueueUrl") => sqs_queue_url(r),
        ("AWS::SNS::Topic", "TopicArn" | "Arn") => format!("arn:{p}:sns:{reg}:{acct}:{name}"),
        ("AWS::SNS::Topic", "TopicName") => name.to_string(),
        ("AWS::S3::Bucket", "Arn") => format!("arn:{p}:s3:::{name}"),
        ("AWS::S3::Bucket", "DomainName") => format!("{name}.s3.amazonaws.com"),
        ("AWS::S3::Bucket", "RegionalDomainName") => format!("{name}.s3.{reg}.amazonaws.com"),
        ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => lambda_arn(r),
        ("AWS::IAM::Role", "Arn") => format!("arn:{p}:iam::{acct}:role/{name}"),
        ("AWS::IAM::Role", "RoleId") => format!("AROA{}", r.logical_id.to_uppercase()),
        ("AWS::Logs::LogGroup", "Arn") => format!("arn:{p}:logs:{reg}:{acct}:log-group:{name}:*"),
        ("AWS::KMS::Key", "Arn") => format!("arn:{p}:kms:{reg}:{acct}:key/{name}"),
        ("AWS::KMS::Key", "KeyId") => name.to_string(),
        ("AWS::IoT::TopicRule", "Arn") => format!("arn:{p}:iot:{reg}:{acct}:rule/{name}"),
        ("AWS::IoT::Policy", "Arn") => format!("arn:{p}:iot:{reg}:{acct}:policy/{name}"),
        ("AWS::OpenSearchService::Domain", "Arn" | "DomainArn") => {
            format!("arn:{p}:es:{reg}:{acct}:domain/{name}")
        }
        ("AWS::OpenSearchService::Domain", "DomainEndpoint") => {
            format!("search-{name}-local.{reg}.es.amazonaws.com")
        }
        ("AWS::CloudWatch::Alarm", "Arn") => {
            format!("arn:{p}:cloudwatch:{reg}:{acct}:alarm:{name}")
        }
        ("AWS::Events::Rule", "Arn") => format!("arn:{p}:events:{reg}:{acct}:rule/{name}"),
        ("AWS::Scheduler::Schedule", "Arn") => {
            format!("arn:{p}:scheduler:{reg}:{acct}:schedule/default/{name}")
        }
        ("AWS::StepFunctions::StateMachine" | "AWS::Serverless::StateMachine", "Arn") => {
            format!("arn:{p}:states:{reg}:{acct}:stateMachine:{name}")
        }
        ("AWS::StepFunctions::StateMachine" | "AWS::Serverless::StateMachine", "Name") => {
            name.to_string()
        }
        ("AWS::Serverless::HttpApi" | "AWS::ApiGatewayV2::Api", "ApiEndpoint") => {
            format!("https://{}.execute-api.{reg}.amazonaws.com", api_id(r))
        }
        ("AWS::Serverless::HttpApi" | "AWS::ApiGatewayV2::Api", "ApiId") => api_id(r),
        _ => return None,
    };
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r<'a>(type_: &'a str, name: &'a str) -> ResourceRef<'a> {
        ResourceRef {
            logical_id: "L",
            type_,
            physical_name: name,
            stack_name: "s",
            region: "us-east-1",
            account_id: "123456789012",
            partition: "aws",
        }
    }

    #[test]
    fn queue_ref_is_its_url_and_arn_is_an_arn() {
        let q = r("AWS::SQS::Queue", "s-rejects");
        assert_eq!(
            DefaultResolver.reference(&q).unwrap(),
            "https://sqs.us-east-1.amazonaws.com/123456789012/s-rejects"
        );
        assert_eq!(
            DefaultResolver.attribute(&q, "Arn").unwrap(),
            "arn:aws:sqs:us-east-1:123456789012:s-rejects"
        );
    }

    #[test]
    fn stream_and_table_arns_have_their_shapes() {
        assert_eq!(
            default_attribute(&r("AWS::Kinesis::Stream", "s-m"), "Arn").unwrap(),
            "arn:aws:kinesis:us-east-1:123456789012:stream/s-m"
        );
        assert_eq!(
            default_attribute(&r("AWS::DynamoDB::Table", "t"), "Arn").unwrap(),
            "arn:aws:dynamodb:us-east-1:123456789012:table/t"
        );
        assert_eq!(
            default_attribute(&r("AWS::S3::Bucket", "b"), "Arn").unwrap(),
            "arn:aws:s3:::b"
        );
    }

    #[test]
    fn unknown_attribute_is_not_guessed() {
        assert!(default_attribute(&r("AWS::Kinesis::Stream", "s"), "Nope").is_none());
        assert!(default_reference(&r("AWS::EC2::VPC", "v")).is_none());
    }

    #[test]
    fn alias_reference_is_the_qualified_function_arn() {
        let f = r("AWS::Serverless::Function", "s-fn");
        assert_eq!(
            DefaultResolver.alias_reference(&f, "live").unwrap(),
            "arn:aws:lambda:us-east-1:123456789012:function:s-fn:live"
        );
    }
}
