"""The package's layers (docs/architecture.md): a module imports only modules of its own layer or
lower ones, and no library module reads what a notebook wrote."""

import ast
import re
from pathlib import Path

import pytest

import hierstudy

PACKAGE = Path(hierstudy.__file__).parent

# the data flow, bottom up; a module's layer is that of its longest matching prefix
LAYERS = {
    "hierstudy": 0,
    "hierstudy.config": 0,
    "hierstudy.files": 0,
    "hierstudy.geometry": 0,
    "hierstudy.hierarchy": 1,
    "hierstudy.embeddings": 1,
    "hierstudy.datasets": 2,
    "hierstudy.models": 2,
    "hierstudy.losses": 2,
    "hierstudy.features": 3,
    "hierstudy.objective": 3,
    "hierstudy.optim": 3,
    "hierstudy.checkpoint": 3,
    "hierstudy.train": 3,
    "hierstudy.methods": 3,
    "hierstudy.setups": 3,
    "hierstudy.snapshots": 3,
    "hierstudy.records": 3,
    "hierstudy.run_files": 3,
    "hierstudy.runs": 4,
    "hierstudy.run_pool": 4,
    "hierstudy.visual_hierarchy": 5,
    "hierstudy.gradcam": 5,
    "hierstudy.proxy_tree": 5,
    "hierstudy.evaluation": 5,
    "hierstudy.report": 6,
    "hierstudy.study": 6,
}


def layer(module: str) -> int:
    prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".") and p != "hierstudy"]
    assert prefixes, f"{module} has no layer: add it to LAYERS and to docs/architecture.md"
    return LAYERS[max(prefixes, key=len)]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, name: str, is_package: bool = False) -> set[str]:
    """The hierstudy modules that the code ``source`` of module ``name`` imports, at module level
    or inside functions (``from . import x`` counts as ``package.x``)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "hierstudy"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "hierstudy":
                continue
            for alias in node.names:  # ``from hierstudy import runs`` imports the module runs
                module = f"{base}.{alias.name}"
                found.add(module if is_module(module) else base)
    return found


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def upward_imports(source: str, name: str, is_package: bool = False) -> list[str]:
    return [
        f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
        for target in sorted(imported(source, name, is_package))
        if layer(target) > layer(name)
    ]


def test_no_module_imports_a_higher_layer():
    upward = [
        line
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in upward_imports(path.read_text(), module_name(path), path.name == "__init__.py")
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize(
    "source",
    [
        "from .losses.hier import HIER\n",
        "from hierstudy.runs import Run\n",
        "def f():\n    from . import runs\n",
        "from hierstudy import study\n",
        "import hierstudy.evaluation.metrics\n",
    ],
)
def test_an_upward_import_is_caught(source):
    assert upward_imports(source, "hierstudy.geometry")  # layer 0 importing layers 2-5


def test_imports_within_and_below_the_layer_pass():
    source = "from .hierarchy import Hierarchy\nfrom . import config, files\nimport torch\n"
    assert imported(source, "hierstudy.models") == {
        "hierstudy.hierarchy",
        "hierstudy.config",
        "hierstudy.files",
    }
    assert not upward_imports(source, "hierstudy.models")


def notebook_outputs(source: str) -> list[str]:
    """The notebook output files (``06_per_seed.csv``…) that string literals of ``source`` name,
    docstrings aside."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    output = re.compile(r"\b0\d_\w+\.(?:csv|json|md)\b")
    return [
        match
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
        for match in output.findall(node.value)
    ]


def test_the_library_reads_no_notebook_output():
    """Notebooks write figures and tables; nothing in the package reads them back by name."""
    readers = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name in notebook_outputs(path.read_text())
    ]
    assert not readers, "\n".join(readers)


def test_a_notebook_output_read_by_name_is_caught():
    source = '"""Reads ``01_stats.csv``."""\nTABLE = "06_per_seed.csv"\n'
    assert notebook_outputs(source) == ["06_per_seed.csv"]
