# shellcheck shell=bash
# Pinned versions of the Pulumi toolchain, in one place (sourced by tools/build-pulumi.sh).
# The pip pins in requirements.txt must match: a plugin serves only its own SDK version.
# shellcheck disable=SC2034
PULUMI_VERSION=3.259.0
# shellcheck disable=SC2034
COMMAND_PLUGIN_VERSION=1.2.1
# shellcheck disable=SC2034
DOCKER_PLUGIN_VERSION=5.1.0
# shellcheck disable=SC2034
GITHUB_PLUGIN_VERSION=6.15.0
