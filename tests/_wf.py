"""Helpers for workflow tests that run snakemake on tests/configs/rerun.yaml in temporary folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))  # the deepsky package, installed or not

from deepsky import manifest  # noqa: E402

SNAKEFILE = REPO / "workflow" / "Snakefile"
CONFIG = REPO / "tests" / "configs" / "rerun.yaml"
#: upper bound for one snakemake call; `timeout -k` also ends a snakemake that ignores SIGTERM
TIMEOUT_S = 420


def env(**extra: str) -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO / "scripts"), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e.update(extra)
    return e


def command(workdir: Path, *args: str, cores: int = 2) -> list[str]:
    return ["snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), "--configfile", str(CONFIG),
            "--cores", str(cores), *args]


def run(workdir: Path, *args: str, timeout: int = TIMEOUT_S, environ: dict | None = None,
        cores: int = 2) -> subprocess.CompletedProcess:
    """Run snakemake to completion (bounded); fail with the tail of its output if it fails."""
    cmd = ["timeout", "-k", "10", str(timeout), *command(workdir, *args, cores=cores)]
    proc = subprocess.run(cmd, env=environ or env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


def start(workdir: Path, *args: str, environ: dict | None = None) -> subprocess.Popen:
    """Start snakemake in its own process group (so the test can kill it and all its jobs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = open(workdir / "snakemake.out", "w")
    return subprocess.Popen(command(workdir, *args), env=environ or env(), stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 240.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended (rc {proc.returncode}) before {what}")
        if time.monotonic() - t0 > timeout:
            kill_group(proc)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def freeze_group(proc: subprocess.Popen) -> None:
    """SIGSTOP snakemake and every job it started: the state on disk stops changing."""
    os.killpg(proc.pid, signal.SIGSTOP)


def kill_group(proc: subprocess.Popen) -> None:
    """kill -9 the whole process group (snakemake and its jobs), then reap snakemake."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text`` (zombies excluded)."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").find(text) >= 0:
                if "State:\tZ" not in (p / "status").read_text():
                    pids.append(int(p.name))
        except OSError:
            continue
    return pids


def results_manifest(workdir: Path):
    return manifest.build(workdir / "results")


def assert_same_results(a: Path, b: Path) -> None:
    """Every result file of run ``b`` equals run ``a``'s (content digests; logs/benchmarks excluded)."""
    ma, mb = results_manifest(a), results_manifest(b)
    diff = manifest.compare(ma, mb)
    assert len(ma) >= 14, f"suspiciously few results in {a}: {list(ma['path'])}"
    assert diff.empty, f"results differ between {a} and {b}:\n{diff.to_string()}"


_REFERENCE: dict[str, Path] = {}


def reference_run(tmp_path_factory) -> Path:
    """One uninterrupted local run of tests/configs/rerun.yaml (up to the manifest), shared by tests."""
    if "ref" not in _REFERENCE:
        d = tmp_path_factory.mktemp("reference")
        run(d, "manifest")
        _REFERENCE["ref"] = d
    return _REFERENCE["ref"]
