#!/usr/bin/env bash
# Usage: vault-login.sh ROLE   (previewer or applier; needs permissions: id-token: write)
set -euo pipefail
jwt=$(curl -sSf -H "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
        "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=$AUDIENCE" | jq -r .value)
token=$(jq -n --arg role "$1" --arg jwt "$jwt" '{role: $role, jwt: $jwt}' \
        | curl -sSf --data @- "$VAULT_ADDR/v1/auth/ci/login" | jq -r .auth.client_token)
echo "::add-mask::$token"
echo "VAULT_TOKEN=$token" >> "$GITHUB_ENV"
