"""What a report says about the run: the machine, the package versions, the load, the date,
the repository's commit. Standard library only."""

import datetime
import hashlib
import os
import platform
import re
import subprocess


def command_output(cmd):
    """cmd's stdout, stripped, or "" when it cannot run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def dist_version(name):
    """The installed version of the distribution, or None."""
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


def gxx_version():
    """g++'s version line without its leading "g++ ", or None."""
    gxx = command_output(["g++", "--version"]).splitlines()
    return re.sub(r"^g\+\+\s*", "", gxx[0]) if gxx else None


def load_average():
    """The 1-, 5- and 15-minute load averages, "0.12 0.34 0.56"."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def utc_now():
    """"2024-01-31 12:34 UTC"."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def git_commit(repo, paths=()):
    """The repository's short commit, "(with uncommitted changes)" added when tracked files
    (under paths, if given) differ from it; "unknown" outside a checkout."""
    commit = command_output(["git", "-C", repo, "rev-parse", "--short", "HEAD"]) or "unknown"
    if command_output(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"]
                      + (["--", *paths] if paths else [])):
        commit += " (with uncommitted changes)"
    return commit


def cpu_key():
    """A short hash of the CPU model and flags: AOTInductor packages are built for the host."""
    text = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    text += line
                if line.strip() == "":
                    break
    except OSError:
        text = platform.processor()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def machine_info(threads):
    """{"cpu", "logical_cpus", "isa" (the x86 extensions that matter here), "threads"}."""
    model_name = ""
    for line in command_output(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model_name = line.split(":", 1)[1].strip()
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return {"cpu": model_name or platform.processor() or "unknown",
            "logical_cpus": os.cpu_count(), "isa": isa, "threads": threads}
