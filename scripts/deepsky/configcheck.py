"""Configuration checks the JSON schema cannot express, run by the workflow before any job.

``workflow/schemas/config.schema.yaml`` checks each value on its own (types, bounds, enums, defaults,
the keys each PSF profile needs). What needs more than one value, or more than JSON Schema can say,
is checked here; ``workflow/rules/common.smk`` calls :func:`check_files` before validation and
:func:`check` after it, and every error names the key (as a dotted path) and the value:

* **duplicate keys** in a YAML config file (YAML loaders keep the last of two equal keys silently);
* **integers written as floats**: JSON Schema counts ``7.0`` as an integer, Python code does not
  (``seed: 7.0`` or ``shards: 2.0`` crashed jobs later with a TypeError). The schema's own
  ``type: integer`` declarations are re-checked with a strict type checker;
* **ranges**: every ``{min, max}`` pair and every ``*_min``/``*_max`` pair needs min < max
  (``sersic_n: {min: 4, max: 1}`` made every galaxy n = 1; inverted ``mag_bins`` gave empty tables);
  a clip range's median must lie inside it;
* **task and data fit together**: the task's label is a column of its dataset's catalogue (a size
  model needs ``r_e_arcsec``, a star/galaxy model ``is_star``), ``preprocess.psf_column`` is one of its
  columns, ``ref_band`` is one of its bands, the fovea layout gets stamps divisible by 4;
  :func:`transfer_problems` (called when a transfer job is asked for, still before any job runs)
  checks that the transfer target's stamps match the size model's and that it has enough of them;
* **physical bounds**: the largest galaxy (half-light radius) and the PSF fit in the stamp (a pixel
  scale of 1e-6 arcsec asked GalSim for ~1e10 photons per galaxy and hung the job);
* **plan size**: :func:`plan` estimates the stamps, disk and CPU hours of every simulation recipe; a
  plan above ``limits.max_stamps`` or ``limits.max_disk_gb`` stops with the estimate, until the user
  raises the cap in the config.

This module imports neither Snakemake nor GalSim nor Keras (it runs on every ``snakemake`` call).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

#: per recipe kind: bands, the task label it provides, its catalogue columns (regular expressions,
#: matched whole) and a rough simulation speed in stamps per CPU second at ``ref_stamp`` pixels, by
#: drawing method (measured on this project's 2-core EPYC CI machine; order of magnitude only).
#: tests/faults/test_config_semantics.py simulates each kind and checks its columns against these.
RECIPES: dict[str, dict] = {
    "sersic": {
        "bands": 1,
        "labels": ("r_e_arcsec",),
        "columns": ("id", "dataset", "shard", "index", "seed", "pixel_scale", "r_e_arcsec", "r_e_major_arcsec",
                    "sersic_n", "q", "pa_deg", "flux", "snr", "sky", "dx_px", "dy_px", "psf_fwhm_arcsec",
                    "frac_in_stamp_circle"),
        "stamps_per_cpu_s": {"phot": 250.0, "fft": 26.0},
        "ref_stamp": 64,
    },
    "hst_bulge_disk": {
        "bands": 1,
        "labels": ("r_e_arcsec",),
        "columns": ("id", "dataset", "shard", "index", "seed", "pixel_scale", "r_e_arcsec", "flux", "snr", "sky",
                    "dx_px", "dy_px", "psf_fwhm_arcsec", "noise_corr_px", "bulge_fraction",
                    "(disk|bulge)_(n|q|pa_deg|r_e_arcsec)", "n_neighbours", "nearest_neighbour_px",
                    r"nb\d+_(dx_px|dy_px|flux|n|pa_deg|q|r_e_arcsec)"),
        "stamps_per_cpu_s": {"fft": 65.0, "phot": 65.0},
        "ref_stamp": 64,
    },
    "stargal": {
        "bands": 5,
        "labels": ("is_star",),
        "columns": ("id", "dataset", "shard", "index", "seed", "pixel_scale", "objID", "ra", "dec", "run", "rerun",
                    "camcol", "field", "field_index", "is_star", "class", "type", "r_mag_true",
                    "flux_true_[ugriz]", "bulge_frac", "r_disk_arcsec", "r_bulge_arcsec", "q_disk", "q_bulge",
                    "pa_deg", "dx_px", "dy_px", "psf_fwhm_arcsec", "psfFWHM_[ugriz]", "sky_[ugriz]",
                    "sky_sigma_[ugriz]", "(psf|cModel)(Flux|Mag)_[ugriz]", "petroRad_r", "deVRad_r", "expRad_r",
                    "fracDeV_r"),
        "stamps_per_cpu_s": {"": 32.0},
        "ref_stamp": 48,
    },
}
#: catalogue columns of the live SDSS shards (stargal.source: sdss) a config may name
SDSS_COLUMNS = ("psfFWHM_r", "is_star", "objID", "ra", "dec", "run", "rerun", "camcol", "field",
                "(psf|cModel|model|petro|fiber)Mag_[ugriz]", "petroRad_r", "type", "class")
#: what each task predicts (its label column) and the bands its preprocessing may name
TASK_LABELS = {"size": "r_e_arcsec", "stargal": "is_star"}
#: bytes of catalogue per stamp (Parquet row), for the disk estimate
CATALOGUE_BYTES = 400


class ConfigError(ValueError):
    """Everything wrong with a configuration, one problem per line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


