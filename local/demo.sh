#!/usr/bin/env bash
# The main job on a local default: `pulumi up` of the sample app to the local deploy target,
# through the real Pulumi engine.
#
#   bash local/demo.sh             # deploy tag v1 on the `local` stack
#   bash local/demo.sh --tag v2    # deploy another sample tag (v1, v2, broken-500, ...)
#   bash local/demo.sh --strategy canary --tag v2
#                                  # a canary deploy: v2 takes 10%, 50%, then 100% of the
#                                  # traffic, gated at each step (flaky-500, failing half of
#                                  # its requests, or laggy, answering in 800 ms: stopped at 10%)
#   bash local/demo.sh --stack staging --tag v2
#                                  # deploy to the `local-staging` stack instead: beside `local`
#                                  # on the same server, own deploy dir, backups and port 8100
#   bash local/demo.sh --promote   # promote what serves on local-staging to `local`, by digest
#                                  # (promote.py: nothing is built; refused if it failed there)
#
# It brings up local/server.sh (sshd + Docker + registry on 127.0.0.1), finds `pulumi` on PATH or
# builds it from source once, with only the plugin this stack uses (tools/build-pulumi.sh command),
# builds and pushes the sample image, configures the `local` stack (Pulumi.local.yaml, made from
# local/stack-template.yaml; file backend in .pulumi-local/, passphrase secrets), runs `pulumi up`,
# and prints the URL and the health answer. Run as root.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

say() { printf '[demo] %s\n' "$*" >&2; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

tag=v1 strategy="" environment=production promote=0
while (($#)); do
  case $1 in
    --tag) [[ $# -ge 2 ]] || die "--tag needs a value (e.g. --tag v2)"; tag=$2; shift 2 ;;
    --strategy) [[ $# -ge 2 ]] || die "--strategy needs a value (e.g. --strategy canary)"; strategy=$2; shift 2 ;;
    --stack) [[ $# -ge 2 ]] || die "--stack needs a value (production or staging)"; environment=$2; shift 2 ;;
    --promote) promote=1; shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
case $tag in
  v1 | v2) app_version=$tag; app_mode=ok ;;
  broken-crash) app_version=$tag; app_mode=crash ;;
  broken-500) app_version=$tag; app_mode=error500 ;;
  broken-slow) app_version=$tag; app_mode=slow ;;
  flaky-500) app_version=$tag; app_mode=flaky500 ;;
  laggy) app_version=$tag; app_mode=laggy ;;
  *) die "--tag must be one of v1 v2 broken-crash broken-500 broken-slow flaky-500 laggy, got '$tag'" ;;
esac
case $strategy in
  "" | recreate | blue-green | canary) ;;
  *) die "--strategy must be recreate, blue-green or canary, got '$strategy'" ;;
esac
# The stack of each environment, and the file its local values come from (local/stack.py).
case $environment in
  production) stack=local values_file=local/stack-template.yaml ;;
  staging) stack=local-staging values_file=local/staging-overrides.yaml ;;
  *) die "--stack must be production (the local stack) or staging (local-staging), got '$environment'" ;;
esac
deploy_dir=$(sed -n 's/^ *deployDir: *//p' "$values_file")
backup_dir=$(sed -n 's/^ *backupDir: *//p' "$values_file")
public_url=$(sed -n 's/^ *publicUrl: *//p' "$values_file")
((promote == 0)) || [[ $environment == production ]] || die "--promote deploys to the local (production) stack: drop --stack $environment"
[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts dockerd and sshd)"

say "1/5 bringing up the local deploy target (local/server.sh)"
bash local/server.sh install
bash local/server.sh up
while IFS='=' read -r key value; do
  [[ $key == MCP_LOCAL_* ]] && printf -v "$key" '%s' "$value"
done < <(bash local/server.sh env)

say "2/5 Python dependencies (.venv) and the Pulumi CLI"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# The `local` stack deploys an existing image with pulumi-command: no docker or github plugin.
eval "$(bash tools/pulumi-env.sh command)"
say "using $(command -v pulumi) $(pulumi version)"

