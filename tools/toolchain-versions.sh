# shellcheck shell=bash
# Pinned versions of the Pulumi toolchain, in one place (sourced by tools/build-pulumi.sh).
# The pip pins in requirements.txt must match: a plugin serves only its own SDK version; every
# `pulumi/actions` step of .github/workflows/ installs the CLI at PULUMI_VERSION (`pulumi-version`).
# tests/scripts/test_toolchain_versions.py and tests/workflows/ check that they all agree.
# shellcheck disable=SC2034
PULUMI_VERSION=3.259.0
# shellcheck disable=SC2034
COMMAND_PLUGIN_VERSION=1.2.1
# shellcheck disable=SC2034
DOCKER_PLUGIN_VERSION=5.1.0
# shellcheck disable=SC2034
GITHUB_PLUGIN_VERSION=6.15.0

# CI's own tools (.github/workflows/): the Go that `actions/setup-go` installs (`go-version`),
# and the pip every workflow installs into its virtualenv (it sources this file for it).
# shellcheck disable=SC2034
GO_VERSION=1.26.8
# shellcheck disable=SC2034
PIP_VERSION=26.3
