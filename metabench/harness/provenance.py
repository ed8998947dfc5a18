"""Provenance of a result: package versions, code version, device, host, memory."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "metabench")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def code_version() -> dict[str, Any]:
    """Git revision and dirty flag of the metabench checkout when it is one, else the package version.

    ``git_dirty``: a tracked file other than the outputs (``OUTPUT_PREFIXES``) differs from the
    revision; ``dirty_files`` names them (at most ``MAX_DIRTY_FILES``).

    A copy of a checkout without its ``.git`` (a container, a remote machine) can name its
    revision in ``METABENCH_GIT_REVISION`` (and ``METABENCH_GIT_DIRTY=0|1``); whoever sets them
    vouches for the copy -- ``benchmarks/tree_manifest.py check`` verifies every tracked file
    against the revision's blob hashes before a launcher sets them.
    """
    import metabench

    repo = Path(metabench.__file__).resolve().parent.parent
    out: dict[str, Any] = {"package_version": metabench.__version__, "git_revision": None, "git_dirty": None}
    fallback = {**out, "git_revision": os.environ.get("METABENCH_GIT_REVISION") or None}
    if fallback["git_revision"] is not None:
        fallback["git_dirty"] = {"0": False, "1": True}.get(os.environ.get("METABENCH_GIT_DIRTY", ""))
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return fallback
    if not rev:
        return fallback
    changed = changed_code_files(status)
    record = {**out, "git_revision": rev, "git_dirty": bool(changed)}
    if changed:
        record["dirty_files"] = changed[:MAX_DIRTY_FILES]
    return record


#: Tracked paths that runs and scripts write their outputs to: a change there is a result, not code.
OUTPUT_PREFIXES = ("leaderboard/", "benchmarks/results/")
MAX_DIRTY_FILES = 20


def changed_code_files(porcelain: str) -> list[str]:
    """The changed tracked paths of ``git status --porcelain`` output, outputs excluded.

    A result summary a reproduction script rewrote between two of its runs (under
    ``OUTPUT_PREFIXES``) does not make the next run's code dirty; any other change does.
    """
    paths = []
    for line in porcelain.splitlines():
        if len(line) < 4:
            continue
        path = line[3:].split(" -> ")[-1].strip().strip('"')
        if not path.startswith(OUTPUT_PREFIXES):
            paths.append(path)
    return sorted(paths)


def device_info(mesh: Any = None) -> dict[str, Any]:
    """Backend, devices over all processes, JAX processes, and the mesh's axis sizes (if any)."""
    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind if devices else None,
        "device_count": len(devices),
        "process_count": jax.process_count(),
        "mesh": None if mesh is None else {str(k): int(v) for k, v in dict(mesh.shape).items()},
    }


def host_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu or None,
        "cpu_count": os.cpu_count(),
    }


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``ru_maxrss``: KiB on Linux, bytes on macOS).

    ``resource`` is POSIX-only, so it is imported here, not at module level: on Windows the
    peak working set comes from ``GetProcessMemoryInfo``, and 0 where neither is available.
    """
    try:
        import resource
    except ImportError:
        return _windows_peak_working_set()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _windows_peak_working_set() -> int:
    """``PROCESS_MEMORY_COUNTERS.PeakWorkingSetSize`` of this process (Windows), else 0."""
    if sys.platform != "win32":
        return 0
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
            (name, ctypes.c_size_t) for name in (
                "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage", "QuotaPagedPoolUsage",
                "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage")]

    counters = Counters()
    counters.cb = ctypes.sizeof(Counters)
    try:
        windll = ctypes.windll  # type: ignore[attr-defined]  # Windows only
        ok = windll.psapi.GetProcessMemoryInfo(windll.kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb)
    except (AttributeError, OSError):
        return 0
    return int(counters.PeakWorkingSetSize) if ok else 0


def device_memory() -> dict[str, int] | None:
    """Peak and current bytes in use on the first device, when the backend reports them (GPU/TPU)."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - backends without stats raise various errors
        return None
    if not stats:
        return None
    keep = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")
    return {k: int(stats[k]) for k in keep if k in stats} or None


def timestamp() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
