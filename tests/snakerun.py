"""The one way tests run snakemake: a bounded subprocess in a work folder, plus what workflow tests
share (copies of the workflow to edit, dry-run job counts, kill/freeze helpers, result manifests).

``run(workdir, *args, configfiles=...)`` runs the repository's workflow (or a copy's, ``snakefile=``)
with ``-d workdir`` and ``--cores 2`` and fails with the tail of snakemake's output if it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))  # the deepsky package, installed or not

from deepsky import manifest  # noqa: E402

SNAKEFILE = REPO / "workflow" / "Snakefile"
CONFIGS = REPO / "tests" / "configs"
TINY = CONFIGS / "tiny.yaml"
RERUN = CONFIGS / "rerun.yaml"
#: upper bound for one snakemake call; `timeout -k` also ends a snakemake that ignores SIGTERM
TIMEOUT_S = 900


def env(**extra: str) -> dict:
    """The environment of a snakemake call: this checkout's scripts/ first on PYTHONPATH."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO / "scripts"), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e.update(extra)
    return e


def command(workdir: Path, *args: str, configfiles=(), snakefile: Path = SNAKEFILE, cores: int = 2) -> list[str]:
    """The snakemake command line (``--configfile`` takes several values: it comes last)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), "--cores", str(cores),
           *map(str, args)]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    return cmd


def run(workdir: Path, *args: str, configfiles=(), snakefile: Path = SNAKEFILE, check: bool = True,
        timeout: int = TIMEOUT_S, environ: dict | None = None, cores: int = 2) -> subprocess.CompletedProcess:
    """Run snakemake to completion (bounded by ``timeout`` seconds) in ``workdir``.

    With ``check`` (default) a non-zero exit fails the test with the tail of snakemake's output.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = ["timeout", "-k", "10", str(timeout),
           *command(workdir, *args, configfiles=configfiles, snakefile=snakefile, cores=cores)]
    proc = subprocess.run(cmd, cwd=workdir, env=environ or env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table (empty when nothing is to be done)."""
    out = output(proc)
    jobs: dict[str, int] = {}
    if "Job stats:" not in out:
        return jobs
    table = out.split("Job stats:", 1)[1].splitlines()
    for line in table[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            jobs[parts[0]] = int(parts[1])
    return jobs


def copy_workflow(dest: Path) -> Path:
    """Copy the parts of the repository a run needs into ``dest`` (so a test may edit them); run it
    with ``run(dest, ..., snakefile=dest / "workflow" / "Snakefile")``."""
    for part in ("workflow", "scripts", "config", "tests/configs"):
        shutil.copytree(REPO / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


# --------------------------------------------------------------------------- kill and resume
def start(workdir: Path, *args: str, configfiles=(RERUN,), environ: dict | None = None) -> subprocess.Popen:
    """Start snakemake in its own process group (so the test can kill it and all its jobs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = open(workdir / "snakemake.out", "w")
    return subprocess.Popen(command(workdir, *args, configfiles=configfiles), cwd=workdir, env=environ or env(),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


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


# --------------------------------------------------------------------------- comparing runs
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
        run(d, "manifest", configfiles=(RERUN,))
        _REFERENCE["ref"] = d
    return _REFERENCE["ref"]