# --------------------------------------------------------------------------- YAML files
def duplicate_keys(path: str | os.PathLike) -> list[str]:
    """``file:line: duplicate key a.b.c (first at line n)`` for every mapping key given twice.

    Merge keys (``<<: *anchor``) are YAML's way to override on purpose and are not counted.
    YTE templates (``__use_yte__: true``) are plain YAML before templating and are checked the same.
    """
    path = Path(path)
    try:
        root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return [f"{path}: not valid YAML ({' '.join(str(exc).split())})"]
    out: list[str] = []
    seen_nodes: set[int] = set()

    def walk(node, where: str) -> None:
        if id(node) in seen_nodes:  # an alias: its anchor was checked already
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name is not None and name != "<<":
                    here = f"{where}.{name}" if where else name
                    if name in first:
                        out.append(f"{path}:{key.start_mark.line + 1}: duplicate key {here} (first at line "
                                   f"{first[name]}); YAML would keep only the last value")
                    else:
                        first[name] = key.start_mark.line + 1
                walk(value, f"{where}.{name}" if where else str(name))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{where}[{i}]")

    if root is not None:
        walk(root, "")
    return out


def check_files(paths) -> None:
    """Raise :class:`ConfigError` if a config file has a duplicate key (call before validation)."""
    problems = [p for path in paths if Path(path).is_file() for p in duplicate_keys(path)]
    if problems:
        raise ConfigError(problems)


# --------------------------------------------------------------------------- strict integers
def float_integers(config: dict, schema: dict) -> list[str]:
    """Keys the schema declares ``integer`` that hold a float (``7.0``), as ``key: value`` problems."""
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda checker, v: isinstance(v, int) and not isinstance(v, bool))
    validator = jsonschema.validators.extend(base, type_checker=strict)(schema)
    out = []
    for err in validator.iter_errors(config):
        for e in [err, *_leaves(err)]:
            if e.validator == "type" and isinstance(e.instance, float) and "integer" in _types(e.validator_value):
                out.append(f"{_dotted(e.absolute_path)}: {e.instance!r} is not an integer"
                           + (f" (write {int(e.instance)})" if e.instance.is_integer() else ""))
    return sorted(set(out))


def _leaves(err):
    for sub in err.context or ():
        yield sub
        yield from _leaves(sub)


