"""What the benchmarks print about the machine they ran on (shared by every benchmark)."""

from __future__ import annotations

import os
import platform
from typing import Any

import jax

__all__ = ["cpu_model", "describe_devices", "schedulable_cores"]


def schedulable_cores() -> int:
    """Cores this process may run on (what XLA:CPU sizes its pool by)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_devices() -> dict[str, Any]:
    """JAX's platform, device kind and count, and the CPU's model and cores."""
    dev = jax.devices()[0]
    return {
        "jax": {
            "version": jax.__version__,
            "platform": dev.platform,
            "device_kind": dev.device_kind,
            "device_count": jax.device_count(),
        },
        "cpu": {
            "model": cpu_model(),
            "os_cpu_count": os.cpu_count(),
            "schedulable_cores": schedulable_cores(),
        },
    }
