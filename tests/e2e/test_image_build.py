"""The program builds the sample app with pulumi-docker, pushes it, and deploys it digest-pinned.

The stack sets `mcp:image.build: true` with `mcp:image.prepare` = `app/build.sh --context DIR`
(the static Go binary the `FROM scratch` Dockerfile copies, so nothing is pulled), on a copy of
`app/` per test so a test can change the sources. The image goes to a repository of its own in
the local registry (with auth, standing in for GHCR), tagged by a commit-like tag and `latest`.
What the registry holds is read from the registry's own API, not from Pulumi's outputs.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from tests.e2e.pulumi_output import changed_resources, changes_besides_script_copies
from tests.e2e.test_rollback import rollback

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from local.target import HttpProbe, LocalServer
    from tests.e2e.conftest import E2EStack

# The session's toolchain builds this plugin only for these tests (tests/e2e/conftest.py).
PULUMI_PLUGINS = ("docker",)
ROOT_APP_FILES = ("main.go", "go.mod", "Dockerfile", "build.sh")
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def registry_digest(server: LocalServer, repository: str, tag: str) -> str | None:
    """The manifest digest the registry reports for `repository:tag` (None: no such tag)."""
    request = urllib.request.Request(
        f"http://{server.registry}/v2/{repository}/manifests/{tag}", method="HEAD"
    )
    token = base64.b64encode(f"{server.registry_user}:{server.registry_password}".encode())
    request.add_header("Authorization", f"Basic {token.decode()}")
    request.add_header("Accept", MANIFEST_TYPES)
    try:
        with _NO_PROXY.open(request, timeout=30) as response:
            return str(response.headers["Docker-Content-Digest"])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def app_copy(tmp_path: Path) -> Path:
    """A copy of the sample app's sources (the tests change them, never the checkout's)."""
    from local.target import APP_DIR

    copy = tmp_path / "app"
    copy.mkdir()
    for name in ROOT_APP_FILES:
        shutil.copy2(APP_DIR / name, copy / name)
    return copy


def build_config(app: Path, repository: str, push_user: str) -> dict[str, object]:
    context = app.parent / "context"
    return {
        "mcp:image": {
            "repository": repository,
            "build": True,
            "context": str(context),
            "dockerfile": "Dockerfile",
            "prepare": ["bash", str(app / "build.sh"), "--context", str(context)],
            "pushUser": push_user,
        }
    }


def make_build_stack(
    make_stack: Callable[..., E2EStack],
    server: LocalServer,
    tmp_path: Path,
    name: str,
    *,
    tag: str,
    push_password: str,
) -> tuple[E2EStack, Path, str]:
    app = app_copy(tmp_path)
    repository = f"mcp/e2e-{name}-{secrets.token_hex(3)}"
    e2e = make_stack(name, tag=tag, config=build_config(app, repository, server.registry_user))
    e2e.stack.set_config("mcp:registryPushPassword", push_password, secret=True)
    e2e.secret_values.append(push_password)
    return e2e, app, repository


def test_build_push_deploy_noop_source_change_and_rollback_by_tag(
    make_stack: Callable[..., E2EStack],
    local_server: LocalServer,
    http: HttpProbe,
    tmp_path: Path,
) -> None:
    tag_a, tag_b = "c0ffee1", "c0ffee2"
    e2e, app, repository = make_build_stack(
        make_stack,
        local_server,
        tmp_path,
        "build",
        tag=tag_a,
        push_password=local_server.registry_password,
    )
    name = f"{local_server.registry}/{repository}"

    # 1. Build, push (tag + latest), deploy digest-pinned.
    assert registry_digest(local_server, repository, tag_a) is None
    e2e.up()
    digest_a = registry_digest(local_server, repository, tag_a)
    assert digest_a is not None, "the image was not pushed under its tag"
    assert e2e.stack.outputs()["image"] == f"{name}:{tag_a}@{digest_a}"
    assert registry_digest(local_server, repository, "latest") == digest_a
    assert e2e.served_version(http) == tag_a
    history_after_a = e2e.history_log()
    assert f"{name}:{tag_a}@{digest_a}" in history_after_a

    # 2. Nothing changed: nothing is built, pushed or run on the server.
    proc = e2e.up()
    assert changes_besides_script_copies(proc.stdout) == [], proc.stdout
    assert "Pushing" not in proc.stdout
    assert e2e.history_log() == history_after_a
    assert registry_digest(local_server, repository, tag_a) == digest_a

    # 3. A source change alone (same tag) is seen: the build context differs.
    main_go = app / "main.go"
    main_go.write_text(
        main_go.read_text().replace(
            '{"status": "ok", "version": version}',
            '{"status": "ok", "version": version, "build": "changed"}',
        )
    )
    preview = e2e.stack.preview()
    assert "app-build" in "\n".join(changed_resources(preview.stdout)), preview.stdout
    # ... but never pushed under the tag that already served (issue 16, item 3).
    refused = e2e.up(check=False)
    assert refused.returncode != 0
    assert f"REFUSED: {name}:{tag_a} is already in the registry" in refused.stdout, refused.stdout
    assert "Pushing" not in refused.stdout
    assert registry_digest(local_server, repository, tag_a) == digest_a
    assert e2e.history_log() == history_after_a
    # ... and a new commit of it is built, pushed and deployed.
    e2e.set_tag(tag_b)
    e2e.up()
    digest_b = registry_digest(local_server, repository, tag_b)
    assert digest_b is not None and digest_b != digest_a
    assert e2e.stack.outputs()["image"] == f"{name}:{tag_b}@{digest_b}"
    assert registry_digest(local_server, repository, "latest") == digest_b
    assert registry_digest(local_server, repository, tag_a) == digest_a
    status, body = http.get(e2e.target.health_url)
    assert status == 200 and '"build":"changed"' in body.replace(" ", ""), body

    # 4. Roll back to the first tag with rollback.py: its digest that served, nothing built.
    proc = rollback(e2e, "--image-tag", tag_a)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Pushing" not in proc.stdout
    assert e2e.served_version(http) == tag_a
    assert e2e.stack.outputs()["image"] == f"{name}:{tag_a}@{digest_a}"
    # The stack still says build: true, yet a plain up (today's sources) builds and pushes
    # nothing: the pin holds the rollback's target.
    assert e2e.stack.run("config", "get", "--path", "mcp:image.build").stdout.strip() == "true"
    history_after_rollback = e2e.history_log()
    proc = e2e.up()
    assert "Pushing" not in proc.stdout
    assert e2e.history_log() == history_after_rollback
    assert e2e.served_version(http) == tag_a
    assert registry_digest(local_server, repository, tag_a) == digest_a
    assert registry_digest(local_server, repository, tag_b) == digest_b
    assert registry_digest(local_server, repository, "latest") == digest_b

    export = e2e.stack.export()
    for value in e2e.secret_values:
        assert value not in export
        assert all(value not in text for text in e2e.stack.log)


def test_a_refused_push_fails_before_the_server_is_touched(
    make_stack: Callable[..., E2EStack], local_server: LocalServer, tmp_path: Path
) -> None:
    wrong_password = f"wrong-{secrets.token_hex(8)}"
    e2e, _, repository = make_build_stack(
        make_stack, local_server, tmp_path, "refused", tag="c0ffee3", push_password=wrong_password
    )

    proc = e2e.up(check=False)

    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    # The error itself (not only the progress lines) names the registry and the refusal.
    diagnostics = output.split("Diagnostics:", 1)[-1]
    assert f"the registry {local_server.registry} refused" in diagnostics, output
    assert "401 Unauthorized" in diagnostics and "mcp:registryPushPassword" in diagnostics, output
    assert "Nothing was built" in diagnostics, output
    assert registry_digest(local_server, repository, "c0ffee3") is None
    assert not (e2e.target.deploy_dir / ".deploy").exists(), "the server was touched"
    assert list(e2e.target.backup_dir.iterdir()) == []
    assert wrong_password not in output
