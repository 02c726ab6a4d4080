"""What the workflows must do: triggers, permissions, concurrency, secrets and injection rules."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from workflow_support import (
    ROOT,
    WORKFLOW_FILES,
    WORKFLOWS_DIR,
    load_workflow,
    run_blocks,
    toolchain_versions,
)

DEPLOY = "deploy-production.yml"
TESTS = "tests.yml"
ROLLBACK = "rollback.yml"

ALLOWED_SECRETS = {
    "GITHUB_TOKEN",
    "PULUMI_ACCESS_TOKEN",
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_GITHUB_TOKEN",
    "CODECOV_TOKEN",
}


@pytest.fixture(scope="module")
def wf() -> dict[str, dict[str, Any]]:
    names = {path.name for path in WORKFLOW_FILES}
    assert {DEPLOY, TESTS, ROLLBACK} <= names, f"missing workflows, have {sorted(names)}"
    return {path.name: load_workflow(path) for path in WORKFLOW_FILES}


def raw(name: str) -> str:
    return (WORKFLOWS_DIR / name).read_text(encoding="utf-8")


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).split("@")[0] == action]


def step_named(job: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in steps(job) if s.get("name") == name]
    return step


# --- triggers and inputs ---------------------------------------------------------------------


def test_deploy_triggers(wf: dict[str, Any]) -> None:
    on = wf[DEPLOY]["on"]
    assert wf[DEPLOY]["name"] == "Deploy to Hostinger Production"
    assert set(on) == {"push", "workflow_dispatch"}
    assert on["push"]["branches"] == ["main"]
    skip = on["workflow_dispatch"]["inputs"]["skip_tests"]
    assert skip["type"] == "boolean"
    assert skip["default"] is False


def test_tests_triggers(wf: dict[str, Any]) -> None:
    on = wf[TESTS]["on"]
    assert set(on) == {"pull_request", "push"}
    assert sorted(on["pull_request"]["branches"]) == ["develop", "main"]
    assert on["push"]["branches"] == ["develop"]


def test_rollback_triggers_and_inputs(wf: dict[str, Any]) -> None:
    on = wf[ROLLBACK]["on"]
    assert wf[ROLLBACK]["name"] == "Rollback Production"
    assert set(on) == {"workflow_dispatch"}
    inputs = on["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"backup_timestamp", "image_tag", "last_good"}
    for name in ("backup_timestamp", "image_tag"):
        assert inputs[name]["type"] == "string"
    assert inputs["last_good"]["type"] == "boolean"
    assert inputs["last_good"]["default"] is False
    for spec in inputs.values():
        assert spec.get("required", False) is False


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [DEPLOY, TESTS, ROLLBACK])
def test_top_level_permissions_read_only(wf: dict[str, Any], name: str) -> None:
    assert wf[name]["permissions"] == {"contents": "read"}
    assert "write-all" not in raw(name)
    assert "read-all" not in raw(name)


def test_job_permissions_are_minimal(wf: dict[str, Any]) -> None:
    allowed = {
        (DEPLOY, "staging"): {"contents": "read", "packages": "write"},
        (DEPLOY, "preview"): {"contents": "read"},
        (DEPLOY, "deploy"): {"contents": "read", "packages": "write"},
        (DEPLOY, "smoke-test"): {},
        (DEPLOY, "auto-rollback"): {"contents": "read"},
        (DEPLOY, "notify"): {"contents": "read"},
        (TESTS, "preview"): {"contents": "read", "pull-requests": "write"},
        (ROLLBACK, "rollback"): {"contents": "read"},
        (ROLLBACK, "smoke-test"): {},
        (ROLLBACK, "notify"): {"contents": "read"},
    }
    for name, workflow in wf.items():
        for job_id, job in workflow["jobs"].items():
            if "permissions" in job:
                assert (name, job_id) in allowed, f"{name}:{job_id} has unexpected permissions"
                assert job["permissions"] == allowed[(name, job_id)], f"{name}:{job_id}"


def test_deploy_job_can_push_packages(wf: dict[str, Any]) -> None:
    assert wf[DEPLOY]["jobs"]["deploy"]["permissions"]["packages"] == "write"


# --- jobs --------------------------------------------------------------------------------------


def test_deploy_job_graph(wf: dict[str, Any]) -> None:
    """test -> staging (build once, deploy, smoke test) -> preview (the diff, before the
    approval) -> deploy (after it) -> smoke test. Staging is skipped only by a hotfix run or
    PULUMI_STAGING_STACK=none; when it fails, production is not previewed nor deployed."""
    jobs = wf[DEPLOY]["jobs"]
    assert "skip_tests" in jobs["test"]["if"]
    assert jobs["staging"]["needs"] in ("test", ["test"])
    staging_if = jobs["staging"]["if"]
    assert "inputs.hotfix" in staging_if and "vars.PULUMI_STAGING_STACK != 'none'" in staging_if
    assert jobs["staging"]["environment"]["name"] == "staging"
    assert jobs["preview"]["needs"] == ["test", "staging"]
    preview_if = jobs["preview"]["if"]
    assert "needs.test.result == 'success'" in preview_if
    assert "needs.test.result == 'skipped'" in preview_if
    assert "needs.staging.result == 'success'" in preview_if
    assert "needs.staging.result == 'skipped'" in preview_if
    assert "needs.staging.result == 'failure'" not in preview_if
    assert jobs["deploy"]["needs"] in ("preview", ["preview"])
    assert "needs.preview.result == 'success'" in jobs["deploy"]["if"]
    assert jobs["smoke-test"]["needs"] in ("deploy", ["deploy"])
    # A job without `if:` is skipped when any ancestor was (staging, in a hotfix run): every
    # job after the optional staging job says when it runs.
    for job_id in ("preview", "deploy", "smoke-test", "auto-rollback", "notify"):
        assert "if" in jobs[job_id], job_id
    assert "needs.deploy.result == 'success'" in jobs["smoke-test"]["if"]
    assert "url" in jobs["deploy"]["outputs"]
    assert {"test", "staging", "preview", "deploy", "smoke-test"} <= set(jobs["notify"]["needs"])


def test_every_job_deploys_the_stack_named_by_pulumi_stack_production_by_default(
    wf: dict[str, Any],
) -> None:
    """One seam for the workflow tests under act (tests/workflows/act/): the repository
    variable PULUMI_STACK. Unset, as on GitHub, it is `production`; every command names the
    stack through it, none names `production` itself."""
    for name in (DEPLOY, ROLLBACK):
        assert wf[name]["env"]["PULUMI_STACK"] == "${{ vars.PULUMI_STACK || 'production' }}"
        for job_id, script in run_blocks(wf[name]):
            assert "--stack production" not in script, name
            if (name, job_id) == (DEPLOY, "staging"):  # the staging stack's own seam
                assert '--stack "$PULUMI_STACK"' not in script, script
                if "--stack" in script:
                    assert '--stack "$STAGING_STACK"' in script, script
            elif ("--stack" in script and "pulumi " in script) or "rollback.py" in script:
                assert '--stack "$PULUMI_STACK"' in script, script
    assert wf[DEPLOY]["env"]["STAGING_STACK"] == "${{ vars.PULUMI_STAGING_STACK || 'staging' }}"
    preview_env = wf[TESTS]["jobs"]["preview"]["env"]
    assert preview_env["SOURCE_STACK"] == "${{ vars.PULUMI_STACK || 'production' }}"


def test_the_preview_job_shows_the_production_diff_and_saves_the_plan_the_deploy_applies(
    wf: dict[str, Any],
) -> None:
    """Before the `production` approval: `pulumi preview --diff` of the stack's real state in
    the job log and summary, saved as an update plan; the deploy job applies that plan only
    (`pulumi up --plan`): a change the reviewer was not shown fails the update."""
    jobs = wf[DEPLOY]["jobs"]
    preview_job = jobs["preview"]
    assert preview_job["environment"] == {"name": "production-preview"}
    (preview,) = [s for s in uses(preview_job, "pulumi/actions") if "command" in s["with"]]
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["stack-name"] == "${{ env.PULUMI_STACK }}"
    assert preview["with"]["plan"] == "${{ runner.temp }}/update-plan.json"
    assert preview["with"]["diff"] is True
    assert preview["with"]["comment-on-summary"] is True
    assert preview["env"] == {"GITHUB_TOKEN": "${{ secrets.PULUMI_GITHUB_TOKEN }}"}
    assert preview_job["outputs"]["plan"] == "${{ steps.plan.outputs.plan }}"
    passed = step_named(preview_job, "Pass the plan to the deploy job")
    assert 'gzip -9c "${RUNNER_TEMP}/update-plan.json" | base64 -w0' in passed["run"]
    # The deploy job sets exactly the same config (the plan holds it), then applies the plan.
    deploy = jobs["deploy"]
    # The same commands; the pin (what staging served, or empty: build) passed along.
    preview_tag = step_named(preview_job, "Set image tag")
    deploy_tag = step_named(deploy, "Set image tag")
    assert preview_tag["run"] == deploy_tag["run"]
    assert preview_tag["env"]["PIN"] == "${{ steps.promotion.outputs.pin }}"
    assert deploy_tag["env"]["PIN"] == "${{ needs.preview.outputs.pin }}"
    assert {k: v for k, v in preview_tag["env"].items() if k != "PIN"} == {
        k: v for k, v in deploy_tag["env"].items() if k != "PIN"
    }
    assert preview_job["outputs"]["pin"] == "${{ steps.promotion.outputs.pin }}"
    received = step_named(deploy, "The plan the reviewer saw")
    assert received["env"] == {"PLAN": "${{ needs.preview.outputs.plan }}"}
    assert 'gunzip > "${RUNNER_TEMP}/update-plan.json"' in received["run"]
    assert "exit 1" in received["run"]  # no plan, no deploy
    up = step_named(deploy, "Pulumi up")
    assert '--plan "$RUNNER_TEMP/update-plan.json"' in up["run"]
    names = [s.get("name") for s in steps(deploy)]
    assert names.index("The plan the reviewer saw") < names.index("Pulumi up")


@pytest.mark.parametrize("where", ["deployed stack", "GitHub stack file"])
def test_the_preview_job_says_who_approves_or_loudly_that_nobody_does(
    wf: dict[str, Any], tmp_path: Path, where: str
) -> None:
    """The reviewers come from the deployed stack's mcp:github when it still has one, else from
    the GitHub stack's file (Pulumi.github.yaml, in the checkout)."""
    step = step_named(wf[DEPLOY]["jobs"]["preview"], "Who approves this deploy")
    python = sys.executable  # the job's .venv python (PyYAML: a pulumi dependency)
    for reviewers, says in (("[]", "NO APPROVAL REQUIRED"), ("[1234567]", "waits for an approval")):
        workdir = tmp_path / f"{where}-{len(reviewers)}".replace(" ", "-")
        workdir.mkdir()
        if where == "deployed stack":
            answer = f"[[ $* == *reviewerUserIds* ]] && echo '{reviewers}'"
        else:  # the production stack has no mcp:github: `pulumi config get` fails
            answer = "exit 1"
            (workdir / "Pulumi.github.yaml").write_text(
                f"config:\n  mcp:github:\n    owner: o\n    reviewerUserIds: {reviewers}\n"
            )
        bin_dir = _fake_bin(workdir, "pulumi", f"#!/bin/bash\n{answer}\n")
        _fake_bin(workdir, "python", f'#!/bin/bash\nexec {python} "$@"\n')
        summary = workdir / "summary"
        summary.write_text("")
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", step["run"]],
            cwd=workdir,
            env={
                "PATH": f"{bin_dir}:/usr/bin:/bin",
                "PULUMI_STACK": "production",
                "GITHUB_STEP_SUMMARY": str(summary),
            },
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert says in summary.read_text(), (where, summary.read_text(), proc.stderr)
        assert ("::warning::" in proc.stdout) is (reviewers == "[]")


