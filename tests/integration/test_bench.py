"""A small run of the benchmark, so it keeps working. It checks what was measured, never how fast."""

import asyncio

import pytest

from msjob_operator import bench

pytestmark = pytest.mark.cluster


def test_benchmark_measures_limit_and_operator(cluster, running_operator):
    rows = asyncio.run(bench.run_sizes(str(cluster.kubeconfig), [4], timeout=120))
    (row,) = rows
    assert row["workers"] == 4 and row["pods"] == 5
    for key in ("limit_created_s", "limit_running_s", "operator_created_s", "operator_running_s"):
        assert row[key] > 0, key
    assert row["limit_created_s"] <= row["limit_running_s"] and row["operator_created_s"] <= row["operator_running_s"]
    assert row["ratio_created"] > 0
    assert bench.HEADER.split()[0] == "workers" and bench._row(row).split()[0] == "4"