export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-local-demo-passphrase}
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$repo_root/.pulumi-local}
[[ $PULUMI_BACKEND_URL == file://* ]] && mkdir -p "${PULUMI_BACKEND_URL#file://}"
if ((promote)); then
  say "3/3 promoting what serves on local-staging to local, by digest (promote.py)"
  [[ -f Pulumi.local-staging.yaml ]] || die "no local-staging stack yet: run bash local/demo.sh --stack staging first"
  if [[ ! -f Pulumi.local.yaml ]]; then
    # A first deploy of `local`: promote.py sets the tag and the digest it deploys.
    ssh -i "$MCP_LOCAL_KEY" -p "$MCP_LOCAL_SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes \
      -o UserKnownHostsFile="$MCP_LOCAL_KNOWN_HOSTS" "$MCP_LOCAL_USER@$MCP_LOCAL_HOST" "mkdir -p $deploy_dir/data"
    .venv/bin/python -m local.stack configure --environment production --tag v1
  fi
  .venv/bin/python promote.py --from local-staging --to local --yes
  say "local serves: $(curl -fsS --max-time 5 "$public_url/api/v1/version")"
  exit 0
fi

image="$MCP_LOCAL_REGISTRY/mcp/app:$tag"
say "3/5 building and pushing the sample app as $image"
docker login "$MCP_LOCAL_REGISTRY" -u "$MCP_LOCAL_REGISTRY_USER" --password-stdin \
  <"$MCP_LOCAL_REGISTRY_PASSWORD_FILE" >/dev/null
bash app/build.sh "$app_version" "$app_mode" "$image" --push

say "4/5 configuring stack $stack (backend $PULUMI_BACKEND_URL)"
# The bind-mounted data dir of the sample compose file and the backup dir, owned by the deploy
# user (one-time setup on a real server too, see the README).
ssh -i "$MCP_LOCAL_KEY" -p "$MCP_LOCAL_SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes \
  -o UserKnownHostsFile="$MCP_LOCAL_KNOWN_HOSTS" "$MCP_LOCAL_USER@$MCP_LOCAL_HOST" \
  "mkdir -p $deploy_dir/data $backup_dir"
if [[ $environment == staging ]]; then
  # A second app on the same server publishes another port: compose reads MCP_HTTP_PORT from
  # the deploy dir's .env (blue-green and canary set it per colour themselves).
  ssh -i "$MCP_LOCAL_KEY" -p "$MCP_LOCAL_SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$MCP_LOCAL_KNOWN_HOSTS" "$MCP_LOCAL_USER@$MCP_LOCAL_HOST" \
    "test -e $deploy_dir/.env || echo MCP_HTTP_PORT=${public_url##*:} > $deploy_dir/.env"
fi
strategy_args=()
if [[ $strategy == blue-green || $strategy == canary ]]; then
  proxy_image="$MCP_LOCAL_REGISTRY/mcp/proxy:caddy-2.11.9"
  say "building and pushing the proxy as $proxy_image (Caddy from source: no image to pull here)"
  bash proxy/build.sh "$proxy_image" --push
  strategy_args=(--strategy "$strategy" --proxy-image "$proxy_image")
elif [[ $strategy == recreate ]]; then
  strategy_args=(--strategy recreate)
fi
if [[ $strategy == canary && $tag != v1 ]] && ! ssh -i "$MCP_LOCAL_KEY" -p "$MCP_LOCAL_SSH_PORT" -o BatchMode=yes \
  -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$MCP_LOCAL_KNOWN_HOSTS" \
  "$MCP_LOCAL_USER@$MCP_LOCAL_HOST" "test -s $deploy_dir/.deploy/live-colour"; then
  # A canary compares the new version with the one behind the proxy: put v1 there first.
  say "nothing serves behind the proxy yet: deploying v1 first (switched at once), so that $tag has a version to be a canary of"
  bash app/build.sh v1 ok "$MCP_LOCAL_REGISTRY/mcp/app:v1" --push
  .venv/bin/python -m local.stack configure --environment "$environment" --tag v1 "${strategy_args[@]}"
  pulumi up --stack "$stack" --yes --non-interactive
fi
.venv/bin/python -m local.stack configure --environment "$environment" --tag "$tag" "${strategy_args[@]}"

say "5/5 pulumi up --stack $stack${strategy:+ (strategy $strategy)}"
if [[ $strategy == canary ]]; then
  # Real traffic for the gate to judge: a prober on the app's version route during the release,
  # then each step's share of it answered by $tag (local/canary.py).
  version_url="$public_url/api/v1/version"
  say "a prober sends 20 requests/s to $version_url during the canary"
  .venv/bin/python -m local.canary --url "$version_url" --version "$app_version" \
    -- pulumi up --stack "$stack" --yes --non-interactive
else
  pulumi up --stack "$stack" --yes --non-interactive
fi
pulumi stack output --stack "$stack"

url=$(pulumi stack output --stack "$stack" url)
say "URL: $url"
say "health: $(curl -fsS --max-time 5 "$url/api/v1/health")"
