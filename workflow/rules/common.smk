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


def recipe_modules(dataset):
    """Library modules of recipe kinds that live outside sims.py."""
    return {"stargal": ["stargal"]}.get(recipe(dataset)["kind"], [])


def shard_files(dataset, ext):
    n = recipe(dataset)["shards"]
    return [f"results/sims/{dataset}/shard{i:04d}.{ext}" for i in range(n)]


def task_dataset(task):
    return config[task]["dataset"]


def task_source(task):
    return config[task].get("source", "simulated")


def sdss_shard_files(ext):
    """Shards of the live SDSS path (rules in sdss.smk): results/sims/sdss/shard{i:04d}.{ext}."""
    if "shards" not in config.get("sdss", {}):
        raise ValueError(
            "stargal.source is 'sdss' but the config has no sdss.shards: add an sdss: section "
            "(see config/README.md) or set stargal.source: simulated for the offline stand-in"
        )
    return [
        f"results/sims/sdss/shard{i:04d}.{ext}" for i in range(config["sdss"]["shards"])
    ]


def task_shard_files(task, ext):
    if task_source(task) == "sdss":
        return sdss_shard_files(ext)
    return shard_files(task_dataset(task), ext)


def task_shards(ext):
    return lambda wc: task_shard_files(wc.task, ext)


def task_recipe(task):
    """Stamp geometry of a task's data: the simulation recipe, or SDSS cutouts (48 px, 0.396"/px)."""
    if task_source(task) == "sdss":
        sdss = config["sdss"]
        return {
            "stamp": sdss.get("stamp", 48),
            "pixel_scale": sdss.get("pixel_scale", 0.396),
        }
    return recipe(task_dataset(task))


def task_train(task):
    """The train: section with the task's own overrides (e.g. stargal.train) on top."""
    return {**config["train"], **config[task].get("train", {})}


def stargal_params():
    c = config["stargal"]
    b = c["mag_bins"]
    n = int(round((b["max"] - b["min"]) / b["width"]))
    return {
        "faint_mag": c["faint_mag"],
        "mag_edges": [round(b["min"] + i * b["width"], 6) for i in range(n + 1)],
        "n_prob_bins": c["reliability_bins"],
    }


def model_options(name):
    return config["models"].get(name, {})


def get_final_output():
    """What `snakemake` with no target builds: metrics and plots of every configured size and
    star/galaxy model."""
    return [f"results/size/metrics/{m}.json" for m in config["size"]["models"]] + [
        f"results/stargal/metrics/{m}.json" for m in config["stargal"]["models"]
    ]
