#!/usr/bin/env bash
# The main job on a local default: deploy the sample app to the local deploy target.
#
#   bash local/demo.sh                 # pulumi up on the `local` stack (needs the Pulumi CLI)
#   bash local/demo.sh --tag v2        # deploy another sample tag (v1, v2, broken-500, ...)
#   bash local/demo.sh --scripts-only  # same remote scripts, same order, over SSH, no engine
#
# It brings up local/server.sh (sshd + Docker + registry on 127.0.0.1), builds and pushes the
# sample image, deploys it, and prints the URL and the health answer. Run as root.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

say() { printf '[demo] %s\n' "$*" >&2; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

tag=v1
mode=pulumi
while (($#)); do
  case $1 in
    --tag) [[ $# -ge 2 ]] || die "--tag needs a value (e.g. --tag v2)"; tag=$2; shift 2 ;;
    --scripts-only) mode=scripts; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
case $tag in
  v1 | v2) app_version=$tag; app_mode=ok ;;
  broken-crash) app_version=$tag; app_mode=crash ;;
  broken-500) app_version=$tag; app_mode=error500 ;;
  broken-slow) app_version=$tag; app_mode=slow ;;
  *) die "--tag must be one of v1 v2 broken-crash broken-500 broken-slow, got '$tag'" ;;
esac
[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts dockerd and sshd)"

if [[ $mode == pulumi ]] && ! command -v pulumi >/dev/null 2>&1; then
  die "the Pulumi CLI is not on PATH. Install it: curl -fsSL https://get.pulumi.com | sh
       (where Pulumi cannot be downloaded, run: bash local/demo.sh --scripts-only)"
fi

say "bringing up the local deploy target"
bash local/server.sh install
bash local/server.sh up
while IFS='=' read -r key value; do
  [[ $key == MCP_LOCAL_* ]] && printf -v "$key" '%s' "$value"
done < <(bash local/server.sh env)

image="$MCP_LOCAL_REGISTRY/mcp/app:$tag"
say "building and pushing the sample app as $image"
docker login "$MCP_LOCAL_REGISTRY" -u "$MCP_LOCAL_REGISTRY_USER" --password-stdin \
  <"$MCP_LOCAL_REGISTRY_PASSWORD_FILE" >/dev/null
bash app/build.sh "$app_version" "$app_mode" "$image" --push

health_url=http://127.0.0.1:8000/api/v1/health
ssh_target() {
  ssh -i "$MCP_LOCAL_KEY" -p "$MCP_LOCAL_SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$MCP_LOCAL_KNOWN_HOSTS" "$MCP_LOCAL_USER@$MCP_LOCAL_HOST" "$@"
}
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet -r requirements.txt

if [[ $mode == pulumi ]]; then
  export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-local-demo-passphrase}
  export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$repo_root/.pulumi-local}
  mkdir -p "${PULUMI_BACKEND_URL#file://}"
  say "selecting stack local (backend $PULUMI_BACKEND_URL)"
  pulumi stack select --create local
  pulumi config set --stack local --path mcp:server.hostKey "$MCP_LOCAL_HOST_KEY"
  pulumi config set --stack local --secret mcp:sshPrivateKey <"$MCP_LOCAL_KEY"
  pulumi config set --stack local --secret mcp:registryPullPassword <"$MCP_LOCAL_REGISTRY_PASSWORD_FILE"
  printf 'APP_SECRET=local-demo-secret\n' | pulumi config set --stack local --secret mcp:envFileContent
  pulumi config set --stack local mcp:imageTag "$tag"
  pulumi config set --stack local --path mcp:image.pullUser "$MCP_LOCAL_REGISTRY_USER"
  say "pulumi up --stack local"
  pulumi up --stack local --yes
  pulumi stack output --stack local
else
  say "scripts-only mode: the program's own step commands (Pulumi.local.yaml), run over SSH without the engine"
  ssh_target "mkdir -p /opt/mcp-local/mcp/data"  # bind-mounted data dir, owned by the deploy user
  .venv/bin/python local/run_steps.py Pulumi.local.yaml \
    --set "mcp:server.hostKey=$MCP_LOCAL_HOST_KEY" \
    --set-from-file "mcp:sshPrivateKey=$MCP_LOCAL_KEY" \
    --set-from-file "mcp:registryPullPassword=$MCP_LOCAL_REGISTRY_PASSWORD_FILE" \
    --set-from-file "mcp:envFileContent="<(printf 'APP_SECRET=local-demo-secret\n') \
    --set "mcp:image.pullUser=$MCP_LOCAL_REGISTRY_USER" \
    --set "mcp:imageTag=$tag" \
    --ssh-option=-i --ssh-option="$MCP_LOCAL_KEY" --ssh-option=-oBatchMode=yes \
    --ssh-option=-oStrictHostKeyChecking=yes --ssh-option="-oUserKnownHostsFile=$MCP_LOCAL_KNOWN_HOSTS"
fi

say "URL: http://127.0.0.1:8000"
say "health: $(curl -fsS --max-time 5 "$health_url")"
