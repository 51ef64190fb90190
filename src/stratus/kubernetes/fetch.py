"""``python -m stratus.kubernetes.fetch URL PATH``: copy a model from the site's store into the pod.

The serving Deployment's init container. It uses the same fsspec opener as the rest of Stratus, with the
pod's own cloud identity (IRSA, Workload Identity, Azure workload identity): no secret in the manifest.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import fsspec

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Copy ``URL`` to ``PATH``; exit 2 with a one-line reason when it cannot."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m stratus.kubernetes.fetch URL PATH", file=sys.stderr)
        return 2
    url, path = args
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        with fsspec.open(url, "rb") as source, partial.open("wb") as sink:
            shutil.copyfileobj(source, sink, length=1 << 20)
    except (OSError, ValueError) as exc:
        print(f"cannot copy the model from {url}: {exc}", file=sys.stderr)
        return 2
    partial.replace(target)
    print(f"copied {url} to {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
