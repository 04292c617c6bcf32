#!/usr/bin/env python3
"""Write the generated files of this repository (the MSJob CRD and its copy in the chart) from the Python API models.

    python scripts/generate.py           # (re)write crds/mindspore.gitee.com_msjobs.yaml and the chart's copy
    python scripts/generate.py --check   # exit 1 if a checked-in file differs from what would be written

The pod template schema the CRD embeds is itself generated, from Kubernetes' OpenAPI spec, by
``scripts/update_podtemplate_schema.py``; run that first when moving to another Kubernetes version.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))

from msjob_operator.api import crd, models  # noqa: E402

CRD_FILE = REPO / "crds" / f"{models.GROUP}_{models.PLURAL}.yaml"  # controller-gen's naming
# Helm installs a chart's crds/ on first install; a chart must carry its files itself (no links out).
CHART_CRD_FILE = REPO / "charts" / "msjob-operator" / "crds" / CRD_FILE.name
REGENERATE = "python scripts/generate.py"


def outputs() -> dict[Path, str]:
    """Every generated file and its expected content."""
    rendered = crd.render_yaml()
    return {CRD_FILE: rendered, CHART_CRD_FILE: rendered}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if a generated file is stale")
    args = parser.parse_args(argv)

    stale = []
    for path, content in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        if args.check:
            stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)} ({len(content.encode())} bytes)")

    if stale:
        for path in stale:
            what = "is missing" if not path.exists() else "is out of date"
            print(f"{path.relative_to(REPO)} {what}; regenerate it with: {REGENERATE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
