#!/bin/bash
# fetch-secret.sh PROJECT SECRET OUT: the secret's latest version into OUT (mode 0600),
# with the VM service account's token from the metadata server. Container-Optimized
# OS has curl, grep, sed and base64, and no gcloud or jq.
set -euo pipefail
project=$1 secret=$2 out=$3
metadata=http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token
token=$(curl -sSf --max-time 10 -H 'Metadata-Flavor: Google' "$metadata" |
  grep -o '"access_token":"[^"]*"' | sed 's/.*:"\(.*\)"/\1/')
url="https://secretmanager.googleapis.com/v1/projects/$project/secrets/$secret/versions/latest:access"
umask 077
mkdir -p "$(dirname "$out")"
curl -sSf --max-time 10 -H "Authorization: Bearer $token" "$url" |
  grep -o '"data": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/' | base64 -d >"$out.tmp"
mv "$out.tmp" "$out"
