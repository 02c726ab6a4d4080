"""The runner itself (tools/act.sh), apart from this repository's workflows: what act serves on
this machine while a job runs. Needs act (tools/build-act.sh, which tools/test.sh runs first);
no deploy target.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.workflows.act.harness import ACT_SH

PROBE_WORKFLOW = """\
on: push
jobs:
  probe:
    runs-on: ubuntu-latest
    steps:
      - run: |
          echo "cache-url=$ACTIONS_CACHE_URL"
          ss -Hltnp | grep '"act"' | sed 's/^/listening /'
"""


def test_the_runner_serves_its_cache_on_loopback_only(tmp_path: Path) -> None:
    """act starts a cache server for every run, bound to the machine's outbound address unless
    told otherwise (it was 192.0.2.2 here): tools/act.sh keeps it on 127.0.0.1, and the jobs
    are told that address."""
    workflow = tmp_path / ".github" / "workflows" / "probe.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(PROBE_WORKFLOW)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    proc = subprocess.run(
        ["bash", str(ACT_SH), "push", "-W", str(workflow)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cache_urls = re.findall(r"\| cache-url=(\S*)", proc.stdout)
    assert cache_urls and all(u.startswith("http://127.0.0.1:") for u in cache_urls), proc.stdout
    listening = re.findall(r"\| listening LISTEN\s+\d+\s+\d+\s+(\S+):\d+", proc.stdout)
    assert listening, f"no listener of act's seen:\n{proc.stdout}"
    assert set(listening) == {"127.0.0.1"}, listening
