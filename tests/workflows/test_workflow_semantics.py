"""What the workflows must do: triggers, permissions, concurrency, secrets and injection rules."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from workflow_support import WORKFLOW_FILES, WORKFLOWS_DIR, load_workflow, run_blocks

DEPLOY = "deploy-production.yml"
TESTS = "tests.yml"
ROLLBACK = "rollback.yml"

ALLOWED_SECRETS = {
    "GITHUB_TOKEN",
    "PULUMI_ACCESS_TOKEN",
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_GITHUB_TOKEN",
    "SLACK_WEBHOOK_URL",
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
    assert set(inputs) == {"backup_timestamp", "image_tag"}
    for spec in inputs.values():
        assert spec["type"] == "string"
        assert spec.get("required", False) is False


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [DEPLOY, TESTS, ROLLBACK])
def test_top_level_permissions_read_only(wf: dict[str, Any], name: str) -> None:
    assert wf[name]["permissions"] == {"contents": "read"}
    assert "write-all" not in raw(name)
    assert "read-all" not in raw(name)


def test_job_permissions_are_minimal(wf: dict[str, Any]) -> None:
    allowed = {
        (DEPLOY, "deploy"): {"contents": "read", "packages": "write"},
        (DEPLOY, "smoke-test"): {},
        (DEPLOY, "notify"): {"actions": "read"},
        (TESTS, "preview"): {"contents": "read", "pull-requests": "write"},
        (ROLLBACK, "rollback"): {"contents": "read"},
        (ROLLBACK, "smoke-test"): {},
        (ROLLBACK, "notify"): {},
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
    jobs = wf[DEPLOY]["jobs"]
    assert "skip_tests" in jobs["test"]["if"]
    assert jobs["deploy"]["needs"] in ("test", ["test"])
    deploy_if = jobs["deploy"]["if"]
    assert "needs.test.result == 'success'" in deploy_if
    assert "needs.test.result == 'skipped'" in deploy_if
    assert jobs["smoke-test"]["needs"] in ("deploy", ["deploy"])
    assert "url" in jobs["deploy"]["outputs"]
    assert {"test", "deploy", "smoke-test"} <= set(jobs["notify"]["needs"])


def test_test_job_lints_and_tests(wf: dict[str, Any]) -> None:
    scripts = "\n".join(script for job_id, script in run_blocks(wf[DEPLOY]) if job_id == "test")
    assert "ruff check" in scripts
    assert "shellcheck remote/*.sh" in scripts
    assert "pytest tests/unit tests/scripts tests/workflows" in scripts


def test_tests_workflow_jobs(wf: dict[str, Any]) -> None:
    jobs = wf[TESTS]["jobs"]
    assert {"lint", "test", "preview"} <= set(jobs)
    test_scripts = " ".join(s for j, s in run_blocks(wf[TESTS]) if j == "test")
    assert "--cov=components" in test_scripts and "--cov-report=xml" in test_scripts
    assert [s["uses"] for s in uses(jobs["test"], "codecov/codecov-action")] == [
        "codecov/codecov-action@v5"
    ]
    assert "pull_request" in jobs["preview"]["if"]
    (preview,) = [s for s in uses(jobs["preview"], "pulumi/actions") if "with" in s]
    assert preview["uses"] == "pulumi/actions@v6"
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["stack-name"] == "production"
    assert preview["with"]["comment-on-pr"] is True
    assert preview["with"]["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert jobs["preview"]["permissions"]["pull-requests"] == "write"


@pytest.mark.parametrize(("name", "job_id"), [(DEPLOY, "deploy"), (ROLLBACK, "rollback")])
def test_production_environment(wf: dict[str, Any], name: str, job_id: str) -> None:
    env = wf[name]["jobs"][job_id]["environment"]
    assert env["name"] == "production"
    assert env.get("url"), "the environment should link to the deployed URL"


def test_shared_concurrency_group(wf: dict[str, Any]) -> None:
    deploy = wf[DEPLOY]["concurrency"]
    rollback = wf[ROLLBACK]["concurrency"]
    assert deploy == {"group": "deploy-production", "cancel-in-progress": False}
    assert rollback == deploy


def test_pulumi_up_sets_image_tag_from_commit(wf: dict[str, Any]) -> None:
    job = wf[DEPLOY]["jobs"]["deploy"]
    names = [s.get("name", s.get("uses", "")) for s in steps(job)]
    (up,) = [s for s in uses(job, "pulumi/actions") if s.get("with", {}).get("command") == "up"]
    assert up["uses"] == "pulumi/actions@v6"
    assert up["with"]["stack-name"] == "production"
    assert up["env"]["GITHUB_TOKEN"] == "${{ secrets.PULUMI_GITHUB_TOKEN }}"
    (tag_step,) = [s for s in steps(job) if "mcp:imageTag" in s.get("run", "")]
    assert "--stack production" in tag_step["run"]
    assert "mcp:image.build' true" in tag_step["run"]
    tag_var = re.search(r"mcp:imageTag \"\$(\w+)\"", tag_step["run"])
    assert tag_var, tag_step["run"]
    assert tag_step["env"][tag_var.group(1)] == "${{ github.sha }}"
    # The tag is set and the registry login done before `pulumi up`.
    login = next(i for i, s in enumerate(steps(job)) if "docker login ghcr.io" in s.get("run", ""))
    assert login < steps(job).index(tag_step) < steps(job).index(up), names
    login_step = steps(job)[login]
    assert "--password-stdin" in login_step["run"]
    assert "${{ secrets.GITHUB_TOKEN }}" in login_step["env"].values()


def test_admin_token_only_on_pulumi_steps(wf: dict[str, Any]) -> None:
    """PULUMI_GITHUB_TOKEN is exported only on the step that runs `pulumi up`."""
    for name, workflow in wf.items():
        for job_id, job in workflow["jobs"].items():
            assert "PULUMI_GITHUB_TOKEN" not in str(job.get("env", {})), f"{name}:{job_id}"
            for step in steps(job):
                if "PULUMI_GITHUB_TOKEN" in str(step.get("env", {})):
                    runs_pulumi_up = step.get("with", {}).get("command") == "up" or (
                        "rollback.py" in step.get("run", "")
                    )
                    assert runs_pulumi_up, f"{name}:{job_id}: {step.get('name')}"
    assert "PULUMI_GITHUB_TOKEN" not in raw(TESTS).split("jobs:", 1)[1]


def test_rollback_runs_rollback_py_then_smoke_test(wf: dict[str, Any]) -> None:
    jobs = wf[ROLLBACK]["jobs"]
    scripts = "\n".join(s for j, s in run_blocks(wf[ROLLBACK]) if j == "rollback")
    assert "python rollback.py --stack production --backup" in scripts
    assert "python rollback.py --stack production --image-tag" in scripts
    assert "--yes" in scripts
    assert jobs["smoke-test"]["needs"] in ("rollback", ["rollback"])
    smoke = " ".join(s for j, s in run_blocks(wf[ROLLBACK]) if j == "smoke-test")
    assert "/api/v1/health" in smoke and "--retry" in smoke
    assert "SLACK_WEBHOOK_URL" in str(jobs["notify"])


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


def test_slack_steps_guarded_by_non_empty_webhook(wf: dict[str, Any]) -> None:
    for name in (DEPLOY, ROLLBACK):
        job = wf[name]["jobs"]["notify"]
        assert job["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
        slack = [s for s in steps(job) if "SLACK_WEBHOOK_URL" in s.get("run", "")]
        assert slack, name
        for step in slack:
            assert "env.SLACK_WEBHOOK_URL != ''" in step["if"], name


def test_deploy_notification_detects_automatic_rollback(wf: dict[str, Any]) -> None:
    scripts = "\n".join(s for j, s in run_blocks(wf[DEPLOY]) if j == "notify")
    assert "ROLLED BACK" in scripts
    assert "contains(needs.*.result, 'failure')" in wf[DEPLOY]["jobs"]["notify"]["if"]


# --- rollback input validation (the real script, run with bash) --------------------------------


def _validate_script(wf: dict[str, Any]) -> dict[str, Any]:
    job = wf[ROLLBACK]["jobs"]["rollback"]
    first = steps(job)[0]
    assert first.get("id") == "validate", "input validation must be the first step"
    assert first["env"] == {
        "BACKUP_TIMESTAMP": "${{ inputs.backup_timestamp }}",
        "IMAGE_TAG": "${{ inputs.image_tag }}",
    }
    return first


@pytest.mark.parametrize(
    ("backup", "tag", "ok", "outputs"),
    [
        ("20251017_143025", "", True, "kind=backup\ntarget=20251017_143025\n"),
        ("latest", "", True, "kind=backup\ntarget=latest\n"),
        (" latest ", "", True, "kind=backup\ntarget=latest\n"),
        ("", "3f2c1ab", True, "kind=image\ntarget=3f2c1ab\n"),
        ("", "v1.2.3", True, "kind=image\ntarget=v1.2.3\n"),
        ("", "", False, ""),
        ("  ", " ", False, ""),
        ("latest", "3f2c1ab", False, ""),
        ("2025-10-17", "", False, ""),
        ("20251017_14302", "", False, ""),
        ("20251017_143025; rm -rf /", "", False, ""),
        ("", "abc$(id)", False, ""),
        ("", "a b", False, ""),
        ("", ".hidden", False, ""),
    ],
    ids=repr,
)
def test_rollback_input_validation(
    wf: dict[str, Any], tmp_path: Path, backup: str, tag: str, ok: bool, outputs: str
) -> None:
    step = _validate_script(wf)
    out = tmp_path / "github_output"
    out.touch()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step["run"]],
        env={
            "BACKUP_TIMESTAMP": backup,
            "IMAGE_TAG": tag,
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
