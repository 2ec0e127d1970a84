"""The Slurm profile against a real single-node Slurm cluster (tests/slurm_cluster.sh, needs root).

Runs tests/configs/rerun.yaml through workflow/profiles/slurm and checks that every non-local job went
through sbatch (its Slurm log exists), that training was submitted with a GPU request (the fake GPU
of the test cluster: CUDA_VISIBLE_DEVICES is set inside the job) and that the results equal a local
run's.  Where slurm-wlm is not installed the test skips, except under CI=true, where it fails:
.ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import snakerun

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

SCRIPT = snakerun.REPO / "tests" / "slurm_cluster.sh"
PROFILE = snakerun.REPO / "workflow" / "profiles" / "slurm"


def _slurm_missing() -> str | None:
    missing = [exe for exe in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo") if shutil.which(exe) is None]
    if missing:
        return f"Slurm/munge programs missing: {missing} (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting a Slurm cluster needs root"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    why = _slurm_missing()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the Slurm test: {why}")
        pytest.skip(why)
    up = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    started = not (up.returncode == 0 and "idle" in up.stdout)
    if started:
        subprocess.run(["bash", str(SCRIPT), "start"], check=True, timeout=120)
    yield
    if started:
        subprocess.run(["bash", str(SCRIPT), "stop"], check=False, timeout=60)


def _job_ids(slurm_logs, rule):
    return sorted(int(p.stem) for p in (slurm_logs / f"rule_{rule}").rglob("*.log"))


def test_tiny_workflow_on_slurm_matches_local(slurm_cluster, tmp_path, tmp_path_factory):
    ref = snakerun.reference_run(tmp_path_factory)
    # the profile as shipped; only faster status polling and kept job logs for the test
    snakerun.run(tmp_path, "manifest", "--workflow-profile", str(PROFILE),
                 "--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs",
                 configfiles=[snakerun.RERUN], timeout=600)
    slurm_logs = tmp_path / ".snakemake" / "slurm_logs"
    jobs = {rule: _job_ids(slurm_logs, rule) for rule in ("simulate", "split", "train", "evaluate", "manifest")}
    assert len(jobs["simulate"]) == 2 and len(jobs["split"]) == 1, jobs
    assert len(jobs["train"]) == 1 and len(jobs["evaluate"]) == 1, jobs
    assert jobs["manifest"] == [], "the manifest is a local rule: it must not be submitted"

    # what Slurm itself recorded for the training job (MinJobAge keeps finished jobs visible)
    train_id = jobs["train"][0]
    show = subprocess.run(["scontrol", "show", "job", str(train_id)], capture_output=True, text=True, timeout=20)
    assert show.returncode == 0, show.stderr
    assert "gpu:1" in show.stdout, show.stdout  # TresPerJob=gres:gpu:1
    assert "JobState=COMPLETED" in show.stdout, show.stdout
    for rule in ("simulate", "evaluate"):
        other = subprocess.run(["scontrol", "show", "job", str(jobs[rule][0])], capture_output=True, text=True)
        assert other.returncode == 0 and "gres:gpu" not in other.stdout, other.stdout  # CPU-only jobs
    train_log = (tmp_path / "results/logs/train/size/cnn.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=0" in train_log, train_log[-2000:]  # the job was given the (fake) GPU

    snakerun.assert_same_results(ref, tmp_path)
