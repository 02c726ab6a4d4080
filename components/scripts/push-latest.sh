#!/usr/bin/env bash
# Run by `pulumi up` after the image build when mcp:image.pushUser is unset (resource
# `app-push-latest`, components/image.py): pushes `<registry>/<repository>:latest` with the
# docker CLI, so with the credentials of the `docker login` that ran before `pulumi up` (the
# deploy workflow's "Log in to the image registry" step), from the same place the CLI keeps
# them ($DOCKER_CONFIG, else ~/.docker; credential helpers included).
#
# pulumi-docker's `docker.RegistryImage` cannot do this: without `authConfig` it reads only the
# provider's `registryAuth` setting, never the Docker config file, and fails with
# "no auth config found for registry ghcr.io" (docker.Image, which pushes the commit tag, does
# read the Docker config file).
#
#   bash components/scripts/push-latest.sh ghcr.io/owner/mcp:latest
set -euo pipefail
MCP_LATEST=${1:?usage: push-latest.sh IMAGE_REF (e.g. ghcr.io/owner/mcp:latest)}
command -v docker >/dev/null 2>&1 \
  || { echo "pushing $MCP_LATEST needs the docker CLI on PATH" >&2; exit 1; }
if ! out=$(docker push "$MCP_LATEST" 2>&1); then
  printf '%s\n' "the push of $MCP_LATEST failed: $out" \
    "The commit's tag was pushed; 'latest' was not, and nothing was deployed. Log in to the" \
    "registry before 'pulumi up' (docker login ${MCP_LATEST%%/*}), or set mcp:image.pushUser and" \
    "mcp:registryPushPassword." >&2
  exit 1
fi
printf '%s\n' "$out" | tail -n 1
