"""Import a SkyPilot v8 catalog directory so a team can price with fresher or fuller data.

Every file is parsed completely before anything is written, and each copy lands through a temporary
file and ``os.replace``: a bad file leaves the destination exactly as it was, never half-updated.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from stratus.catalog.catalog import PROVIDERS, ProviderCatalog, open_catalog_file, parse_provider_catalog
from stratus.errors import CatalogError

__all__ = ["find_catalog_files", "import_catalog"]


def find_catalog_files(src_dir: Path) -> dict[str, Path]:
    """The ``vms.csv`` per provider in ``src_dir``: ``aws/vms.csv`` (SkyPilot's layout) or ``aws_vms.csv``."""
    if not src_dir.is_dir():
        raise CatalogError(
            "not a directory; pass a SkyPilot v8 catalog folder such as skypilot-catalog/catalogs/v8",
            file=str(src_dir),
        )
    found: dict[str, Path] = {}
    for provider in PROVIDERS:
        candidates = [
            path
            for path in (src_dir / provider / "vms.csv", src_dir / f"{provider}_vms.csv")
            if path.is_file()
        ]
        if len(candidates) > 1:
            raise CatalogError(
                f"both {provider}/vms.csv and {provider}_vms.csv exist; keep one so the import is "
                "unambiguous",
                file=str(src_dir),
            )
        if candidates:
            found[provider] = candidates[0]
    if not found:
        raise CatalogError(
            "no catalog files found; expected aws/vms.csv, gcp/vms.csv or azure/vms.csv "
            "(SkyPilot v8 layout, as in skypilot-catalog/catalogs/v8) or aws_vms.csv, gcp_vms.csv, "
            "azure_vms.csv",
            file=str(src_dir),
        )
    return found


def _validate(provider: str, path: Path) -> ProviderCatalog:
    return parse_provider_catalog(provider, open_catalog_file(path), str(path))


def import_catalog(src_dir: Path, dest_dir: Path) -> dict[str, int]:
    """Validate and copy the catalog files in ``src_dir`` to ``dest_dir/<provider>/vms.csv``.

    Returns the data rows per imported provider. Raises CatalogError (naming file, line and column)
    when any file is invalid, in which case nothing is copied.
    """
    files = find_catalog_files(src_dir)
    rows = {provider: _validate(provider, path).rows for provider, path in files.items()}
    staged: list[tuple[str, Path]] = []
    try:
        for provider, path in files.items():
            target_dir = dest_dir / provider
            target_dir.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=".vms-", suffix=".csv.tmp", dir=target_dir)
            os.close(handle)
            staged.append((temp, target_dir / "vms.csv"))
            shutil.copyfile(path, temp)
        for temp, target in staged:
            os.replace(temp, target)
    except OSError as exc:
        raise CatalogError(f"cannot write the imported catalog: {exc}", file=str(dest_dir)) from exc
    finally:
        for temp, _ in staged:
            Path(temp).unlink(missing_ok=True)
    return rows
