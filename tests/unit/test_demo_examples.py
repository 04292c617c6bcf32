"""The demo's examples are package data (so `msjob-local demo` works from an installed wheel), copies of
examples/: a change to one side without the other fails here."""

import re
from fnmatch import fnmatch
from pathlib import Path

from msjob_localcluster import demo

REPO = Path(__file__).resolve().parents[2]
PACKAGED = Path(demo.__file__).parent / "examples"


def test_every_packaged_example_equals_the_one_in_examples():
    packaged = sorted(p.relative_to(PACKAGED) for p in PACKAGED.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)
    assert [str(p) for p in packaged] == ["demo-train.yaml", "demo.yaml", "scripts/train_data_parallel.py"]
    for rel in packaged:
        assert (PACKAGED / rel).read_bytes() == (REPO / "examples" / rel).read_bytes(), (
            f"{PACKAGED / rel} differs from examples/{rel}: copy examples/{rel} over it")


def test_the_packaged_examples_are_package_data():
    section = (REPO / "pyproject.toml").read_text().split("[tool.setuptools.package-data]", 1)[1]
    globs = re.findall(r'"([^"]+)"', section.split("msjob_localcluster = [", 1)[1].split("]", 1)[0])
    package_root = Path(demo.__file__).parent
    for path in PACKAGED.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = str(path.relative_to(package_root))
            assert any(fnmatch(rel, g) for g in globs), f"{rel} would be missing from the wheel"


def test_the_demo_mounts_the_scripts_it_ships():
    body = demo.load_job(demo.TRAIN_DEMO, checkpoints=Path("/tmp/fresh"))
    data = demo.scripts_configmap()["data"]
    for replica in body["spec"]["msReplicaSpecs"].values():
        spec = replica["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["scripts"]["configMap"]["name"] == demo.SCRIPTS_CONFIGMAP
        script = spec["containers"][0]["command"][1]
        assert script.startswith("/workspace/") and script.removeprefix("/workspace/") in data
    worker = body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]
    assert {v["name"]: v for v in worker["volumes"]}["checkpoints"]["hostPath"]["path"] == "/tmp/fresh"
    assert body["spec"]["health"]["reportProgress"] is True


def test_the_job_chosen():
    assert demo.choose_job(None, None, None) == (demo.TRAIN_DEMO, True, None)
    job, node, note = demo.choose_job(None, None, "the process node needs root (network namespaces, bind mounts)")
    assert (job, node) == (demo.FAKE_DEMO, False)
    assert note == ("no process node here: the process node needs root (network namespaces, bind mounts); "
                    "running the fake-node demo (demo.yaml) instead")
    assert demo.choose_job("/k", None, None) == (demo.FAKE_DEMO, False, None)
    assert demo.choose_job("/k", Path("mine.yaml"), None) == (Path("mine.yaml"), False, None)
