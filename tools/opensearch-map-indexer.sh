#!/usr/bin/env bash
# Maps the shadow indexer's IAM role to a least-privilege role in the OpenSearch security plugin.
#
# Why: CloudFormation can configure fine-grained access control, but it cannot create security
# plugin roles or role mappings. The template makes OpenSearchMasterUserArn (your
# administrators' role, required) the master user; the indexer's role gets nothing until this
# script, run ONCE after the first deploy with that administrator's credentials, maps it to a
# role with only what it needs:
#   - cluster: bulk writes, cluster health, read/put of the index template;
#   - indices robots and robots-*: write, create index, manage aliases and mappings.
# Every request the indexer makes is scoped to those indices. In particular it checks the alias
# with `HEAD /robots/_alias/robots` (index-scoped, allowed by manage_aliases on robots*), not
# `HEAD /_alias/robots`: without an index in the path the security plugin checks the request
# against every index, and a role limited to robots* gets 403.
#
# Runs on bash 3.2 (macOS): tools/lint_bash32.py checks it in make test.
# Usage: tools/opensearch-map-indexer.sh <stack-name> <region> [--dry-run]
# Needs: aws CLI (to read the stack outputs), curl >= 7.75 (--aws-sigv4), and the master
# user's credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN).
set -euo pipefail

stack=${1:?usage: opensearch-map-indexer.sh <stack-name> <region> [--dry-run]}
region=${2:?usage: opensearch-map-indexer.sh <stack-name> <region> [--dry-run]}
dry_run=${3:-}
role_name=robofleet_indexer

output() {
  aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

if [ "$dry_run" = "--dry-run" ]; then
  endpoint="https://search-example.$region.es.amazonaws.com"
  indexer_role="arn:aws:iam::123456789012:role/$stack-ShadowIndexerRole-EXAMPLE"
  probe_role="arn:aws:iam::123456789012:role/$stack-BreakerProbeRole-EXAMPLE"
else
  endpoint=$(output OpenSearchEndpoint)
  indexer_role=$(output ShadowIndexerRoleArn)
  probe_role=$(output BreakerProbeRoleArn)
fi

role_body=$(cat <<JSON
{
  "description": "Robofleet shadow indexer: bulk writes to the robots alias and its indices",
  "cluster_permissions": [
    "cluster_monitor",
    "indices:data/write/bulk",
    "indices:admin/index_template/get",
    "indices:admin/index_template/put"
  ],
  "index_permissions": [
    {
      "index_patterns": ["robots", "robots-*", "robots_breaker_canary"],
      "allowed_actions": ["crud", "create_index", "manage_aliases", "indices:admin/mapping/put", "indices_monitor"]
    }
  ]
}
JSON
)
mapping_body=$(cat <<JSON
{ "backend_roles": ["$indexer_role", "$probe_role"] }
JSON
)

call() { # method path body
  if [ "$dry_run" = "--dry-run" ]; then
    printf '%s %s%s\n%s\n\n' "$1" "$endpoint" "$2" "$3"
    return
  fi
  local token=()
  [ -n "${AWS_SESSION_TOKEN:-}" ] && token=(-H "x-amz-security-token: $AWS_SESSION_TOKEN")
  curl --fail-with-body -sS -X "$1" "$endpoint$2" \
    --aws-sigv4 "aws:amz:$region:es" --user "${AWS_ACCESS_KEY_ID:?}:${AWS_SECRET_ACCESS_KEY:?}" \
    ${token[@]+"${token[@]}"} -H 'content-type: application/json' --data "$3"
  echo
}

call PUT "/_plugins/_security/api/roles/$role_name" "$role_body"
call PUT "/_plugins/_security/api/rolesmapping/$role_name" "$mapping_body"
echo "opensearch-map-indexer: $indexer_role and $probe_role are mapped to $role_name on $endpoint"
