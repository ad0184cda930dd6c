#!/bin/sh
# Marks the freshly built AMI IMDSv2-only (ImdsSupport v2.0), so every
# instance launched from it requires session tokens for instance metadata,
# whatever the launcher asks for. Run by Packer's shell-local post-processor
# on the machine running `packer build`, with the AWS CLI and the same
# credentials. Newer Packer (amazon plugin >= 1.1) can do this itself with
# `imds_support = "v2.0"`; Packer 1.6.6 cannot, hence this script.
#
# Inputs (environment): REQUIRE_IMDSV2 (true|false), MANIFEST (Packer's
# manifest post-processor output, whose last build names the AMIs).
set -eu

: "${MANIFEST:?MANIFEST must be set}"
if [ "${REQUIRE_IMDSV2:-true}" != "true" ]; then
	echo "require-imdsv2.sh: REQUIRE_IMDSV2=${REQUIRE_IMDSV2}: leaving the AMI's IMDS support as it is"
	exit 0
fi
if ! command -v aws >/dev/null 2>&1; then
	echo "require-imdsv2.sh: the AWS CLI is needed to mark the AMI IMDSv2-only; install it, or build with -var require_imdsv2=false" >&2
	exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
	echo "require-imdsv2.sh: python3 is needed to read $MANIFEST" >&2
	exit 1
fi

# artifact_id is "region:ami-id[,region:ami-id...]" (one per copied region).
artifacts=$(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
last = [b for b in m["builds"] if b["packer_run_uuid"] == m["last_run_uuid"]][-1]
print(last["artifact_id"].replace(",", " "))' "$MANIFEST")

for artifact in $artifacts; do
	region=${artifact%%:*}
	ami=${artifact#*:}
	echo "require-imdsv2.sh: marking $ami in $region IMDSv2-only"
	aws ec2 modify-image-attribute --region "$region" --image-id "$ami" --attribute imdsSupport --value v2.0
done