def test_test_job_lints_and_tests(wf: dict[str, Any]) -> None:
    scripts = "\n".join(script for job_id, script in run_blocks(wf[DEPLOY]) if job_id == "test")
    assert "ruff check" in scripts and "ruff format --check" in scripts
    # ShellCheck runs once, in the Pytest step (tests/scripts/test_shellcheck.py: every shell
    # file, -x), not also as a step of its own (issue 21: ~35 s per deploy, ~4 min of act's).
    assert "shellcheck" not in scripts
    assert (ROOT / "tests" / "scripts" / "test_shellcheck.py").is_file()
    # The whole suite but the act tests (root and a local deploy target: tools/test.sh runs
    # them), unless the variable PYTEST_SELECTION narrows it (the act tests' own runs).
    assert "selection=(tests/unit tests/scripts tests/workflows --ignore=tests/workflows/act)" in (
        scripts
    )
    assert 'python -m pytest "${selection[@]}"' in scripts
    pytest_step = step_named(wf[DEPLOY]["jobs"]["test"], "Pytest")
    assert pytest_step["env"] == {"PYTEST_SELECTION": "${{ vars.PYTEST_SELECTION }}"}


def test_tests_workflow_jobs(wf: dict[str, Any]) -> None:
    jobs = wf[TESTS]["jobs"]
    assert {"lint", "test", "preview"} <= set(jobs)
    test_scripts = " ".join(s for j, s in run_blocks(wf[TESTS]) if j == "test")
    assert "--cov=components" in test_scripts and "--cov-report=xml" in test_scripts
    assert len(uses(jobs["test"], "codecov/codecov-action")) == 1
    assert "pull_request" in jobs["preview"]["if"]
    (preview,) = [s for s in uses(jobs["preview"], "pulumi/actions") if "command" in s["with"]]
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["stack-name"] == "${{ env.PREVIEW_STACK }}"
    assert "comment-on-pr" in preview["with"]
    assert preview["with"]["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert jobs["preview"]["permissions"]["pull-requests"] == "write"


@pytest.mark.parametrize(
    ("name", "job_id"), [(DEPLOY, "deploy"), (DEPLOY, "auto-rollback"), (ROLLBACK, "rollback")]
)
def test_production_environment(wf: dict[str, Any], name: str, job_id: str) -> None:
    env = wf[name]["jobs"][job_id]["environment"]
    assert env["name"] == "production"
    assert env.get("url"), "the environment should link to the deployed URL"


def test_deploys_queue_and_are_never_cancelled_half_way(wf: dict[str, Any]) -> None:
    assert wf[DEPLOY]["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}


def test_a_rollback_is_never_replaced_by_a_newer_run(wf: dict[str, Any]) -> None:
    """GitHub keeps one pending run per concurrency group and cancels the older pending one: a
    rollback sharing the deploys' group would be dropped by the next push. Each rollback run
    has its own group, and is never cancelled in progress."""
    rollback = wf[ROLLBACK]["concurrency"]
    assert rollback["cancel-in-progress"] is False
    assert "${{ github.run_id }}" in rollback["group"]
    deploy_group = wf[DEPLOY]["concurrency"]["group"]
    assert rollback["group"].replace("${{ github.run_id }}", "") != deploy_group
    for job in wf[ROLLBACK]["jobs"].values():
        assert "concurrency" not in job


def test_deploy_and_rollback_wait_for_each_other_on_the_stack_lock(wf: dict[str, Any]) -> None:
    """Not in one group, they still never overlap: each runs its update through the retry on
    the Pulumi stack lock, so the second one waits for the first (the server lock backs it)."""
    up = step_named(wf[DEPLOY]["jobs"]["deploy"], "Pulumi up")
    assert up["run"].startswith("bash .github/scripts/retry-on-stack-lock.sh pulumi up ")
    assert not uses(wf[DEPLOY]["jobs"]["deploy"], "pulumi/actions")[1:], "one pulumi/actions"
    roll = step_named(wf[ROLLBACK]["jobs"]["rollback"], "Roll back")
    calls = re.findall(r"retry-on-stack-lock\.sh \\\n\s*python rollback\.py", roll["run"])
    assert len(calls) == 3, roll["run"]
    assert "python rollback.py" not in re.sub(
        r"retry-on-stack-lock\.sh \\\n\s*python rollback\.py", "", roll["run"]
    )
    assert int(roll["env"]["MCP_LOCK_WAIT_SECONDS"]) >= 45 * 60  # the deploy job's timeout
    assert wf[DEPLOY]["jobs"]["deploy"]["timeout-minutes"] == 45
    assert wf[ROLLBACK]["jobs"]["rollback"]["timeout-minutes"] > 45
    for name in (DEPLOY, ROLLBACK):
        assert "flock" in raw(name) and "stack lock" in raw(name), name


def test_pulumi_up_sets_image_tag_from_commit(wf: dict[str, Any]) -> None:
    job = wf[DEPLOY]["jobs"]["deploy"]
    names = [s.get("name", s.get("uses", "")) for s in steps(job)]
    up = step_named(job, "Pulumi up")
    assert 'pulumi up --yes --non-interactive --skip-preview --stack "$PULUMI_STACK"' in up["run"]
    assert up["env"]["GITHUB_TOKEN"] == "${{ secrets.PULUMI_GITHUB_TOKEN }}"
    assert up["env"]["UPDATE_MESSAGE"] == "Deploy ${{ github.sha }} (run ${{ github.run_id }})"
    (tag_step,) = [s for s in steps(job) if "mcp:imageTag" in s.get("run", "")]
    assert '--stack "$PULUMI_STACK"' in tag_step["run"]
    assert "mcp:image.build' true" in tag_step["run"]
    tag_var = re.search(r"mcp:imageTag \"\$(\w+)\"", tag_step["run"])
    assert tag_var, tag_step["run"]
    assert tag_step["env"][tag_var.group(1)] == "${{ github.sha }}"
    # The tag is set and the registry login done before `pulumi up`: to the stack's own
    # registry (mcp:image.registry), GHCR when it names none.
    login = next(i for i, s in enumerate(steps(job)) if "docker login" in s.get("run", ""))
    assert login < steps(job).index(tag_step) < steps(job).index(up), names
    login_step = steps(job)[login]
    assert (
        "pulumi config get --stack \"$PULUMI_STACK\" --path 'mcp:image.registry'"
        in (login_step["run"])
    )
    assert 'docker login "${registry:-ghcr.io}"' in login_step["run"]
    assert "--password-stdin" in login_step["run"]
    assert "${{ secrets.GITHUB_TOKEN }}" in login_step["env"].values()


def test_admin_token_only_on_pulumi_steps(wf: dict[str, Any]) -> None:
    """PULUMI_GITHUB_TOKEN is exported only on the steps that run `pulumi up` or the deploy's
    `pulumi preview` (the GitHub provider reads the repository in a preview)."""
    for name, workflow in wf.items():
        for job_id, job in workflow["jobs"].items():
            assert "PULUMI_GITHUB_TOKEN" not in str(job.get("env", {})), f"{name}:{job_id}"
            for step in steps(job):
                if "PULUMI_GITHUB_TOKEN" in str(step.get("env", {})):
                    runs_pulumi = "pulumi up " in step.get("run", "") or (
                        "rollback.py" in step.get("run", "")
                    )
                    previews = (name, job_id) == (DEPLOY, "preview") and step.get("with", {}).get(
                        "command"
                    ) == "preview"
                    assert runs_pulumi or previews, f"{name}:{job_id}: {step.get('name')}"
    assert "PULUMI_GITHUB_TOKEN" not in raw(TESTS).split("jobs:", 1)[1]


def test_rollback_runs_rollback_py_then_smoke_test(wf: dict[str, Any]) -> None:
    jobs = wf[ROLLBACK]["jobs"]
    scripts = "\n".join(s for j, s in run_blocks(wf[ROLLBACK]) if j == "rollback")
    assert 'python rollback.py --stack "$PULUMI_STACK" --backup' in scripts
    assert 'python rollback.py --stack "$PULUMI_STACK" --image-tag' in scripts
    assert 'python rollback.py --stack "$PULUMI_STACK" --last-good --yes' in scripts
    assert "--yes" in scripts
    assert jobs["smoke-test"]["needs"] in ("rollback", ["rollback"])
    smoke = " ".join(s for j, s in run_blocks(wf[ROLLBACK]) if j == "smoke-test")
    assert "/api/v1/health" in smoke and "--retry" in smoke
    assert 'oncall.py --stack "$PULUMI_STACK" notify rollback' in str(jobs["notify"])


# --- secrets and injection ---------------------------------------------------------------------

SECRET_LOOKALIKES = [
    r"ghp_[A-Za-z0-9]",
    r"github_pat_",
    r"gh[osu]_[A-Za-z0-9]{20}",
    r"-----BEGIN",
    r"hooks\.slack\.com/services/T",
    r"xox[abpr]-",
    r"AKIA[0-9A-Z]{16}",
    r"pul-[0-9a-f]{20}",
]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_inline_secrets(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for pattern in SECRET_LOOKALIKES:
        assert not re.search(pattern, text), f"{path.name}: looks like an inline secret: {pattern}"
    # Every mention of `secrets.` is a `${{ secrets.NAME }}` expression (|| fallbacks allowed).
    expressions = re.findall(r"\$\{\{(.*?)\}\}", text)
    in_expressions = sum(e.count("secrets.") for e in expressions)
    assert text.count("secrets.") == in_expressions, f"{path.name}: `secrets.` outside ${{{{ }}}}"
    names = set(re.findall(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert names <= ALLOWED_SECRETS, f"{path.name}: unexpected secrets {names - ALLOWED_SECRETS}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_expressions_in_run_blocks(path: Path) -> None:
    """Inputs (and any other expression) reach scripts through `env:`, never interpolated."""
    for job_id, script in run_blocks(load_workflow(path)):
        assert "${{ inputs." not in script, f"{path.name}:{job_id}"
        assert "${{ github.event.inputs." not in script, f"{path.name}:{job_id}"
        assert "${{" not in script, f"{path.name}:{job_id}: expression inside run:\n{script}"


def test_secrets_not_used_in_if(wf: dict[str, Any]) -> None:
    for name, workflow in wf.items():
        for job_id, job in workflow["jobs"].items():
            conditions = [job.get("if", "")] + [s.get("if", "") for s in steps(job)]
            for cond in conditions:
                assert "secrets." not in str(cond), f"{name}:{job_id}: secrets in if:"


def test_each_run_notifies_once_at_its_end_through_oncall_notify(wf: dict[str, Any]) -> None:
    """One notify job per workflow, after every other job, whatever their results (success is
    told only after the smoke test), calling the one notifier (ops/notify.py) with every job's
    result; the webhook and the bot token are the stack's secrets, never the workflow's."""
    for name, command in ((DEPLOY, "notify deploy"), (ROLLBACK, "notify rollback")):
        jobs = wf[name]["jobs"]
        notify = jobs["notify"]
        assert notify["if"] == "${{ always() }}", name
        assert set(notify["needs"]) == set(jobs) - {"notify"}, name
        (step,) = [s for s in steps(notify) if "oncall.py" in s.get("run", "")]
        assert f'python oncall.py --stack "$PULUMI_STACK" {command}' in step["run"]
        for job_id in set(jobs) - {"notify"}:
            assert f"needs.{job_id}.result" in str(step["env"]), (name, job_id)
        assert "secrets." not in str(step.get("env", {})), name
        assert not re.search(r"SLACK|TELEGRAM", str(notify["env"]) + str(step)), name
    # The program itself posts nothing (it would before the smoke test).
    assert "Notification" not in (ROOT / "__main__.py").read_text()


def test_deploy_notification_reads_the_releases_outcome_not_the_log(wf: dict[str, Any]) -> None:
    """The deploy job records the engine's events and classifies the release from them
    (.github/scripts/release_outcome.py); the notification uses that, and reads no job log,
    whose text a commit message can fill."""
    deploy = wf[DEPLOY]["jobs"]["deploy"]
    up = step_named(deploy, "Pulumi up")
    assert '--event-log "$RUNNER_TEMP/pulumi-up-events.jsonl"' in up["run"]
    assert up["env"]["PULUMI_DEBUG_COMMANDS"] == "true"  # the CLI offers --event-log only then
    outcome = step_named(deploy, "Read the release's outcome")
    assert outcome["id"] == "release"
    assert outcome["if"] == "${{ always() }}"
    assert outcome["run"].startswith("python .github/scripts/release_outcome.py ")
    assert '--event-log "$RUNNER_TEMP/pulumi-up-events.jsonl"' in outcome["run"]
    assert outcome["env"]["UPDATE_OUTCOME"] == "${{ steps.pulumi.outcome }}"
    assert steps(deploy).index(up) + 1 == steps(deploy).index(outcome)
    assert deploy["outputs"]["release"] == "${{ steps.release.outputs.outcome }}"
    notify = wf[DEPLOY]["jobs"]["notify"]
    step = step_named(notify, "Notify (Slack, Telegram)")
    assert step["env"]["RELEASE_OUTCOME"] == "${{ needs.deploy.outputs.release }}"
    assert step["env"]["RELEASE_EXIT_CODE"] == "${{ needs.deploy.outputs.release-exit-code }}"
    assert '--release-outcome "$RELEASE_OUTCOME"' in step["run"]
    assert notify["permissions"] == {"contents": "read"}  # no `actions: read`: no job log
    scripts = "\n".join(s for j, s in run_blocks(wf[DEPLOY]) if j == "notify")
    assert "gh api" not in scripts and "grep" not in scripts and "/logs" not in scripts


# --- rollback input validation (the real script, run with bash) --------------------------------


def _validate_script(wf: dict[str, Any]) -> dict[str, Any]:
    job = wf[ROLLBACK]["jobs"]["rollback"]
    first = steps(job)[0]
    assert first.get("id") == "validate", "input validation must be the first step"
    assert first["env"] == {
        "BACKUP_TIMESTAMP": "${{ inputs.backup_timestamp }}",
        "IMAGE_TAG": "${{ inputs.image_tag }}",
        "LAST_GOOD": "${{ inputs.last_good }}",
    }
    return first


@pytest.mark.parametrize(
    ("backup", "tag", "last_good", "ok", "outputs"),
    [
        ("20251017_143025", "", "false", True, "kind=backup\ntarget=20251017_143025\n"),
        ("latest", "", "false", True, "kind=backup\ntarget=latest\n"),
        (" latest ", "", "false", True, "kind=backup\ntarget=latest\n"),
        ("", "3f2c1ab", "false", True, "kind=image\ntarget=3f2c1ab\n"),
        ("", "v1.2.3", "false", True, "kind=image\ntarget=v1.2.3\n"),
        ("", "", "true", True, "kind=last-good\ntarget=last-good\n"),
        ("  ", " ", "true", True, "kind=last-good\ntarget=last-good\n"),
        ("", "", "false", False, ""),
        ("  ", " ", "false", False, ""),
        ("latest", "3f2c1ab", "false", False, ""),
        ("latest", "", "true", False, ""),
        ("", "3f2c1ab", "true", False, ""),
        ("latest", "3f2c1ab", "true", False, ""),
        ("", "", "yes", False, ""),
        ("", "3f2c1ab", "True", False, ""),
        ("2025-10-17", "", "false", False, ""),
        ("20251017_14302", "", "false", False, ""),
        ("20251017_143025; rm -rf /", "", "false", False, ""),
        ("", "abc$(id)", "false", False, ""),
        ("", "a b", "false", False, ""),
        ("", ".hidden", "false", False, ""),
    ],
    ids=repr,
)
def test_rollback_input_validation(
    wf: dict[str, Any],
    tmp_path: Path,
    backup: str,
    tag: str,
    last_good: str,
    ok: bool,
    outputs: str,
) -> None:
    step = _validate_script(wf)
    out = tmp_path / "github_output"
    out.touch()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step["run"]],
        env={
            "BACKUP_TIMESTAMP": backup,
            "IMAGE_TAG": tag,
            "LAST_GOOD": last_good,
            "GITHUB_OUTPUT": str(out),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode == 0) is ok, result.stdout + result.stderr
    assert out.read_text() == outputs
    if not ok:
        assert "::error::" in result.stdout


FAKE_PYTHON = """#!/bin/bash
printf '%s\\0' "$@" > "$ARGV_FILE"
"""


def _run_with_fake_python(tmp_path: Path, run: str, env: dict[str, str]) -> list[str]:
    """The arguments a workflow step's script gives `python` (through the real retry script)."""
    bin_dir = _fake_bin(tmp_path, "python", FAKE_PYTHON)
    argv_file = tmp_path / "argv"
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", run],
        cwd=ROOT,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "ARGV_FILE": str(argv_file),
            "PULUMI_STACK": "production",  # the workflows' env, variable PULUMI_STACK unset
            **env,
        },
        check=True,
        timeout=60,
    )
    return argv_file.read_text().split("\0")[:-1]


@pytest.mark.parametrize(
    ("kind", "target", "argv"),
    [
        ("backup", "20251017_143025", ["--backup", "20251017_143025", "--yes"]),
        ("image", "3f2c1ab", ["--image-tag", "3f2c1ab", "--yes"]),
        ("last-good", "last-good", ["--last-good", "--yes"]),
    ],
)
def test_rollback_step_runs_rollback_py_for_each_kind(
    wf: dict[str, Any], tmp_path: Path, kind: str, target: str, argv: list[str]
) -> None:
    step = step_named(wf[ROLLBACK]["jobs"]["rollback"], "Roll back")
    assert step["env"]["KIND"] == "${{ steps.validate.outputs.kind }}"
    ran = _run_with_fake_python(tmp_path, step["run"], {"KIND": kind, "TARGET": target})
    assert ran == ["rollback.py", "--stack", "production", *argv]


def test_rollback_step_refuses_an_unknown_kind(wf: dict[str, Any], tmp_path: Path) -> None:
    step = step_named(wf[ROLLBACK]["jobs"]["rollback"], "Roll back")
    with pytest.raises(subprocess.CalledProcessError):
        _run_with_fake_python(tmp_path, step["run"], {"KIND": "other", "TARGET": "x"})
    assert not (tmp_path / "argv").exists()


def test_a_failed_smoke_test_rolls_back_to_the_last_good_version(
    wf: dict[str, Any], tmp_path: Path
) -> None:
    """After a successful `pulumi up` whose smoke test fails, the deploy workflow runs
    `rollback.py --last-good` with the reason, in the production environment."""
    jobs = wf[DEPLOY]["jobs"]
    job = jobs["auto-rollback"]
    assert sorted(job["needs"]) == ["deploy", "smoke-test"]
    assert job["if"] == (
        "${{ !cancelled() && needs.deploy.result == 'success' "
        "&& needs.smoke-test.result == 'failure' }}"
    )
    step = step_named(job, "Roll back to the last good version")
    assert step["env"]["COMMIT"] == "${{ github.sha }}"
    assert step["env"]["GITHUB_TOKEN"] == "${{ secrets.PULUMI_GITHUB_TOKEN }}"
    assert step["run"].startswith("bash .github/scripts/retry-on-stack-lock.sh python rollback.py ")
    sha = "3f2c1ab" + "0" * 33
    ran = _run_with_fake_python(tmp_path, step["run"], {"COMMIT": sha})
    assert ran == [
        "rollback.py",
        *("--stack", "production", "--last-good", "--yes"),
        *("--reason", f"smoke test failed for {sha}"),
    ]
    assert "auto-rollback" in jobs["notify"]["needs"]
    notify = step_named(jobs["notify"], "Notify (Slack, Telegram)")
    assert notify["env"]["AUTO_ROLLBACK_RESULT"] == "${{ needs.auto-rollback.result }}"


def test_the_workflows_give_rollback_py_only_options_it_has(wf: dict[str, Any]) -> None:
    result = subprocess.run(
        [sys.executable, "rollback.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    used = set()
    for name in (DEPLOY, ROLLBACK):
        for _, script in run_blocks(wf[name]):
            for line in script.replace("\\\n", " ").splitlines():
                if "rollback.py" in line:
                    after = line.split("rollback.py", 1)[1]
                    used |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", after))
    assert {"--stack", "--last-good", "--yes", "--reason", "--backup", "--image-tag"} <= used
    for option in used:
        assert re.search(rf"(?<![\w-]){option}(?![\w-])", result.stdout), option


@pytest.mark.parametrize(
    ("rollback", "says"),
    [
        ("success", "AUTOMATICALLY ROLLED BACK to the last good version"),
        ("failure", "the automatic rollback to the last good version failed: act now"),
        ("skipped", "no rollback ran (skipped); consider the 'Rollback Production' workflow"),
    ],
)
def test_smoke_test_failure_message_says_whether_the_rollback_worked(
    wf: dict[str, Any], tmp_path: Path, rollback: str, says: str
) -> None:
    text = _notify_headline(
        tmp_path,
        step_named(wf[DEPLOY]["jobs"]["notify"], "Notify (Slack, Telegram)")["run"],
        {
            "PATH": "/usr/bin:/bin",
            "ACTOR": "octocat",
            "COMMIT": "3f2c1ab" + "0" * 33,
            "RUN_URL": "https://github.com/o/r/actions/runs/1",
            "TEST_RESULT": "success",
            "STAGING_RESULT": "success",
            "PREVIEW_RESULT": "success",
            "DEPLOY_RESULT": "success",
            "SMOKE_RESULT": "failure",
            "AUTO_ROLLBACK_RESULT": rollback,
            "RELEASE_OUTCOME": "released",
            "RELEASE_EXIT_CODE": "0",
        },
    )
    assert says in text, text


# --- pinned actions ----------------------------------------------------------------------------

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})$")
TAG_COMMENT = re.compile(r"^\s+#\s+(?P<tag>v\d+(?:\.\d+){0,2})\s*$")


def test_pin_check_tells_a_pinned_action_from_a_tag() -> None:
    """Guards the check below against accepting everything."""
    good = "      - uses: actions/checkout@11d5960a326750d5838078e36cf38b85af677262 # v4.4.0"
    bad = ["      - uses: actions/checkout@v4", "        uses: actions/checkout@11d5960a # v4"]
    match = USES_LINE.match(good)
    assert match and PINNED.match(match.group(1)) and TAG_COMMENT.match(match.group(2))
    for line in bad:
        match = USES_LINE.match(line)
        assert match and not PINNED.match(match.group(1))
    match = USES_LINE.match("      - uses: actions/checkout@" + "a" * 40)
    assert match and not TAG_COMMENT.match(match.group(2))


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_tag(path: Path) -> None:
    """A tag can be moved to other code; a full commit SHA cannot. The comment names the tag."""
    found = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = USES_LINE.match(line)
        if match is None or match.group(1).startswith("./"):
            continue
        found += 1
        where = f"{path.name}:{number}: {line.strip()}"
        assert PINNED.match(match.group(1)), f"not pinned to a 40-hex commit SHA: {where}"
        assert TAG_COMMENT.match(match.group(2)), f"no `# vX.Y.Z` tag comment: {where}"
    assert found, path.name


def test_one_action_one_pin() -> None:
    """The same action is pinned to the same commit (and tag) everywhere."""
    pins: dict[str, set[str]] = {}
    for path in WORKFLOW_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = USES_LINE.match(line)
            if match and not match.group(1).startswith("./"):
                action, ref = match.group(1).split("@")
                pins.setdefault(action, set()).add(ref + match.group(2).strip())
    assert pins and all(len(refs) == 1 for refs in pins.values()), pins


# --- pinned tool versions (supply chain) ------------------------------------------------------

EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def _steps_using(action: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, job_id, step)
        for path in WORKFLOW_FILES
        for job_id, job in load_workflow(path)["jobs"].items()
        for step in steps(job)
        if str(step.get("uses", "")).split("@")[0] == action
    ]


def test_every_pulumi_action_installs_the_pinned_cli() -> None:
    """pulumi/actions installs the newest 3.x unless told: each step names the CLI version
    tools/toolchain-versions.sh pins (the one the toolchain is built at and tested with)."""
    version = toolchain_versions()["PULUMI_VERSION"]
    assert EXACT_VERSION.match(version), version
    found = _steps_using("pulumi/actions")
    assert {name for name, _, _ in found} == {DEPLOY, TESTS, ROLLBACK}
    # deploy-production: the preview job's two, deploy, auto-rollback, notify; rollback: the
    # rollback and notify jobs; tests: two
    assert len(found) == 10, found
    for name, job_id, step in found:
        assert step.get("with", {}).get("pulumi-version") == version, (name, job_id, step)


def test_every_setup_go_installs_the_pinned_go() -> None:
    version = toolchain_versions()["GO_VERSION"]
    assert EXACT_VERSION.match(version), version
    found = _steps_using("actions/setup-go")
    assert found
    for name, job_id, step in found:
        assert step["with"]["go-version"] == version, (name, job_id)


VENV_SCRIPT = ROOT / ".github" / "scripts" / "python-venv.sh"
VENV_STEP = re.compile(r"bash \.github/scripts/python-venv\.sh requirements(-dev)?\.txt")


def test_pip_is_pinned_in_one_place() -> None:
    """Every virtualenv a workflow makes is made by .github/scripts/python-venv.sh, which gives
    it pip==PIP_VERSION (tools/toolchain-versions.sh, sourced by the script) before the
    requirements; never `--upgrade pip` (whatever PyPI serves that day)."""
    version = toolchain_versions()["PIP_VERSION"]
    assert re.match(r"^\d+\.\d+(\.\d+)?$", version), version
    venvs = 0
    for path in WORKFLOW_FILES:
        text = path.read_text(encoding="utf-8")
        assert "--upgrade pip" not in text and "-U pip" not in text, path.name
        for job_id, script in run_blocks(load_workflow(path)):
            if "pip install" in script or "venv" in script:
                assert VENV_STEP.fullmatch(script.strip()), (path.name, job_id, script)
                venvs += 1
    # deploy: test, preview, staging, deploy, auto-rollback, notify; tests: lint, test, preview;
    # rollback: rollback, notify
    assert venvs == 11
    lines = [line.strip() for line in VENV_SCRIPT.read_text().splitlines()]
    pins = [n for n, line in enumerate(lines) if '"pip==${PIP_VERSION}"' in line]
    assert len(pins) == 2, "the runner's pip, or ensurepip's when that one cannot"
    assert lines.index("python -m venv --without-pip .venv") < pins[0]
    sources = [line for line in lines[: pins[0]] if line.startswith("source ")]
    assert any("tools/toolchain-versions.sh" in line for line in sources), sources
    assert pins[1] < lines.index('.venv/bin/python -m pip install --no-compile -r "$requirements"')
    sourced = subprocess.run(
        ["bash", "-euc", 'source tools/toolchain-versions.sh; printf "pip==%s" "$PIP_VERSION"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout == f"pip=={version}"


def _run_venv_script(tmp_path: Path, path_dirs: list[Path]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "requirements.txt").write_text("# nothing to install: the venv and pip only\n")
    env = {**os.environ, "PATH": os.pathsep.join([*map(str, path_dirs), os.environ["PATH"]])}
    env.pop("GITHUB_PATH", None)
    return subprocess.run(
        ["bash", str(VENV_SCRIPT), "requirements.txt"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _venv_pip_version(tmp_path: Path) -> str:
    proc = subprocess.run(
        [str(tmp_path / ".venv" / "bin" / "python"), "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.split()[1]


@pytest.mark.parametrize("runner_pip", ["usable", "missing"])
def test_the_venv_gets_the_pinned_pip_with_or_without_the_runners_pip(
    tmp_path: Path, runner_pip: str
) -> None:
    """python-venv.sh really makes .venv with pip==PIP_VERSION: through the runner's own pip
    (`pip --python`, the fast way), or, when that Python has no usable pip, through ensurepip,
    saying so."""
    shims: list[Path] = []
    if runner_pip == "missing":  # a `python` whose `-m pip` fails, as one without pip does
        shim_dir = tmp_path / "shim"
        shim_dir.mkdir()
        shim = shim_dir / "python"
        shim.write_text(
            "#!/usr/bin/env bash\n"
            "if [[ ${1:-} == -m && ${2:-} == pip ]]; then\n"
            '  echo "No module named pip" >&2; exit 1\n'
            "fi\n"
            f'exec {shlex.quote(sys.executable)} "$@"\n'
        )
        shim.chmod(0o755)
        shims.append(shim_dir)
    work = tmp_path / "job"
    work.mkdir()
    proc = _run_venv_script(work, shims)
    assert proc.returncode == 0, proc.stderr
    assert _venv_pip_version(work) == toolchain_versions()["PIP_VERSION"]
    notice = "seeding .venv with ensurepip instead"
    assert (notice in proc.stderr) == (runner_pip == "missing"), proc.stderr


# --- pull request previews hold no production secrets -----------------------------------------


def test_pull_request_preview_holds_no_production_decryption_rights(
    wf: dict[str, Any],
) -> None:
    tests = raw(TESTS)
    for name in ("PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_GITHUB_TOKEN"):
        assert f"secrets.{name}" not in tests, name
    assert "secrets.PULUMI_BACKEND_URL" not in tests and "vars.PULUMI_BACKEND_URL" not in tests
    assert set(re.findall(r"secrets\.(\w+)", tests)) <= {"GITHUB_TOKEN", "CODECOV_TOKEN"}
    job = wf[TESTS]["jobs"]["preview"]
    assert "environment" not in job
    assert job["env"]["PREVIEW_STACK"] != "production"
    (preview,) = [s for s in uses(job, "pulumi/actions") if "command" in s["with"]]
    assert preview["with"]["cloud-url"] == "file://${{ runner.temp }}/pulumi-state"
    create = step_named(job, "Create the throwaway preview stack")["run"]
    assert 'PULUMI_BACKEND_URL="file://${state}"' in create
    assert 'PULUMI_CONFIG_PASSPHRASE="$(openssl rand -hex 32)"' in create
    assert 'echo "::add-mask::${PULUMI_CONFIG_PASSPHRASE}"' in create
    assert "--stack production" not in create and "production" not in str(preview["with"])


def test_only_production_jobs_read_the_deploy_secrets(wf: dict[str, Any]) -> None:
    """The Pulumi credentials are read only by jobs in the `production` environment (approval,
    main only) and by the deploy's preview job in `production-preview` (main only)."""
    for name, workflow in wf.items():
        for job_id, job in workflow["jobs"].items():
            text = str(job)
            reads = [
                name
                for name in (
                    "PULUMI_ACCESS_TOKEN",
                    "PULUMI_CONFIG_PASSPHRASE",
                    "PULUMI_BACKEND_URL",
                )
                if f"secrets.{name}" in text or f"vars.{name}" in text
            ]
            if reads:
                # The preview, and the notify jobs (they read the stack's notification
                # secrets and the server; an approval for a message would be absurd).
                expected = (
                    "production-preview"
                    if (name, job_id)
                    in ((DEPLOY, "preview"), (DEPLOY, "notify"), (ROLLBACK, "notify"))
                    else "staging"
                    if (name, job_id) == (DEPLOY, "staging")
                    else "production"
                )
                assert job.get("environment", {}).get("name") == expected, (name, job_id)


def _load_preview_stack_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "preview_stack", ROOT / ".github" / "scripts" / "preview_stack.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preview_stack_gets_production_plain_config_and_no_ciphertext(tmp_path: Path) -> None:
    production = tmp_path / "Pulumi.production.yaml"
    production.write_text(
        "config:\n"
        "  mcp:server:\n"
        "    host: 147.79.101.32\n"
        "    hostKey: ssh-ed25519 AAAA\n"
        "    extra:\n"
        "      secure: v1:nested-ciphertext\n"
        "  mcp:sshPrivateKey:\n"
        "    secure: v1:key-ciphertext\n"
        "  mcp:paths:\n"
        "    deployDir: /opt/mcp\n"
        "  mcp:slackWebhookUrl:\n"
        "    secure: v1:slack-ciphertext\n",
        encoding="utf-8",
    )
    destination = tmp_path / "Pulumi.pr-preview.yaml"
    destination.write_text("encryptionsalt: v1:own-salt\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / ".github/scripts/preview_stack.py"),
            str(production),
            str(destination),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["mcp:server.extra", "mcp:sshPrivateKey", "mcp:slackWebhookUrl"]
    written = yaml.safe_load(destination.read_text(encoding="utf-8"))
    assert written["encryptionsalt"] == "v1:own-salt"
    assert written["config"] == {
        "mcp:server": {"host": "147.79.101.32", "hostKey": "ssh-ed25519 AAAA"},
        "mcp:paths": {"deployDir": "/opt/mcp"},
    }
    assert "ciphertext" not in destination.read_text(encoding="utf-8")


def test_preview_stack_config_of_the_real_production_file() -> None:
    module = _load_preview_stack_module()
    production = yaml.safe_load((ROOT / "Pulumi.production.yaml").read_text(encoding="utf-8"))
    config, dropped = module.preview_config(production)
    assert config["mcp:server"]["host"] == production["config"]["mcp:server"]["host"]
    assert set(config) | set(dropped) == set(production["config"])
    assert "secure" not in str(config)


# --- running the workflows' own shell ---------------------------------------------------------

FAKE_PULUMI = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["PULUMI_CALLS"], "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def _fake_bin(tmp_path: Path, name: str, source: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(source, encoding="utf-8")
    tool.chmod(0o755)
    return bin_dir


def _option_end_then_key_value(argv: list[str]) -> tuple[str, str | None]:
    """(key, value) after `--`, as any argument parser that honours `--` reads them."""
    assert "--" in argv, argv
    rest = argv[argv.index("--") + 1 :]
    assert all(not arg.startswith("-") for arg in argv[: argv.index("--")] if arg in rest)
    return rest[0], (rest[1] if len(rest) > 1 else None)


@pytest.mark.parametrize(
    "message",
    ["-x", "--secret", "--path=mcp:imageTag oops", "- leading dash\nsecond line", "plain"],
    ids=repr,
)
def test_commit_message_starting_with_a_dash_stays_a_value(
    wf: dict[str, Any], tmp_path: Path, message: str
) -> None:
    step = step_named(wf[DEPLOY]["jobs"]["deploy"], "Set image tag")
    calls = tmp_path / "calls"
    bin_dir = _fake_bin(tmp_path, "pulumi", FAKE_PULUMI)
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step["run"]],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "PULUMI_CALLS": str(calls),
            "PULUMI_STACK": "production",
            "IMAGE_TAG": "3f2c1ab" + "0" * 33,
            "RELEASE_AUTHOR": "-octocat",
            "RELEASE_MESSAGE": message,
        },
        check=True,
        timeout=30,
    )
    argvs = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [argv[:2] for argv in argvs] == [["config", "set"]] * 4
    pairs = dict(_option_end_then_key_value(argv) for argv in argvs)
    assert pairs == {
        "mcp:imageTag": "3f2c1ab" + "0" * 33,
        "mcp:image.build": "true",
        "mcp:release.author": "-octocat",
        "mcp:release.message": message.split("\n", 1)[0],
    }
    for argv in argvs:
        assert "--secret" not in argv[: argv.index("--")]


def _notify_argv(tmp_path: Path, run: str, env: dict[str, str]) -> list[str]:
    """The argv the notify step gives `python` (bash expands the step's env as the runner)."""
    bin_dir = tmp_path / "notify-bin"
    bin_dir.mkdir(exist_ok=True)
    argv_file = tmp_path / "notify-argv.json"
    fake = bin_dir / "python"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(argv_file)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    fake.chmod(0o755)
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", run],
        env={**env, "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
             "PULUMI_STACK": "production", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")},
        check=True, timeout=60,
    )  # fmt: skip
    return list(json.loads(argv_file.read_text()))


def _notify_headline(tmp_path: Path, run: str, env: dict[str, str]) -> str:
    """The headline the notifier decides from the arguments the workflow's step passes."""
    sys.path.insert(0, str(ROOT))
    try:
        import oncall
    finally:
        sys.path.remove(str(ROOT))
    argv = _notify_argv(tmp_path, run, env)
    assert argv[0] == "oncall.py"
    args = oncall.parser().parse_args(argv[1:])
    assert args.stack == ["production"] and args.command == "notify"
    return oncall.notify_verdict(args).headline


@pytest.mark.parametrize(("name", "job_id"), [(DEPLOY, "notify"), (ROLLBACK, "notify")])
def test_the_notify_step_passes_results_only_never_a_secret(
    wf: dict[str, Any], tmp_path: Path, name: str, job_id: str
) -> None:
    """The step's command line holds job results, the commit, actor and run URL: the webhook
    and the bot token are read by the notifier from the stack (Pulumi secrets)."""
    step = step_named(wf[name]["jobs"][job_id], "Notify (Slack, Telegram)")
    env = {key: f"value-of-{key}" for key in step["env"]}
    env.update({k: "success" for k in step["env"] if k.endswith("_RESULT")})
    env["RUN_URL"] = "https://github.com/o/r/actions/runs/1"
    argv = _notify_argv(tmp_path, step["run"], {"PATH": "/usr/bin:/bin", **env})
    assert "--summary" in argv and "--dry-run" not in argv
    assert not any("hooks." in word or "/bot" in word for word in argv), argv
    headline = _notify_headline(tmp_path, step["run"], {"PATH": "/usr/bin:/bin", **env})
    assert "value-of-ACTOR" in headline


@pytest.mark.parametrize(
    ("log", "says", "never"),
    [
        ("rolled-back.jsonl", "AUTOMATICALLY ROLLED BACK", "act now"),
        ("rollback-failed.jsonl", "automatic rollback failed", "ROLLED BACK"),
        ("backup-failed.jsonl", "release.sh exit 6", "ROLLED BACK"),
        # The commit message says "ROLLED BACK ... Process exited with status 10", in the
        # update's config and in the failed Slack step's output and error.
        ("slack-failed.jsonl", "was released, but the deploy job failed afterwards", "ROLLED BACK"),
        ("deploy-failed.jsonl", "failed before the release", "ROLLED BACK"),
    ],
)
def test_deploy_failure_message_follows_the_release_events(
    wf: dict[str, Any], tmp_path: Path, log: str, says: str, never: str
) -> None:
    """The deploy job's own outcome step on a real event log, then the notify job's own Slack
    step with what the deploy job outputs: the message follows the release's events only."""
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    shutil.copy(
        ROOT / "tests" / "workflows" / "event_logs" / log, runner_temp / "pulumi-up-events.jsonl"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    github_output = tmp_path / "github_output"
    github_output.touch()
    step = step_named(wf[DEPLOY]["jobs"]["deploy"], "Read the release's outcome")
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step["run"]],
        cwd=ROOT,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "RUNNER_TEMP": str(runner_temp),
            "GITHUB_OUTPUT": str(github_output),
            "UPDATE_OUTCOME": "failure",
        },
        check=True,
        timeout=60,
    )
    outputs = dict(line.split("=", 1) for line in github_output.read_text().splitlines())
    job_outputs = wf[DEPLOY]["jobs"]["deploy"]["outputs"]
    assert job_outputs["release-exit-code"] == "${{ steps.release.outputs.exit-code }}"
    text = _notify_headline(
        tmp_path,
        step_named(wf[DEPLOY]["jobs"]["notify"], "Notify (Slack, Telegram)")["run"],
        {
            "PATH": "/usr/bin:/bin",
            "ACTOR": "octocat",
            "COMMIT": "3f2c1ab" + "0" * 33,
            "RUN_URL": "https://github.com/o/r/actions/runs/1",
            "TEST_RESULT": "success",
            "STAGING_RESULT": "success",
            "PREVIEW_RESULT": "success",
            "DEPLOY_RESULT": "failure",
            "SMOKE_RESULT": "skipped",
            "RELEASE_OUTCOME": outputs["outcome"],
            "RELEASE_EXIT_CODE": outputs["exit-code"],
            "AUTO_ROLLBACK_RESULT": "skipped",
        },
    )
    assert says in text, text
    assert never not in text, text


# --- waiting for the stack lock -----------------------------------------------------------------

RETRY = ROOT / ".github" / "scripts" / "retry-on-stack-lock.sh"
FLAKY = """#!/bin/bash
# Fails with MESSAGE the first FAILURES times, then succeeds.
count=$(cat "$COUNTER" 2>/dev/null || echo 0)
echo $((count + 1)) > "$COUNTER"
if ((count < FAILURES)); then
    echo "error: $MESSAGE" >&2
    exit 1
fi
echo "update done: $*"
"""


def _run_retry(tmp_path: Path, failures: int, message: str, wait: int = 60) -> tuple[int, int, str]:
    bin_dir = _fake_bin(tmp_path, "flaky", FLAKY)
    counter = tmp_path / "count"
    result = subprocess.run(
        ["bash", str(RETRY), str(bin_dir / "flaky"), "--stack", "production"],
        env={
            "PATH": "/usr/bin:/bin",
            "COUNTER": str(counter),
            "FAILURES": str(failures),
            "MESSAGE": message,
            "MCP_LOCK_WAIT_SECONDS": str(wait),
            "MCP_LOCK_RETRY_SECONDS": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, int(counter.read_text()), result.stdout


@pytest.mark.parametrize(
    "message",
    [
        "[409] Conflict: Another update is currently in progress.",
        "the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end",
    ],
)
def test_an_update_waits_for_the_stack_lock_instead_of_failing(
    tmp_path: Path, message: str
) -> None:
    status, attempts, output = _run_retry(tmp_path, 2, message)
    assert (status, attempts) == (0, 3), output
    assert output.count("::notice::the Pulumi stack is locked") == 2
    assert "update done: --stack production" in output


def test_any_other_failure_is_returned_at_once(tmp_path: Path) -> None:
    status, attempts, output = _run_retry(tmp_path, 5, "[release] FAILED: ROLLED BACK")
    assert (status, attempts) == (1, 1), output


def test_waiting_for_the_lock_gives_up_after_the_deadline(tmp_path: Path) -> None:
    status, attempts, output = _run_retry(tmp_path, 99, "the stack is currently locked", wait=0)
    assert (status, attempts) == (1, 1), output
    assert "::error::the Pulumi stack is still locked" in output
