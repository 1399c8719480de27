"""Where a load's CPU time goes: per component, in microseconds of CPU per event.

Throughput on a shared two-core machine moves with whatever else runs on the host; CPU time
per event moves far less, and adding it up over every process that works for an append says
how many events per second the machine could take at best (cores / total CPU per event).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> tuple[float, float]:
    """(CPU seconds spent busy, seconds stolen by the hypervisor) since boot, all cores."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


@dataclass
class CpuReport:
    events: int
    components: dict[str, float] = field(default_factory=dict)  # CPU seconds
    steal: float = 0.0

    def per_event_us(self) -> dict[str, float]:
        return {
            name: seconds * 1e6 / max(1, self.events) for name, seconds in self.components.items()
        }

    def ceiling(self, cores: int) -> float:
        """Events/s the machine could take if every core did only this work."""
        total = sum(self.components.values()) - self.components.get("other", 0.0)
        return cores * self.events / total if total else float("nan")

    def line(self) -> str:
        parts = ", ".join(f"{name} {us:,.0f}" for name, us in self.per_event_us().items())
        return f"CPU per event (µs): {parts}; steal {self.steal:.1f} s"


class CpuMeter:
    """Measures the CPU seconds of the service's processes, PostgreSQL's, this process's and
    the rest of the machine's while a block runs.

    ``service_pid`` is the root of the decision_log's process tree; a child whose command line
    says ``projections`` is counted as the projector. PostgreSQL is every process named
    ``postgres`` on the machine (the bench's server is the only busy one)."""

    def __init__(self, service_pid: int) -> None:
        self._service = psutil.Process(service_pid)

    def _sample(self) -> dict[str, float]:
        totals = {"decision_log": 0.0, "projector": 0.0, "PostgreSQL": 0.0, "load generator": 0.0}
        service = [self._service, *self._service.children(recursive=True)]
        for process in service:
            try:
                command = " ".join(process.cmdline())
            except psutil.Error:
                continue
            name = "projector" if "projections" in command else "decision_log"
            totals[name] += _cpu_seconds(process)
        for process in psutil.process_iter(["name"]):
            if (process.info["name"] or "").startswith("postgres"):
                totals["PostgreSQL"] += _cpu_seconds(process)
        totals["load generator"] = _cpu_seconds(psutil.Process())
        return totals

    @contextmanager
    def measure(self) -> Iterator[CpuReport]:
        report = CpuReport(events=0)
        before = self._sample()
        busy_before, steal_before = _machine_busy_seconds()
        yield report
        after = self._sample()
        busy_after, steal_after = _machine_busy_seconds()
        report.components = {name: after[name] - before[name] for name in before}
        report.components["other"] = max(
            0.0, (busy_after - busy_before) - sum(report.components.values())
        )
        report.steal = steal_after - steal_before
