#!/usr/bin/env bash
# Run by `pulumi up` before the image build (resource `app-push-login`, components/image.py):
# asks the Docker engine to log in to the registry with the push credentials, in a throwaway
# config dir so nothing is stored, and fails naming the registry and the settings to fix.
# pulumi-docker's own push error ("unauthorized: authentication required") names neither, and
# comes only after the build.
#
#   MCP_REGISTRY=ghcr.io MCP_PUSH_USER=feustey bash components/scripts/push-login-check.sh < token
set -euo pipefail
: "${MCP_REGISTRY:?set MCP_REGISTRY (e.g. ghcr.io)}" "${MCP_PUSH_USER:?set MCP_PUSH_USER}"
command -v docker >/dev/null 2>&1 \
  || { echo "checking the push login to $MCP_REGISTRY needs the docker CLI on PATH" >&2; exit 1; }
config_dir=$(mktemp -d)
trap 'rm -rf "$config_dir"' EXIT
if ! out=$(docker --config "$config_dir" login "$MCP_REGISTRY" -u "$MCP_PUSH_USER" --password-stdin 2>&1); then
  printf '%s\n' "the registry $MCP_REGISTRY refused to log in '$MCP_PUSH_USER' for the push" \
    "(mcp:image.pushUser / mcp:registryPushPassword): $out" \
    "Nothing was built, pushed or deployed. Fix: set a token with write access to the" \
    "repository with: pulumi config set --secret mcp:registryPushPassword" >&2
  exit 1
fi
echo "push login to $MCP_REGISTRY as $MCP_PUSH_USER: ok"
