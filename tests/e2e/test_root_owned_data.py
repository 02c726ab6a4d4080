"""A rollback through `pulumi up` when Docker created the data dir as root (found running the
demo): the deploy user cannot move a root-owned dir elsewhere, so the restore renames it in
place, and the previous version serves again with nothing left behind."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack


def test_automatic_rollback_works_when_docker_created_the_data_dir_as_root(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    e2e = make_stack("root-data")
    e2e.up()
    assert e2e.served_version(http) == "v1"
    data_dir = e2e.target.deploy_dir / "data"
    os.chown(data_dir, 0, 0)  # as Docker leaves it when it creates ./data itself

    e2e.set_tag("broken-crash")
    proc = e2e.up(check=False)

    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "ROLLED BACK" in output, output
    assert e2e.served_version(http) == "v1"
    assert e2e.stack.outputs()["image"] == sample_images["v1"]
    leftovers = [p.name for p in e2e.target.deploy_dir.iterdir() if p.name.startswith(".mcp-")]
    assert leftovers == []
