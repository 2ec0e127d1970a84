"""Rule code inputs are derived from imports (workflow/rules/common.smk: script_lib, recipe_lib).

The helpers are plain Python inside common.smk; they are taken out of it with ``ast`` and run here
on the real scripts/ tree, so these tests check the code the workflow runs.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMON = ROOT / "workflow" / "rules" / "common.smk"
HELPERS = ("_module_file", "_imported_names", "_closure", "_as_input", "_as_input_from", "script_lib",
           "module_lib")


def load_helpers(scripts: Path) -> dict:
    """The import-closure helpers of common.smk, bound to the scripts folder ``scripts``."""
    tree = ast.parse(COMMON.read_text())
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in HELPERS]
    assert sorted(f.name for f in funcs) == sorted(HELPERS), "common.smk lost one of the closure helpers"
    ns = {"ast": ast, "functools": functools, "Path": Path, "SCRIPTS": scripts}
    exec(compile(ast.Module(body=funcs, type_ignores=[]), str(COMMON), "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def helpers():
    return load_helpers(ROOT / "scripts")


def rel(files) -> set[str]:
    return {str(Path(f).resolve().relative_to(ROOT / "scripts" / "deepsky")) for f in files}


def test_train_closure_follows_imports_recursively_and_stays_out_of_reports(helpers):
    files = rel(helpers["script_lib"]("train"))
    # direct imports, imports of imports (train -> inference -> modelfile), packages on the way
    assert {"learn/train.py", "learn/tasks.py", "learn/models.py", "learn/data.py", "learn/modelfile.py",
            "learn/inference.py", "io.py", "runlog.py", "__init__.py", "learn/__init__.py"} <= files
    # imported inside a function only (inference.predict_task -> uncertainty)
    assert "learn/uncertainty.py" in files
    assert not any(f.startswith(("reports/", "sims/", "archives/")) for f in files), files


def test_closures_are_sorted_paths_that_exist(helpers, monkeypatch, tmp_path):
    # relative to the working directory when the checkout lies under it (a moved checkout keeps its
    # results), absolute from a working directory elsewhere
    monkeypatch.chdir(tmp_path)
    assert all(Path(f).is_absolute() and Path(f).is_file() for f in helpers["script_lib"]("evaluate"))
    monkeypatch.chdir(ROOT)
    files = helpers["script_lib"]("evaluate")
    assert files == sorted(files)
    assert all(f.startswith("scripts/deepsky/") and Path(f).is_file() for f in files)
    assert {"reports/evaluation.py", "reports/plots.py", "reports/task_reports.py", "learn/inference.py"} <= rel(files)
    assert "learn/train.py" not in rel(files)  # evaluation reads a saved model; it never trains


def test_simulate_closure_holds_the_registry_but_no_recipe(helpers):
    files = rel(helpers["script_lib"]("simulate"))
    assert {"sims/__init__.py", "sims/registry.py", "io.py"} <= files
    assert not files & {"sims/sersic.py", "sims/stargal.py", "sims/hst_target.py"}
    sersic = rel(helpers["module_lib"]("deepsky.sims.sersic"))
    assert {"sims/sersic.py", "sims/psf.py", "sims/seeds.py", "sims/photometry.py"} <= sersic
    assert "sims/stargal.py" not in sersic


def test_relative_absolute_and_nested_imports(tmp_path):
    """A synthetic package: from-imports of submodules, `..` imports, plain `import a.b`, imports in
    functions, cycles; non-deepsky imports ignored."""
    pkg = tmp_path / "deepsky"
    for f, text in {
        "__init__.py": "",
        "a/__init__.py": "",
        "a/one.py": "import numpy\nfrom .. import top\n\ndef f():\n    from . import two\n",
        "a/two.py": "from .one import f\n",  # cycle one <-> two
        "top.py": "import deepsky.b.three as t\n",
        "b/__init__.py": "",
        "b/three.py": "import os\n",
        "b/unused.py": "",
    }.items():
        (pkg / f).parent.mkdir(parents=True, exist_ok=True)
        (pkg / f).write_text(text)
    (tmp_path / "rule.py").write_text("import sys\nfrom deepsky.a import one  # noqa\n")
    h = load_helpers(tmp_path)
    got = {str(Path(f).relative_to(pkg)) for f in h["script_lib"]("rule")}
    assert got == {"__init__.py", "a/__init__.py", "a/one.py", "a/two.py", "top.py", "b/__init__.py", "b/three.py"}


def test_every_scripted_rule_declares_its_derived_code_inputs():
    """Each rule with a script: in workflow/rules/*.smk has lib=script_lib("<that script>") (the
    simulate rule: recipe_lib, which adds the recipe module of the dataset's kind)."""
    checked = 0
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=(?:local)?rule \w+:)", smk.read_text())[1:]:
            name = re.match(r"(?:local)?rule (\w+):", block)[1]
            script = re.search(r'script:\s*\n\s*"\.\./\.\./scripts/(\w+)\.py"', block)
            if script is None:
                continue
            checked += 1
            assert "lib(" not in block.replace("script_lib(", "").replace("recipe_lib(", ""), \
                f"rule {name} in {smk.name} still lists library modules by hand"
            if name == "simulate":
                assert "lib=lambda wc: recipe_lib(wc.dataset)" in block
            else:
                assert f'lib=script_lib("{script[1]}")' in block, \
                    f"rule {name} in {smk.name} lacks its derived lib input"
    assert checked >= 20


def test_imports_point_down_the_pipeline_without_cycles(helpers):
    """sims/archives -> io -> learn -> reports: a stage imports only from earlier stages (reports may
    import learn and sims; learn never imports reports), and no module imports itself back."""
    lib = ROOT / "scripts" / "deepsky"
    order = {"sims": 0, "archives": 0, "learn": 1, "reports": 2}
    graph = {}
    for f in sorted(lib.rglob("*.py")):
        deps = set()
        for name in helpers["_imported_names"](f):
            g = helpers["_module_file"](name)
            if g is not None and g != f and g.name != "__init__.py":
                deps.add(g)
        graph[f] = deps
        stage = f.relative_to(lib).parts[0]
        for g in deps:
            other = g.relative_to(lib).parts[0]
            if stage in order and other in order:
                assert order[other] <= order[stage], f"{f.relative_to(lib)} imports {g.relative_to(lib)}"
    # depth-first search for a cycle
    state = {}

    def visit(f, path):
        state[f] = "open"
        for g in graph[f]:
            assert state.get(g) != "open", "import cycle: " + " -> ".join(str(p.relative_to(lib)) for p in path + [g])
            if g not in state:
                visit(g, path + [g])
        state[f] = "done"

    for f in graph:
        if f not in state:
            visit(f, [f])


def test_package_inits_import_no_recipe_and_no_heavy_library(helpers):
    """__init__ files stay light: the workflow imports deepsky.reports.study and deepsky.sims.registry
    while planning, without Keras, matplotlib or GalSim."""
    import subprocess
    import sys

    code = ("import sys; import deepsky.reports.study, deepsky.sims.registry, deepsky.learn, deepsky.archives; "
            "heavy = [m for m in ('keras', 'tensorflow', 'matplotlib', 'galsim') if m in sys.modules]; "
            "recipes = [m for m in sys.modules if m in ('deepsky.sims.sersic', 'deepsky.sims.stargal', "
            "'deepsky.sims.hst_target')]; print(heavy, recipes)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT / "scripts"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] []"
