"""What vc-scheduler needs besides its binary: its CRDs and a scheduler config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from . import binaries

# The CRDs vc-scheduler watches (it waits for their informers to sync).
CRD_FILES = (
    "scheduling.volcano.sh_podgroups.yaml",
    "scheduling.volcano.sh_queues.yaml",
    "topology.volcano.sh_hypernodes.yaml",
    "nodeinfo.volcano.sh_numatopologies.yaml",
)

# The plugin tiers of Volcano's Helm chart: gang scheduling plus the usual predicates.
SCHEDULER_CONF = """\
actions: "enqueue, allocate, backfill"
tiers:
- plugins:
  - name: priority
  - name: gang
    enablePreemptable: false
  - name: conformance
- plugins:
  - name: overcommit
  - name: drf
    enablePreemptable: false
  - name: predicates
  - name: proportion
  - name: nodeorder
  - name: binpack
"""


def module_dir() -> Path:
    """The Volcano Go module's source: the CRDs ship there, not in any package."""
    override = os.environ.get("MSJOB_VOLCANO_SRC")  # e.g. a checkout, on machines without Go
    if override:
        return Path(override)
    go = shutil.which("go")
    if go is None:
        raise binaries.BinaryError(
            "Volcano's CRDs come from its Go module: install Go, or set MSJOB_VOLCANO_SRC "
            "to a Volcano source tree"
        )
    version = binaries.TOOLS["vc-scheduler"].version
    with tempfile.TemporaryDirectory() as cwd:  # outside any go.mod
        proc = subprocess.run(
            [go, "mod", "download", "-json", f"volcano.sh/volcano@v{version}"],
            cwd=cwd, capture_output=True, text=True, timeout=600,
        )
    if proc.returncode != 0:
        raise binaries.BinaryError(f"go mod download volcano.sh/volcano failed: {proc.stdout}{proc.stderr}")
    return Path(json.loads(proc.stdout)["Dir"])


def crds() -> list[dict[str, Any]]:
    bases = module_dir() / "config" / "crd" / "volcano" / "bases"
    return [yaml.safe_load((bases / name).read_text()) for name in CRD_FILES]
