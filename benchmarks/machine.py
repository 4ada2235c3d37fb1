"""What the benchmarks state about the machine they ran on: the facts (`describe_devices`)
and their lines under each table (shared by every benchmark)."""

from __future__ import annotations

import os
import platform
from typing import Any

import jax

__all__ = [
    "cpu_model",
    "describe_devices",
    "format_cpu",
    "format_environment",
    "format_jax",
    "format_torch",
    "schedulable_cores",
    "speed_environment",
]

# Environment variables that change how fast the benchmarked code runs: XLA's options, and
# glibc's allocator (GLIBC_TUNABLES=glibc.malloc.hugetlb=1 asks for transparent huge pages).
SPEED_ENV = ("XLA_FLAGS", "GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "OMP_NUM_THREADS")


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


def speed_environment() -> dict[str, str]:
    """The `SPEED_ENV` variables set in this process, and the kernel's transparent huge
    page mode (``thp``, where Linux reports one), which decides what hugetlb can do."""
    found = {name: os.environ[name] for name in SPEED_ENV if name in os.environ}
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            modes = f.read().split()
    except OSError:
        return found
    chosen = [m[1:-1] for m in modes if m.startswith("[")]
    if chosen:
        found["thp"] = chosen[0]
    return found


def describe_devices() -> dict[str, Any]:
    """JAX's platform, device kind and count, the CPU's model and cores, and the
    environment that changes the speed (`speed_environment`)."""
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
        "environment": speed_environment(),
    }


def format_environment(env: dict[str, str]) -> str:
    """The fact line for `benchmarks.machine.speed_environment`'s result."""
    thp = f"transparent huge pages `{env['thp']}`" if "thp" in env else "no THP setting found"
    set_vars = ", ".join(f"`{k}={v}`" for k, v in env.items() if k != "thp")
    return f"environment: {thp}; " + (set_vars or f"none of {', '.join(SPEED_ENV)} set")


def format_jax(jax_info: dict[str, Any]) -> str:
    """The fact line for `describe_devices`'s ``jax`` entry."""
    return (
        f"JAX {jax_info['version']}: platform `{jax_info['platform']}`, device_kind "
        f"`{jax_info['device_kind']}` ({jax_info['device_count']} device(s))"
    )


def format_cpu(cpu: dict[str, Any]) -> str:
    """The fact line for `describe_devices`'s ``cpu`` entry."""
    return (
        f"CPU: {cpu['model']}, {cpu['schedulable_cores']} schedulable cores "
        f"(os.cpu_count() = {cpu['os_cpu_count']})"
    )


def format_torch(torch_info: dict[str, Any]) -> str:
    """The fact line for `benchmarks.torch_reference.torch_device`'s facts."""
    return (
        f"PyTorch {torch_info['version']} on {torch_info['device']}, "
        f"{torch_info['num_threads']} CPU threads"
    )
