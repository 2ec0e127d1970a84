# Configuration checks and path helpers shared by every stage (no rules here).
from pathlib import Path

from snakemake.utils import validate

# Fill defaults and stop on any bad value before a single job runs.
validate(config, schema="../schemas/config.schema.yaml", set_default=True)

REPO = Path(workflow.basedir).parent
LIB = REPO / "scripts" / "deepsky"


def lib(*modules):
    """Library modules a rule's script imports: declared as inputs so editing one reruns the rule."""
    return [str(LIB / f"{m}.py") for m in modules]


def recipe(dataset):
    try:
        return config["sims"][dataset]
    except KeyError:
        raise ValueError(
            f"no simulation recipe named {dataset!r} under sims: (known: {sorted(config['sims'])})"
        )


#: library modules a recipe kind needs beyond sims.py (declared as inputs of its simulate jobs only)
RECIPE_MODULES = {"hst_bulge_disk": ["sims_hst"]}


def recipe_lib(dataset):
    return lib("sims", "io", *RECIPE_MODULES.get(recipe(dataset)["kind"], []))


def shard_files(dataset, ext):
    n = recipe(dataset)["shards"]
    return [f"results/sims/{dataset}/shard{i:04d}.{ext}" for i in range(n)]


def task_dataset(task):
    return config[task]["dataset"]


def task_shards(ext):
    return lambda wc: shard_files(task_dataset(wc.task), ext)


def model_options(name):
    return config["models"].get(name, {})


def get_final_output():
    """What `snakemake` with no target builds: metrics and plots of every configured size model."""
    return [f"results/size/metrics/{m}.json" for m in config["size"]["models"]]


# ---------------------------------------------------------------- transfer (workflow/rules/transfer.smk)
def _simulated_hst_files(ext):
    return shard_files(config["transfer"]["dataset"], ext)


#: transfer.target -> function(ext) giving the target's shard files (the live CANDELS path adds
#: its own entry, e.g. TRANSFER_TARGETS["candels"] = ..., from its .smk)
TRANSFER_TARGETS = {"simulated_hst": _simulated_hst_files}


def transfer_target_files(ext):
    """Input function: the target's shard files (checked only when a transfer job is asked for)."""

    def files(wc):
        target = config["transfer"]["target"]
        if target not in TRANSFER_TARGETS:
            raise ValueError(
                f"transfer.target: {target!r} has no shard source in this workflow "
                f"(available: {sorted(TRANSFER_TARGETS)})"
            )
        if target == "simulated_hst" and config["transfer"]["dataset"] not in config["sims"]:
            raise ValueError(
                f"transfer.dataset: no simulation recipe named "
                f"{config['transfer']['dataset']!r} under sims: (known: {sorted(config['sims'])})"
            )
        return TRANSFER_TARGETS[target](ext)

    return files


def transfer_base_model():
    return f"results/size/models/{config['transfer']['base_model']}.keras"


def transfer_runs():
    """(strategy, budget) pairs of the comparison: zero-shot once (budget 0), the others per budget."""
    runs = []
    for s in config["transfer"]["strategies"]:
        budgets = [0] if s == "zeroshot" else sorted(config["transfer"]["budgets"])
        runs += [(s, b) for b in budgets]
    return runs


def transfer_outputs():
    """What `snakemake transfer` builds: the summary table, checks and figure."""
    return [
        "results/transfer/summary.parquet",
        "results/transfer/summary.md",
        "results/transfer/checks.json",
        "results/transfer/plots/budget.png",
    ]
