"""A load prober: GETs a URL at a steady rate from a thread and records every answer.

Used by tests/integration/test_zero_downtime.py and bench/run.py. Each request opens a new
connection (like a client that does not reuse keep-alive connections), never through an
HTTP proxy from the environment. A request *fails* when it gets no HTTP answer or a status
other than 200; it is *slow* when it takes longer than `slow_s`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic() when sent
    seconds: float
    status: int  # 0: no HTTP answer
    version: str  # "version" of the JSON body, "" if none
    error: str


@dataclass
class ProbeReport:
    samples: list[Sample]
    seconds: float
    slow_s: float
    epoch_offset: float = 0.0  # time.time() - time.monotonic() when the prober started

    @property
    def sent(self) -> int:
        return len(self.samples)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    @property
    def slow(self) -> list[Sample]:
        return [s for s in self.samples if s.seconds > self.slow_s]

    @property
    def versions(self) -> list[str]:
        """Versions answered, in the order the requests were sent (successful ones only)."""
        ordered = sorted(self.samples, key=lambda s: s.started)
        return [s.version for s in ordered if s.status == 200]

    def between(self, start_epoch: float, end_epoch: float) -> list[Sample]:
        """The samples sent between two wall-clock times (e.g. a canary step's log lines)."""
        return [s for s in self.samples if start_epoch <= s.started + self.epoch_offset < end_epoch]

    def share(self, version: str, start_epoch: float, end_epoch: float) -> tuple[float, int]:
        """The share of the requests sent between the two times that `version` answered
        (failed answers count, by the version in their body), and how many were sent."""
        window = self.between(start_epoch, end_epoch)
        hits = sum(1 for s in window if s.version == version)
        return (hits / len(window) if window else 0.0), len(window)

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.sent,
            "seconds": round(self.seconds, 2),
            "rate_per_s": round(self.rate, 1),
            "failed": len(self.failed),
            "slow": len(self.slow),
            "slow_threshold_s": self.slow_s,
            "max_latency_s": round(max((s.seconds for s in self.samples), default=0.0), 3),
            "versions": sorted(set(self.versions)),
            "failures": [{"status": s.status, "error": s.error[:200]} for s in self.failed[:5]],
        }


@dataclass
class Prober:
    url: str
    rate: float = 40.0  # requests per second
    timeout_s: float = 10.0
    slow_s: float = 1.0
    workers: int = 16
    _samples: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _pool: ThreadPoolExecutor | None = None
    _started: float = 0.0
    _epoch_offset: float = 0.0

    def _one(self, started: float) -> None:
        status, version, error = 0, "", ""
        try:
            with _OPENER.open(self.url, timeout=self.timeout_s) as response:
                status = response.status
                body = response.read()
        except urllib.error.HTTPError as exc:
            status, body, error = exc.code, exc.read(), f"HTTP {exc.code}"
        except Exception as exc:
            body, error = b"", f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
        try:
            version = str(json.loads(body).get("version", ""))
        except (ValueError, AttributeError):
            version = ""
        with self._lock:
            self._samples.append(Sample(started, seconds, status, version, error))

    def _run(self) -> None:
        assert self._pool is not None
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_at:
                self._stop.wait(next_at - now)
                continue
            self._pool.submit(self._one, now)
            next_at += interval

    @property
    def started_epoch(self) -> float:
        """When it started, as wall-clock time (compare with the scripts' `t=` log stamps)."""
        return self._started + self._epoch_offset

    def start(self) -> Prober:
        self._samples = []
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=self.workers)
        self._started = time.monotonic()
        self._epoch_offset = time.time() - self._started
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> ProbeReport:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        seconds = time.monotonic() - self._started
        with self._lock:
            samples = list(self._samples)
        return ProbeReport(samples, seconds, self.slow_s, self._epoch_offset)
