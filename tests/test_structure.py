"""The layers, read from the source: pages above ``explorer`` above ``moecore``, no import running back.

Every ``import`` statement counts, those inside functions too: a deferred import still ties the two
modules together (it only hides the loop from the interpreter until the function runs).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path, package=None, modules=()):
    """The absolute module names a file imports (relative imports resolved against ``package``).

    ``from X import name`` counts as importing ``X.name`` when that is one of ``modules``, else ``X``.
    """
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{mod}" if mod else base
            for alias in node.names:
                out.add(f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in modules else mod)
    return out


def package_graph(package):
    """{module: set of modules of the same package it imports}, e.g. ``moecore.shards``."""
    files = {f"{package}.{p.stem}": p for p in sorted((ROOT / package).glob("*.py"))}
    files[package] = files.pop(f"{package}.__init__")
    return {mod: {m for m in imports_of(path, package, files) if m in files and m != mod}
            for mod, path in files.items()}


def find_cycle(graph):
    """One import cycle as a list [a, b, ..., a], or None (depth-first search, three colours)."""
    state = dict.fromkeys(graph, 0)  # 0 unseen, 1 on the current path, 2 finished
    path = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                return [*path[path.index(nxt):], nxt]
            if state[nxt] == 0:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state[node] == 0:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    # The check below can only fail if the finder sees cycles: show it on a small graph.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_moecore_import_graph_has_no_cycle():
    graph = package_graph("moecore")
    # The package's own __init__ imports every public module; a module importing the package root
    # would close a loop through it, and is counted like any other edge.
    assert len(graph) > 10
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_fit_shards_uses_only_public_names_of_the_core():
    # fit_shards works from what the estimator hands it (a ShardJob), not from its private methods.
    tree = ast.parse((ROOT / "moecore" / "shards.py").read_text())
    private = [f"{node.module}.{alias.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.level for alias in node.names if alias.name.startswith("_")]
    assert not private
    assert "moecore.distributed" not in imports_of(ROOT / "moecore" / "shards.py", "moecore")
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not {a for a in attributes if a.startswith("_") and not a.startswith("__")}


def test_moecore_knows_nothing_of_the_app():
    for path in sorted((ROOT / "moecore").glob("*.py")):
        above = {m for m in imports_of(path, "moecore") if m.split(".")[0] in ("streamlit", "explorer", "pages")}
        assert not above, f"{path.name} imports {sorted(above)}"


def test_explorer_never_imports_the_pages():
    for path, package in app_files():
        if package.split(".")[0] != "explorer":
            continue
        above = {m for m in imports_of(path, package) if m.split(".")[0] in ("pages", "app")}
        assert not above, f"{path.name} imports {sorted(above)}"


def test_pages_do_not_import_numpy():
    # Pages lay out widgets and figures; arithmetic belongs to moecore or explorer.
    for path in sorted((ROOT / "pages").glob("*.py")):
        assert not any(m.split(".")[0] == "numpy" for m in imports_of(path, "pages")), path.name


def test_estimator_signatures_match_the_parameter_declaration():
    """scikit-learn wants every parameter written out in ``__init__``; moecore.params declares them
    for validation, the CLI and the app.  The two must agree on names and defaults."""
    import inspect

    from moecore import DistributedMoE, MixtureOfExperts
    from moecore.params import DISTRIBUTED_PARAMETERS, EM_PARAMETERS

    for cls, spec in ((MixtureOfExperts, EM_PARAMETERS), (DistributedMoE, DISTRIBUTED_PARAMETERS)):
        sig = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
        assert set(sig) == set(spec), (cls.__name__, set(sig) ^ set(spec))
        for name, param in spec.items():
            assert sig[name] == param.default, (cls.__name__, name, sig[name], param.default)


# ------------------------------------------------------------------- one rule, one place; sizes
MOECORE = sorted((ROOT / "moecore").glob("*.py"))
PYTHON_FILES = [*sorted(p for folder in ("moecore", "explorer", "pages", "tests", "benchmarks")
                       for p in (ROOT / folder).rglob("*.py")), ROOT / "app.py"]
# The measures of the restructuring (docs: "DistributedMoE reads as the algorithm").
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = {"DistributedMoE": 250}
MAX_NAMED_FUNCTION_LINES = {"reduce_mixtures": 60}
# Functions over MAX_FUNCTION_LINES in modules whose restructuring belongs to other work running at
# the same time (EM's restarts, reading shards); the test below keeps this list exact.
LONG_FUNCTIONS_LEFT = set()


def definition_lines(paths=MOECORE):
    """{(file, name): lines} of every function and class, nested ones included (ast line numbers)."""
    out = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                lines = node.end_lineno - node.lineno + 1
                out[(path.name, node.name)] = max(out.get((path.name, node.name), 0), lines)
    return out


def test_the_line_measure_counts_a_definition_from_def_to_its_last_line(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    x = 1\n\n    return x\n\n\nclass C:\n    def g(self):\n        pass\n")
    assert definition_lines([src]) == {("m.py", "f"): 4, ("m.py", "C"): 3, ("m.py", "g"): 2}


def test_no_function_in_moecore_is_longer_than_the_limit():
    lines = definition_lines()
    classes = {(f, n) for path in MOECORE for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ClassDef) for f, n in [(path.name, node.name)]}
    long = {key for key, n in lines.items() if key not in classes and n > MAX_FUNCTION_LINES}
    assert long == LONG_FUNCTIONS_LEFT, {key: lines[key] for key in long ^ LONG_FUNCTIONS_LEFT}


# warnings.catch_warnings changes process-wide state and is not thread-safe, while the app runs
# fits in session threads: estimators are quieted by an argument instead.  Only a process's own
# main may use it: the command line (its cache warm-up, never called by the app).
CATCH_WARNINGS_ALLOWED = {ROOT / "moecore" / "cli.py"}


def catch_warnings_users(paths):
    """{(file, innermost function or "<module>")} of every ``catch_warnings`` call in ``paths``."""
    out = set()

    def visit(node, where, path):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if isinstance(child, ast.Call) and (getattr(child.func, "attr", None) == "catch_warnings"
                                                or getattr(child.func, "id", None) == "catch_warnings"):
                out.add((path.name, where))
            visit(child, inner, path)

    for path in paths:
        visit(ast.parse(path.read_text()), "<module>", path)
    return out


def test_the_catch_warnings_finder_sees_a_call(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import warnings\ndef f():\n    def g():\n        with warnings.catch_warnings():\n"
                   "            pass\n    return g\nwith warnings.catch_warnings(record=True):\n    pass\n")
    assert catch_warnings_users([src]) == {("m.py", "g"), ("m.py", "<module>")}


def test_catch_warnings_only_in_a_process_own_main():
    moecore = sorted((ROOT / "moecore").rglob("*.py"))
    assert catch_warnings_users([p for p in moecore if p not in CATCH_WARNINGS_ALLOWED]) == set()
    assert catch_warnings_users(sorted((ROOT / "explorer").rglob("*.py"))) == set()
    assert all(p.exists() for p in CATCH_WARNINGS_ALLOWED)  # a renamed main is not allowed by a stale name


def test_the_estimator_and_the_reduction_read_short():
    lines = {name: n for (_, name), n in definition_lines().items()}
    for name, limit in {**MAX_CLASS_LINES, **MAX_NAMED_FUNCTION_LINES}.items():
        assert lines[name] < limit, (name, lines[name], limit)


def test_no_private_scikit_learn_name():
    # Private names change without notice between releases (the requirements pin no upper bound
    # on scikit-learn's minor version): only its public API is used.
    for path in PYTHON_FILES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sklearn":
                private = [a.name for a in node.names if a.name.startswith("_")]
                private += [part for part in node.module.split(".") if part.startswith("_")]
                assert not private, f"{path.relative_to(ROOT)} imports {private} from {node.module}"
            if isinstance(node, ast.Import):
                assert not [a.name for a in node.names if a.name.startswith("sklearn") and "._" in a.name], path


CHOICE_LISTS = ("BACKENDS", "GATE_TARGETS", "LOCAL_CHECKS", "MACHINE_WEIGHTS", "SPLITS", "VARIANCE_UPDATES")


def test_each_choice_list_is_written_once_in_params():
    import moecore.params as params

    for path in MOECORE:
        tree = ast.parse(path.read_text())
        assigned = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        literals = {tuple(e.value for e in node.elts) for node in ast.walk(tree)
                    if isinstance(node, (ast.Tuple, ast.List, ast.Set))
                    and all(isinstance(e, ast.Constant) for e in node.elts)}
        for name in CHOICE_LISTS:
            if path.name != "params.py":
                assert name not in assigned, f"{path.name} defines {name} again"
                assert getattr(params, name) not in literals, f"{path.name} spells out {name}"
    for name in CHOICE_LISTS:
        assert isinstance(getattr(params, name), tuple) and len(getattr(params, name)) >= 2


def test_params_imports_no_algorithm_module():
    # The declaration is the bottom floor: every module may read it, it reads nothing above it.
    graph = package_graph("moecore")
    assert graph["moecore.params"] <= {"moecore._validation"}, graph["moecore.params"]


def test_package_docstring_lists_every_module():
    import moecore

    for path in MOECORE:
        name = "moecore" if path.stem == "__init__" else f"moecore.{path.stem}"
        assert name in moecore.__doc__, f"{name} is missing from moecore's docstring"


def test_requirement_floors_agree_and_the_pins_meet_them():
    from packaging.requirements import Requirement

    def floors(lines):
        reqs = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
        return {r.name.lower(): r.specifier for r in reqs}

    required = floors((ROOT / "requirements.txt").read_text().splitlines())
    pins = {name: str(spec).removeprefix("==") for name, spec in
            floors((ROOT / "constraints.txt").read_text().splitlines()).items()}
    text = (ROOT / "pyproject.toml").read_text()
    package = floors(line.strip().strip(",").strip('"') for line in
                     text[text.index("dependencies = ["):text.index("]", text.index("dependencies = ["))]
                     .replace('", "', '"\n"').splitlines()[1:])
    assert package and all(required[name] == spec for name, spec in package.items()), (package, required)
    for name, spec in required.items():
        assert name in pins, f"constraints.txt pins no version of {name}"
        assert spec.contains(pins[name]), f"{name}=={pins[name]} is outside requirements.txt's {spec}"


def app_files():
    """(path, package) of every module of the app: app.py, the pages, explorer and its subpackages."""
    out = [(ROOT / "app.py", ""), *((p, "pages") for p in sorted((ROOT / "pages").glob("*.py")))]
    for path in sorted((ROOT / "explorer").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append((path, ".".join(parts if path.name == "__init__.py" else parts[:-1]).removesuffix(".__init__")))
    return out


def test_the_app_uses_only_streamlit_s_public_api():
    """``import streamlit as st`` and its documented names: no module of streamlit's internals
    (streamlit.runtime..., where PagesManager lives) and no private attribute of st."""
    for path, package in app_files():
        inner = {m for m in imports_of(path, package) if m.startswith("streamlit.")}
        assert not inner, f"{path.name} imports {sorted(inner)}"
        tree = ast.parse(path.read_text())
        private = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                   and isinstance(node.value, ast.Name) and node.value.id == "st" and node.attr.startswith("_")}
        assert not private, f"{path.name} uses {sorted(private)}"


def test_the_app_imports_no_private_name_of_a_library():
    for path, _ in app_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module != "__future__":
                private = [a.name for a in node.names if a.name.startswith("_")]
                modules = [p for p in node.module.split(".") if p.startswith("_")]
                assert not private and not modules, f"{path.name}: from {node.module} import {private}"


def test_no_session_toggles_process_wide_state():
    """Warning filters and BLAS thread limits are process-wide; the app's sessions are threads of
    one process, so none enters and restores them (they are set once, explorer.runs.warm_up)."""
    for path, _ in app_files():
        calls = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                 for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)}
        assert not calls & {"catch_warnings", "simplefilter"}, path.name
        if path.name != "runs.py":
            assert not calls & {"threadpool_limits", "filterwarnings"}, path.name


def test_every_download_goes_through_the_one_that_does_not_rerun():
    """explorer.chrome.download sets on_click="ignore": a click's rerun could drop a file written on the
    click (its docstring).  A direct st.download_button would bring the race back."""
    for path, _ in app_files():
        direct = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "download_button"]
        allowed = 1 if path.name == "chrome.py" else 0
        assert len(direct) == allowed, f"{path.name}: st.download_button at lines {direct}"


def test_every_chart_goes_through_the_one_that_follows_the_projector():
    """explorer.chrome.chart writes the projector's larger text into a figure; a direct st.plotly_chart
    would keep 12 px labels beside 20 px text."""
    for path, _ in app_files():
        direct = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "plotly_chart"]
        allowed = {"chrome.py": 1, "app.py": 1}.get(path.name, 0)  # app.py: the hidden chart-code preload
        assert len(direct) == allowed, f"{path.name}: st.plotly_chart at lines {direct}"


def test_the_upload_limit_is_one_number_in_one_unit():
    """Streamlit's own limit (config.toml, in MiB) and the app's check of what it receives agree."""
    import tomllib

    from explorer import io

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    # Streamlit's server-wide limit is the largest upload, a session file; a CSV's uploader and parser
    # hold their own lower limit, counted in the same unit.
    assert config["server"]["maxUploadSize"] == io.MAX_SESSION_MB > io.MAX_UPLOAD_MB
    assert io.MAX_UPLOAD_BYTES == io.MAX_UPLOAD_MB * 2**20
    too_big = b"x,y\n" + b"1" * (io.MAX_UPLOAD_BYTES - 3)
    with pytest.raises(io.InputError, match=f"larger than the {io.MAX_UPLOAD_MB} MB limit"):
        io.parse_csv(too_big, "big.csv")
    assert io.MAX_MODEL_BYTES == io.MAX_MODEL_MB * 2**20
    with pytest.raises(io.InputError, match=f"larger than {io.MAX_MODEL_MB} MB"):
        io.model_from_json(b" " * (io.MAX_MODEL_BYTES + 1), "big.json")


def test_every_uploader_shows_the_limit_it_is_held_to():
    """Each st.file_uploader passes its own max_upload_size: without it the widget printed the server's
    "51MB per file" under a label that said "at most 1 MB"."""
    for path, _ in app_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "file_uploader":
                assert "max_upload_size" in {k.arg for k in node.keywords}, f"{path.name}:{node.lineno}"


def test_the_app_sweeps_what_the_library_sweeps():
    from explorer import settings, tables
    from explorer.io import SWEEP_NAMES
    from moecore.experiments import SWEEPABLE

    assert set(settings.SWEEPS) == {*SWEEPABLE, "alpha"}
    assert set(SWEEP_NAMES) == set(settings.SWEEPS)
    assert all(tables.label(p) != p for p in settings.SWEEPS)  # each has a readable name
