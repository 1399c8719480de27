"""What the benchmark ran on, printed beside every figure."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe(postgres_version: str) -> dict[str, str]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": platform.python_version(),
        "postgres": postgres_version,
        "os": platform.platform(),
    }


def machine_line(machine: dict[str, str]) -> str:
    return "machine: " + ", ".join(f"{key} {value}" for key, value in machine.items())
