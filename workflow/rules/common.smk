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
