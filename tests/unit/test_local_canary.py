"""`python -m local.canary` (local/demo.sh --strategy canary): a command's canary steps, read
from its own output, against what a prober saw meanwhile."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local.canary import canary_steps, main


class _Version(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"version": "v2"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def version_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Version)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/version"
    server.shutdown()
    server.server_close()


# What release.sh prints for one step (remote/lib/canary.sh), with the times of this run.
STEP = """
import sys, time
start = time.time()
print(f"[release] canary step 1/1 (100%): 100% of requests to colour green; from t={start:.3f}")
sys.stdout.flush()
time.sleep(1.5)
print(f"[release] canary step 1/1 (100%) passed at t={time.time():.3f}: colour green: fine")
"""


def test_prints_each_step_share_and_returns_the_command_exit_code(
    version_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--url", version_url, "--version", "v2", "--", sys.executable, "-c", STEP])
    out = capsys.readouterr().out
    assert code == 0
    assert "canary step 1/1 (100%): 100% of requests" in out  # the command's output, streamed
    (line,) = [line for line in out.splitlines() if line.startswith("[canary]   step 1")]
    assert "passed after 1." in line and "100.0% answered by v2, 0 failed" in line, line
    failing = main(["--url", version_url, "--version", "v2", "--", sys.executable, "-c", "exit(3)"])
    assert failing == 3
    assert "no canary step was logged" in capsys.readouterr().out


def test_a_step_printed_twice_by_pulumi_counts_once() -> None:
    start = "canary step 1/3 (10%): 10% of requests to colour green; from t=100.000"
    end = "canary step 1/3 (10%) FAILED at t=105.500: 5 of 10 failed"
    log = "\n".join([start, end, "error: update failed", start, end])
    (step,) = canary_steps(log, after=0)
    assert (step.number, step.percent, step.outcome, step.end) == (1, 10, "FAILED", 105.5)
