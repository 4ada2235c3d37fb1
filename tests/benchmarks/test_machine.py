"""benchmarks.machine: the facts every benchmark table states about where it ran."""

import pathlib
import sys

_REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks import machine
from benchmarks.machine import format_environment


def test_speed_environment_reports_the_variables_that_are_set(monkeypatch):
    for name in machine.SPEED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    monkeypatch.setenv("UNRELATED", "1")
    env = machine.speed_environment()
    assert env.pop("GLIBC_TUNABLES") == "glibc.malloc.hugetlb=1"
    # Besides the variables, only the kernel's THP mode, where Linux has one.
    assert set(env) <= {"thp"}
    if pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled").exists():
        assert env["thp"] in ("always", "madvise", "never")
    assert machine.describe_devices()["environment"]["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


def test_the_environment_line_names_what_was_set_or_that_nothing_was():
    line = format_environment({"thp": "madvise", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"})
    assert line == (
        "environment: transparent huge pages `madvise`; `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`"
    )
    line = format_environment({})
    assert line.startswith("environment: no THP setting found; none of XLA_FLAGS")


def test_the_device_lines_name_versions_devices_and_cores():
    info = machine.describe_devices()
    assert machine.format_jax(info["jax"]).startswith(f"JAX {info['jax']['version']}: platform `")
    assert (
        machine.format_cpu({"model": "Some CPU", "schedulable_cores": 2, "os_cpu_count": 8})
        == "CPU: Some CPU, 2 schedulable cores (os.cpu_count() = 8)"
    )
    torch_facts = {"version": "2.9.0", "device": "cpu", "num_threads": 2}
    assert machine.format_torch(torch_facts) == "PyTorch 2.9.0 on cpu, 2 CPU threads"
