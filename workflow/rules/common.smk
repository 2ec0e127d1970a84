# Configuration checks and path helpers shared by every stage (no rules here).
import ast
import functools
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

REPO = Path(workflow.basedir).parent
SCRIPTS = REPO / "scripts"

# the config checks, the study's variant resolution and the simulation registry are plain library
# code (no keras), shared with the rule scripts
sys.path.insert(0, str(SCRIPTS))
from deepsky import configcheck as deepsky_configcheck
from deepsky import io as deepsky_io
from deepsky.reports import study as deepsky_study
from deepsky.sims import registry as deepsky_sims

# Stop on any bad value before a single job runs, naming the key and the value: duplicate keys in
# the config files (YAML keeps the last one silently), then the schema (types, bounds, the keys of
# each PSF profile; defaults filled in), then what a schema cannot express (deepsky.configcheck:
# ranges, strict integers, task/data fit, physical bounds, the plan-size guard).
try:
    deepsky_configcheck.check_files(workflow.configfiles)
except deepsky_configcheck.ConfigError as e:
    raise WorkflowError(str(e)) from None
validate(config, schema="../schemas/config.schema.yaml", set_default=True)
try:
    PLAN = deepsky_configcheck.check(
        config, Path(workflow.basedir) / "schemas" / "config.schema.yaml"
    )
except deepsky_configcheck.ConfigError as e:
    raise WorkflowError(str(e)) from None
# the estimate is printed once per snakemake call (`snakemake -n` shows it), not again in each job
if not (workflow.subprocess_exec or workflow.remote_exec):
    print(deepsky_configcheck.describe_plan(PLAN), file=sys.stderr)


