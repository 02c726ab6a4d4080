#!/usr/bin/env bash
# The job's virtualenv, the same in every workflow job that runs Python: .venv (Pulumi.yaml names
# it as the program's), pip itself at PIP_VERSION (tools/toolchain-versions.sh: the Pulumi
# language host runs `python -m pip` before every program run, and the pinned pip answers in
# about half the time of the one a fresh venv starts with), then the pinned requirements file
# given. On a runner, .venv/bin goes first on the job's PATH for the next steps.
#
#   bash .github/scripts/python-venv.sh requirements.txt       # what the program and tools need
#   bash .github/scripts/python-venv.sh requirements-dev.txt   # + the linters and the tests
set -euo pipefail

requirements=${1:-}
if [[ $# -ne 1 || ! -f $requirements ]]; then
  echo "::error::python-venv.sh: give one requirements file that exists in the checkout (requirements.txt or requirements-dev.txt), got: ${*:-nothing}" >&2
  exit 2
fi
# shellcheck source=tools/toolchain-versions.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../../tools/toolchain-versions.sh"

# The venv without the pip its ensurepip would install (and byte-compile) only to be replaced:
# the runner's own pip puts PIP_VERSION into it (`pip --python`, pip >= 22.3). 1.9 s instead of
# 8 s here; 11 workflow jobs make a venv (issue 21).
python -m venv --without-pip .venv
if ! python -m pip --python .venv/bin/python install --no-compile "pip==${PIP_VERSION}"; then
  echo "::notice::python-venv.sh: this Python's own pip cannot install into .venv (no pip, or one older than 22.3): seeding .venv with ensurepip instead (~6 s slower)" >&2
  .venv/bin/python -m ensurepip
  .venv/bin/python -m pip install "pip==${PIP_VERSION}"
fi
# --no-compile: no .pyc for every module installed (pulumi-github alone is thousands, which a job
# rarely imports); Python writes them on first import instead. requirements.txt: 5 s instead of
# 18 s here (3.6 s of CPU instead of 7.1 s), the first `import pulumi, pulumi_command,
# pulumi_docker` 0.7 s of CPU dearer once, then the same (issue 21).
.venv/bin/python -m pip install --no-compile -r "$requirements"
if [[ -n ${GITHUB_PATH:-} ]]; then
  echo "${PWD}/.venv/bin" >>"$GITHUB_PATH"
fi
