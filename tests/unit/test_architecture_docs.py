"""docs/architecture.md's package table against the tree and the import contracts, so neither drifts.

Every package directory under src/stratus must have a row, and the layer a row gives must be the layer
the import-linter contract in pyproject.toml enforces (the one `make lint` checks).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def _package_rows() -> dict[str, str]:
    """``{package: layer}`` from the table under "## Packages" whose header is ``package | layer``."""
    section = DOC.read_text(encoding="utf-8").split("\n## Packages\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `stratus\.(\w+)` \| (\d+) \|", section, flags=re.MULTILINE)
    return dict(rows)


def _contract_layers() -> dict[str, int]:
    """``{package or module: layer}`` from the layers contract (layer 1 is the first line, the top)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return {
        name.strip(): number
        for number, layer in enumerate(contract["layers"], start=1)
        for name in re.split(r"[|:]", layer)
    }


def test_every_package_directory_has_a_row_in_the_table() -> None:
    packages = sorted(p.parent.name for p in (ROOT / "src" / "stratus").glob("*/__init__.py"))
    assert len(packages) >= 19, packages
    missing = [f"stratus.{name}" for name in packages if name not in _package_rows()]
    assert not missing, f"docs/architecture.md's package table has no row for {', '.join(missing)}"


def test_each_row_gives_the_layer_the_import_contract_enforces() -> None:
    layers = _contract_layers()
    wrong = {
        name: (int(doc), layers.get(name))
        for name, doc in _package_rows().items()
        if int(doc) != layers.get(name)
    }
    assert not wrong, f"package: (layer in docs/architecture.md, layer in pyproject.toml): {wrong}"