def _types(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# --------------------------------------------------------------------------- ranges
def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def range_problems(config, where: str = "") -> list[str]:
    """min < max for every ``{min, max}`` mapping and every ``*_min``/``*_max`` (``min_*``/``max_*``) pair."""
    out: list[str] = []
    if isinstance(config, dict):
        for key, lo in config.items():
            if not isinstance(key, str) or not _number(lo):
                continue
            parts = key.split("_")
            if "min" not in parts:
                continue
            twin = "_".join("max" if p == "min" else p for p in parts)
            hi = config.get(twin)
            if _number(hi) and not lo < hi:
                at = f"{where}." if where else ""
                out.append(f"{at}{key}: {lo!r} is not below {at}{twin}: {hi!r} (an empty or inverted range)")
        lo, hi, width = (config.get(k) for k in ("min", "max", "width"))
        if _number(lo) and _number(hi) and _number(width) and width > hi - lo:
            out.append(f"{where}.width: {config['width']!r} is wider than the range [{config['min']!r}, "
                       f"{config['max']!r}] (no bin would fit)")
        if all(_number(config.get(k)) for k in ("min", "max", "median")) and not (
                config["min"] <= config["median"] <= config["max"]):
            out.append(f"{where}.median: {config['median']!r} is outside [{config['min']!r}, {config['max']!r}]")
        for key, value in config.items():
            out += range_problems(value, f"{where}.{key}" if where else str(key))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            out += range_problems(value, f"{where}[{i}]")
    return out


# --------------------------------------------------------------------------- tasks and data
def _matches(column: str, patterns) -> bool:
    return any(re.fullmatch(p, column) for p in patterns)


def _task_data(config: dict, task: str) -> tuple[str, dict | None, dict | None]:
    """(where the task's data is configured, its recipe or None, a description {stamp, pixel_scale,
    bands, columns, kind} or None when the data is not configured / of an unknown kind)."""
    tcfg = config.get(task, {})
    if tcfg.get("source", "simulated") == "sdss":
        sdss = config.get("sdss", {})
        return "sdss", None, {"stamp": sdss.get("stamp", 48), "pixel_scale": sdss.get("pixel_scale", 0.396),
                              "bands": 5, "columns": SDSS_COLUMNS, "kind": "sdss"}
    name = tcfg.get("dataset", task)
    recipe = config.get("sims", {}).get(name)
    if not isinstance(recipe, dict):
        return f"sims.{name}", None, None
    known = RECIPES.get(recipe.get("kind"))
    desc = {"stamp": recipe.get("stamp"), "pixel_scale": recipe.get("pixel_scale"), "kind": recipe.get("kind"),
            "bands": known["bands"] if known else None, "columns": known["columns"] if known else None}
    return f"sims.{name}", recipe, desc


def task_problems(config: dict) -> list[str]:
    """Label, PSF column, reference band and stamp/layout of each configured task; transfer target."""
    out: list[str] = []
    for task, label in TASK_LABELS.items():
        if task not in config:
            continue
        where, recipe, desc = _task_data(config, task)
        if desc is None:
            continue  # not configured (the size task's missing recipe is reported by the workflow itself)
        cols = desc["columns"]
        if cols is not None and not _matches(label, cols):
            out.append(f"{task}.dataset: {where} is a {desc['kind']} recipe, whose catalogue has no "
                       f"{label!r} column (the {task} task's label)")
        pre = config[task].get("preprocess", {})
        if pre.get("layout") == "fovea" and _number(desc["stamp"]) and desc["stamp"] % 4:
            out.append(f"{where}.stamp: {desc['stamp']!r} is not divisible by 4, which {task}.preprocess.layout: "
                       "fovea needs (a centre crop of half the side plus the whole stamp binned 2x2)")
        if pre.get("psf_channel") and cols is not None:
            col = pre.get("psf_column", "psfFWHM_r")
            if not _matches(col, cols):
                out.append(f"{task}.preprocess.psf_column: {col!r} is not a column of {where} ({desc['kind']} "
                           "catalogues have e.g. psfFWHM_r, psf_fwhm_arcsec); psf_channel: true needs it")
        bands = desc["bands"]
        if pre.get("norm") == "ref" and bands is not None and pre.get("ref_band", 0) >= bands:
            out.append(f"{task}.preprocess.ref_band: {pre.get('ref_band')!r} but {where} has {bands} band(s) "
                       f"(indices 0..{bands - 1})")
    return out


def transfer_problems(config: dict) -> list[str]:
    """The offline transfer target against the size model: same stamp and pixel scale, enough stamps
    for the test set and the largest budget. Not part of :func:`problems`: the workflow asks only when
    a transfer job is planned (a size-only config merged over the default one keeps the default
    transfer target, which need not match it)."""
    t = config.get("transfer")
    if not t or t.get("target") != "simulated_hst":
        return []
    target = config.get("sims", {}).get(t.get("dataset"))
    _, size_recipe, size = _task_data(config, "size")
    if not isinstance(target, dict) or size is None:
        return []  # transfer not configured: asking for it reports that
    where = f"sims.{t['dataset']}"
    out = []
    for key in ("stamp", "pixel_scale"):
        if _number(target.get(key)) and _number(size[key]) and target[key] != size[key]:
            out.append(f"{where}.{key}: {target[key]!r} differs from the size model's {size[key]!r} "
                       f"(transfer.base_model is applied to the target's stamps as they are)")
    n = target.get("shards", 0) * target.get("per_shard", 0)
    need = t.get("test_size", 0) + max(t.get("budgets") or [0])
    if n and need > n:
        out.append(f"transfer.test_size + the largest budget: {need} but {where} simulates {n} stamps")
    return out


def physical_problems(config: dict) -> list[str]:
    """The largest galaxy and the PSF must fit in the stamp (else photon counts and FFTs explode)."""
    out = []
    for name, r in (config.get("sims") or {}).items():
        if not isinstance(r, dict) or not (_number(r.get("stamp")) and _number(r.get("pixel_scale"))):
            continue
        width = r["stamp"] * r["pixel_scale"]  # arcsec
        sizes = {
            "r_e.max": (r.get("r_e") or {}).get("max"),
            "disk.r_e.max": ((r.get("disk") or {}).get("r_e") or {}).get("max"),
            "galaxy.size.max_arcsec": ((r.get("galaxy") or {}).get("size") or {}).get("max_arcsec"),
            "psf.fwhm": (r.get("psf") or {}).get("fwhm"),
            "seeing.max": (r.get("seeing") or {}).get("max"),
        }
        for key, value in sizes.items():
            if _number(value) and value > width:
                out.append(f"sims.{name}.{key}: {value!r} arcsec does not fit in the stamp "
                           f"({r['stamp']} px x {r['pixel_scale']!r} arcsec/px = {width:.4g} arcsec): "
                           "check pixel_scale (arcsec per pixel) and stamp (pixels)")
    return out


# --------------------------------------------------------------------------- plan size
def plan(config: dict) -> dict:
    """Estimated stamps, bytes and CPU hours of every simulation recipe (and live SDSS cutouts)."""
    rows = []
    for name, r in (config.get("sims") or {}).items():
        if not isinstance(r, dict):
            continue
        known = RECIPES.get(r.get("kind"), {})
        n = int(r.get("shards", 0)) * int(r.get("per_shard", 0))
        bands = known.get("bands", 1)
        stamp = int(r.get("stamp", 64))
        rates = known.get("stamps_per_cpu_s", {})
        rate = rates.get(r.get("method", ""), next(iter(rates.values()), 20.0))
        rate *= (known.get("ref_stamp", 64) / stamp) ** 2  # drawing cost grows with the stamp area
        rows.append({"name": f"sims.{name}", "stamps": n, "bytes": n * (bands * stamp * stamp * 4 + CATALOGUE_BYTES),
                     "cpu_hours": n / rate / 3600})
    if config.get("stargal", {}).get("source") == "sdss":
        s = config.get("sdss", {})
        n = int(s.get("max_objects") or 0) or 10**6  # 0: no limit; say a million
        rows.append({"name": "sdss", "stamps": n, "bytes": n * (5 * int(s.get("stamp", 48)) ** 2 * 4 + CATALOGUE_BYTES),
                     "cpu_hours": n / 10.0 / 3600})
    limits = config.get("limits") or {}
    return {"datasets": rows, "stamps": sum(r["stamps"] for r in rows), "bytes": sum(r["bytes"] for r in rows),
            "cpu_hours": sum(r["cpu_hours"] for r in rows),
            "max_stamps": limits.get("max_stamps", 10**8), "max_disk_gb": limits.get("max_disk_gb", 1000)}


def describe_plan(p: dict) -> str:
    """One line: the plan's stamps, disk and CPU hours, and the caps."""
    return (f"deepsky plan: {p['stamps']:,} stamps in {len(p['datasets'])} dataset(s), ~{_size(p['bytes'])} "
            f"of shards, ~{p['cpu_hours']:.3g} CPU hours to simulate (caps: limits.max_stamps "
            f"{p['max_stamps']:,}, limits.max_disk_gb {p['max_disk_gb']:,})")


def plan_problems(p: dict) -> list[str]:
    out = []
    if p["stamps"] > p["max_stamps"] or p["bytes"] > p["max_disk_gb"] * 1e9:
        big = ", ".join(f"{r['name']}: {r['stamps']:,} stamps ~{_size(r['bytes'])}"
                        for r in sorted(p["datasets"], key=lambda r: -r["bytes"])[:3])
        out.append(f"plan size: {p['stamps']:,} stamps, ~{_size(p['bytes'])}, ~{p['cpu_hours']:.3g} CPU hours "
                   f"({big}) exceeds limits.max_stamps: {p['max_stamps']:,} or limits.max_disk_gb: "
                   f"{p['max_disk_gb']:,}; if you mean it, raise those limits in the config")
    return out


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.3g} PB"


# --------------------------------------------------------------------------- all of it
def problems(config: dict, schema: dict) -> list[str]:
    """Every semantic problem of a validated config (defaults filled), one line each."""
    return (float_integers(config, schema) + range_problems(config) + task_problems(config)
            + physical_problems(config) + plan_problems(plan(config)))


def check(config: dict, schema_path: str | os.PathLike) -> dict:
    """Raise :class:`ConfigError` listing every problem of ``config``; else return its :func:`plan`."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    found = problems(config, schema)
    if found:
        raise ConfigError(found)
    return plan(config)