# ---------------------------------------------------------------- code inputs derived from imports
def _module_file(dotted):
    """scripts/<a>/<b>.py or scripts/<a>/<b>/__init__.py of a dotted module name (None if neither)."""
    path = SCRIPTS.joinpath(*dotted.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _imported_names(path):
    """Dotted names of every deepsky module a file imports: absolute and relative imports, at module
    level or inside functions; ``from X import y`` yields X and X.y (y may be a submodule).
    """
    # the package a relative import starts from: scripts/deepsky/learn/train.py and
    # scripts/deepsky/learn/__init__.py both sit in deepsky.learn
    package = list(path.relative_to(SCRIPTS).parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            names += [name] + [f"{name}.{a.name}" for a in node.names]
    return [n for n in names if n == "deepsky" or n.startswith("deepsky.")]


@functools.lru_cache(maxsize=None)
def _closure(path):
    """Library files a file depends on: its deepsky imports, the ``__init__.py`` of every package on
    the way, recursively (tuple of paths, sorted)."""
    found, todo = set(), [Path(path)]
    while todo:
        for name in _imported_names(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                f = _module_file(".".join(parts[:i]))
                if f is not None and f not in found:
                    found.add(f)
                    todo.append(f)
    return tuple(sorted(found))


def _as_input(path):
    """A library file as an input of a rule, relative to the working directory when it lies under it
    (the usual layout, results/ inside the checkout), so a moved or copied checkout keeps its finished
    results (Snakemake reruns a job whose set of input paths changed); absolute otherwise.
    """
    return _as_input_from(str(path), str(Path.cwd()))


@functools.lru_cache(maxsize=None)
def _as_input_from(path, cwd):
    # cached: input functions ask for the same files once per job (1000 shards: 1000 times)
    try:
        return Path(path).resolve().relative_to(Path(cwd).resolve()).as_posix()
    except ValueError:
        return path


def script_lib(script):
    """Library modules the rule script scripts/<script>.py imports (directly or through other
    modules): declared as inputs, so editing any of them reruns exactly the rules that use it.
    """
    return [_as_input(f) for f in _closure(SCRIPTS / f"{script}.py")]


def module_lib(dotted):
    """A library module and everything it imports (``dotted``: its name, e.g. deepsky.sims.sersic)."""
    f = _module_file(dotted)
    return [_as_input(f)] + [_as_input(g) for g in _closure(f)]


def recipe_lib(dataset):
    """Code a dataset's simulate jobs run: the simulate script (with the recipe registry) plus the
    recipe module of the dataset's kind, so editing one recipe reruns only its own shards.  Datasets
    made by other rules (e.g. the sdss cutouts) have no recipe and need only the script's modules.
    """
    kind = config["sims"].get(dataset, {}).get("kind")
    files = set(script_lib("simulate"))
    if kind in deepsky_sims.RECIPES:
        files |= set(module_lib(deepsky_sims.RECIPES[kind]))
    return sorted(files)


def canonical(obj):
    """Dict params with keys sorted at every level: Snakemake compares params by their text, so
    reordering keys in a config file must not rerun anything."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def recipe(dataset):
    try:
        return canonical(config["sims"][dataset])
    except KeyError:
        raise ValueError(
            f"no simulation recipe named {dataset!r} under sims: (known: {sorted(config['sims'])})"
        )


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
    """Stamp geometry of a task's data: the simulation recipe, or the SDSS cutouts (sdss.stamp, sdss.pixel_scale)."""
    if task_source(task) == "sdss":
        sdss = config["sdss"]
        return {
            "stamp": sdss.get("stamp", 48),
            "pixel_scale": sdss.get("pixel_scale", 0.396),
        }
    return recipe(task_dataset(task))


def task_train(task):
    """The train: section with the task's own overrides (e.g. stargal.train) on top."""
    return canonical({**config["train"], **config[task].get("train", {})})


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
    return canonical(resolve_model(name)[1])


def task_config(task):
    return canonical(config[task])


def resolve_model(name):
    """{model} -> (registry architecture, model options, training config); study names included."""
    return deepsky_study.resolve(name, config)


def model_arch(name):
    return resolve_model(name)[0]


def model_train_config(name):
    return canonical(resolve_model(name)[2])


def get_final_output():
    """What `snakemake` with no target builds: metrics and plots of every configured size model, and
    of every star/galaxy model when the config defines that task's data."""
    out = [f"results/size/metrics/{m}.json" for m in config["size"]["models"]]
    if stargal_has_data():
        out += [
            f"results/stargal/metrics/{m}.json" for m in config["stargal"]["models"]
        ]
    return out


def stargal_has_data():
    """Whether the config defines the star/galaxy task's data: the live source, or its simulation
    recipe (the default config has sims.stargal; a config without one builds only the size task).
    """
    return task_source("stargal") == "sdss" or task_dataset("stargal") in config["sims"]


# --------------------------------------------------------------------------- CANDELS (live target)
def candels_catalogue_path():
    slug = "".join(
        c if c.isalnum() else "_" for c in config["candels"]["catalog"]
    ).strip("_")
    return f"resources/candels/{slug}.parquet"


def candels_mosaic_path():
    """Local mosaic file: the configured path, or where the configured URL is downloaded to."""
    src = config["candels"]["mosaic"]
    if not src:
        raise ValueError(
            "candels.mosaic is not set: give a local path or URL of a CANDELS F160W mosaic, "
            "or use the offline target (transfer.target: simulated_hst)"
        )
    if "://" in src:
        return f"resources/candels/mosaic/{Path(src.split('?')[0]).name}"
    return src


def candels_mosaic_url(name):
    src = config["candels"]["mosaic"] or ""
    if "://" not in src or Path(src.split("?")[0]).name != name:
        raise ValueError(
            f"resources/candels/mosaic/{name} is not the configured candels.mosaic URL {src!r}"
        )
    return src


def candels_shards(ext):
    return [
        f"results/sims/candels/shard{i:04d}.{ext}"
        for i in range(config["candels"]["shards"])
    ]


# --------------------------------------------------------------------------- predict
# a job name as the schema allows it (no "/": results/predict/{name}.parquet must not match a tile)
PREDICT_NAME = "[A-Za-z0-9][A-Za-z0-9_.-]*"


def predict_job(name):
    try:
        return config["predict"][name]
    except KeyError:
        raise ValueError(
            f"no prediction job named {name!r} under predict: (known: {sorted(config['predict'])})"
        )


def predict_inputs(wc):
    job = predict_job(wc.name)
    files = {
        "model": job["model"],
        "meta": str(Path(job["model"]).with_suffix(".json")),
    }
    if job.get("stamps"):
        files["stamps"] = job["stamps"]
    if job.get("images"):
        files["images"] = job["images"]
    if job.get("catalogue"):
        files["catalogue"] = job["catalogue"]
    if job.get("psf"):
        files["psf"] = job["psf"]
    return files


def predict_tiled_job(name):
    """A job predicted by sky tiles: it needs images and a catalogue (a stamp cube is predicted whole)."""
    job = predict_job(name)
    if not (job.get("images") and job.get("catalogue")):
        raise ValueError(
            f"predict.{name}: tiles need images and a catalogue; a stamp cube is predicted whole "
            f"(ask for results/predict/{name}.parquet)"
        )
    return job


def predict_split_input(wc):
    return {"catalogue": predict_tiled_job(wc.name)["catalogue"]}


def predict_tile_inputs(wc):
    """The files of one tile's job: model, metadata, images, PSF (the tile replaces the catalogue)."""
    files = predict_inputs(wc)
    predict_tiled_job(wc.name)
    files.pop("catalogue")
    return files


# ---------------------------------------------------------------- transfer (workflow/rules/transfer.smk)
def _simulated_hst_files(ext):
    return shard_files(config["transfer"]["dataset"], ext)


#: transfer.target -> function(ext) giving the target's shard files (same format for both)
TRANSFER_TARGETS = {"simulated_hst": _simulated_hst_files, "candels": candels_shards}


def transfer_target_files(ext):
    """Input function: the target's shard files (checked only when a transfer job is asked for)."""

    def files(wc):
        target = config["transfer"]["target"]
        if target not in TRANSFER_TARGETS:
            raise ValueError(
                f"transfer.target: {target!r} has no shard source in this workflow "
                f"(available: {sorted(TRANSFER_TARGETS)})"
            )
        if (
            target == "simulated_hst"
            and config["transfer"]["dataset"] not in config["sims"]
        ):
            raise ValueError(
                f"transfer.dataset: no simulation recipe named "
                f"{config['transfer']['dataset']!r} under sims: (known: {sorted(config['sims'])})"
            )
        # the target's geometry and size against the base model's (checked here, where a transfer
        # job is asked for, so a size-only config merged over the default one is not stopped)
        problems = deepsky_configcheck.transfer_problems(config)
        if problems:
            raise ValueError(str(deepsky_configcheck.ConfigError(problems)))
        return TRANSFER_TARGETS[target](ext)

    return files


def transfer_base_model():
    return f"results/size/models/{config['transfer']['base_model']}.keras"


def transfer_fit_cfg(strategy):
    """The transfer settings one fit depends on (so adding a budget or retuning another strategy
    does not rerun it)."""
    t = config["transfer"]
    if strategy == "zeroshot":
        return {}
    return {
        "val_fraction": t["val_fraction"],
        "min_epoch_samples": t["min_epoch_samples"],
        "train": t["train"],
        "learning_rate": {strategy: t["learning_rate"][strategy]},
    }


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


# ---------------------------------------------------------------- model study (rules/study.smk)
def study_models():
    """Model names of every study instance: study/variant~V/fraction~F (Paramspace patterns)."""
    if STUDY is None:
        raise ValueError(
            "study.variants is empty: add at least one variant row to config to run the study"
        )
    return [f"study/{p}" for p in STUDY.instance_patterns]


def study_files(pattern):
    return [pattern.format(task=STUDY_TASK, model=m) for m in study_models()]


def study_entries():
    """Per study model: variant, fraction, architecture and a text of its options (leaderboard rows)."""
    out = []
    for m in study_models():
        variant, fraction = deepsky_study.parse_model_name(m)
        out.append(
            {
                "variant": variant,
                "fraction": fraction,
                "arch": model_arch(m),
                "options": deepsky_study.describe(config["study"]["variants"][variant]),
            }
        )
    return out


def study_top_fraction(variant):
    """The largest training-set fraction a variant is trained with (its Paramspace value)."""
    study_models()
    return STUDY.dataframe.loc[STUDY.dataframe["variant"] == variant, "fraction"].max()


def study_calibration_names():
    """Variants with a Gaussian head (calibrated at their largest training-set fraction)."""
    return [
        v
        for v, opts in config["study"]["variants"].items()
        if resolve_model(f"study/variant~{v}/fraction~1.0")[1].get("head") == "gaussian"
    ]


def study_calibration_files():
    return [
        f"results/study/calibration/{v}/fraction~{study_top_fraction(v)}.json"
        for v in study_calibration_names()
    ]


def study_stargal_models():
    """Star/galaxy models whose probability calibration the study reports (none without that task's data)."""
    return list(config["stargal"]["models"]) if stargal_has_data() else []


def study_compared_models():
    """Every variant at its largest training-set fraction: the models compared with the Sersic fit
    (study.baseline.compare, the one plotted galaxy by galaxy, must be among the variants).
    """
    v = config["study"]["baseline"]["compare"]
    if v not in config["study"]["variants"]:
        raise ValueError(
            f"study.baseline.compare: {v!r} is not a variant (known: {sorted(config['study']['variants'])})"
        )
    return [
        f"study/variant~{name}/fraction~{study_top_fraction(name)}"
        for name in config["study"]["variants"]
    ]


# ---------------------------------------------------------------- after a successful run
#: when this snakemake started (its own jobs have all finished when onsuccess runs)
RUN_STARTED = time.time()


def clean_after_success():
    """The Snakefile's onsuccess handler: remove what killed jobs left behind, i.e. temporary files
    of interrupted writes (hidden *.part, see deepsky.io.clean_partials: one whose writer may still
    run is kept) under results/ and resources/, and empty checkpoint folders under results/.scratch/.
    """
    for root in ("results", "resources"):
        for p in deepsky_io.clean_partials(root, RUN_STARTED):
            print(f"removed the leftover of an interrupted write: {p}", file=sys.stderr)
    deepsky_io.remove_empty_dirs("results/.scratch")
