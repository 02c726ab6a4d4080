#!/usr/bin/env bash
# Run by `pulumi up` before every image build (resource `app-tag-guard`, components/image.py),
# again whenever the tag or the build context changes: refuses to build when the tag is
# already in the registry. A pushed tag is never pushed again with other content: a rollback
# to it (rollback.py) must find what served under it, and CI's tags are commit SHAs, so new
# content always comes with a new tag.
#
#   bash components/scripts/tag-guard.sh ghcr.io/owner/mcp:3f2c1ab... [PUSH_USER < push token]
set -euo pipefail
MCP_IMAGE_REF=${1:?usage: tag-guard.sh IMAGE_REF [PUSH_USER] (e.g. ghcr.io/owner/mcp:3f2c1ab)}
MCP_PUSH_USER=${2:-}
command -v docker >/dev/null 2>&1 \
  || { echo "checking whether $MCP_IMAGE_REF exists needs the docker CLI on PATH" >&2; exit 1; }
config=()
if [[ -n $MCP_PUSH_USER ]]; then
  config_dir=$(mktemp -d)
  trap 'rm -rf "$config_dir"' EXIT
  registry=${MCP_IMAGE_REF%%/*}
  docker --config "$config_dir" login "$registry" -u "$MCP_PUSH_USER" --password-stdin >/dev/null 2>&1 \
    || { echo "the registry $registry refused the push login of '$MCP_PUSH_USER'" >&2; exit 1; }
  config=(--config "$config_dir")
fi
insecure=()
case ${MCP_IMAGE_REF%%/*} in
  127.* | localhost | localhost:* | "[::1]"*) insecure=(--insecure) ;; # plain HTTP, as Docker treats loopback
esac
if out=$(docker "${config[@]}" manifest inspect "${insecure[@]}" "$MCP_IMAGE_REF" 2>&1); then
  printf '%s\n' "REFUSED: $MCP_IMAGE_REF is already in the registry:" \
    "a pushed tag is never pushed again with other content (a rollback to it must find what" \
    "served under it). Nothing was built, pushed or deployed. Deploy a new version under a new" \
    "tag (CI uses the commit SHA: commit the change), or roll back to this tag as it served:" \
    "python rollback.py --stack <stack> --image-tag ${MCP_IMAGE_REF##*:}" >&2
  exit 1
fi
case $out in
  *"no such manifest"* | *"manifest unknown"* | *"not found"* | *"NotFound"*)
    echo "tag check: $MCP_IMAGE_REF is not in the registry yet: ok to build and push"
    ;;
  *)
    printf '%s\n' "could not check whether $MCP_IMAGE_REF is already in the registry: $out" \
      "Nothing was built, pushed or deployed; fix the registry access and retry." >&2
    exit 1
    ;;
esac
