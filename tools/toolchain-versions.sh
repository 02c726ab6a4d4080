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

# The workflow runner that runs .github/workflows/ here (tests/workflows/test_act_*.py):
# act from its Go module, and pulumi/actions built with npm from ../shared/vendor/actions at the
# commit the workflows pin (tools/build-act.sh).
# shellcheck disable=SC2034
ACT_VERSION=0.2.89
# shellcheck disable=SC2034
PULUMI_ACTIONS_VERSION=6.6.1
# shellcheck disable=SC2034
PULUMI_ACTIONS_COMMIT=8582a9e8cc630786854029b4e09281acd6794b58
