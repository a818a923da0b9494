"""Every third-party module the product imports at load time comes from a distribution that
``pyproject.toml`` declares: ``make up`` installs only those. (``cryptography`` once arrived only
through the kubernetes client's old dependencies; a newer client dropped them and ``eventbridge
up`` failed on a fresh machine.)"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalized(re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_level_imports() -> dict[str, set[str]]:
    """Top-level package -> the product files that import it outside any function or try block."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "eventbridge").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("eventbridge", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_module_level_import_is_a_declared_dependency() -> None:
    declared = _declared()
    providers = importlib.metadata.packages_distributions()
    imports = _module_level_imports()
    assert {"aiohttp", "pydantic", "cryptography"} <= set(imports)  # the scan sees real imports
    undeclared = {
        top: sorted(files)
        for top, files in imports.items()
        if not {_normalized(dist) for dist in providers.get(top, [])} & declared
    }
    assert undeclared == {}, f"imported by the product but not in [project].dependencies: {undeclared}"
