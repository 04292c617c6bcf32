"""A small run of the benchmark, so it keeps working. It checks what was measured, never how fast."""

import asyncio

import pytest

from msjob_localcluster import bench

pytestmark = pytest.mark.cluster


def test_benchmark_measures_limit_and_operator(cluster, running_operator):
    rows = asyncio.run(bench.run_sizes(str(cluster.kubeconfig), [4], timeout=120, repeat=2))
    (row,) = rows
    assert row["workers"] == 4 and row["pods"] == 5 and row["measurements"] == 2
    assert len(row["limit_created_each_s"]) == len(row["operator_created_each_s"]) == 2
    for key in ("limit_created_s", "limit_running_s", "operator_created_s", "operator_running_s"):
        assert row[key] > 0, key
    assert row["limit_created_s"] <= row["limit_running_s"] and row["operator_created_s"] <= row["operator_running_s"]
    assert row["ratio_created"] > 0
    assert bench.HEADER.split()[0] == "workers" and bench._row(row).split()[0] == "4"


def test_benchmark_scenarios_at_small_scale(cluster, running_operator, capsys):
    """Every scenario but sizes, small: recovery at 8 workers, one job's requests, 5 jobs at once,
    2 then 4 resident jobs, the footprint with them. Figures must exist and be sane, never fast."""
    options = bench.Options(scenarios=("recovery", "requests", "concurrent", "resident", "footprint"),
                            recovery_workers=8, lifecycle_workers=2, concurrent_jobs=5, job_workers=2,
                            resident=[2, 4], new_jobs=1, idle_seconds=1, timeout=120, settle=False)
    results = asyncio.run(bench.run_scenarios(str(cluster.kubeconfig), options, running_operator.proc.pid,
                                              running_operator.metrics))

    recovery = results["recovery"]
    assert recovery["pods"] == 9
    assert 0 <= recovery["old_deleting_s"] <= recovery["old_gone_s"] <= recovery["created_s"] <= recovery["running_s"]
    assert recovery["running_s"] > 0
    limit = recovery["limit"]  # the same restart by a plain client, on the same cluster
    assert 0 <= limit["old_deleting_s"] <= limit["old_gone_s"] <= limit["created_s"] <= limit["running_s"]
    assert recovery["ratio_created"] > 0
    in_place = recovery["in_place"]  # the same failure with restartStrategy InPlace, the agents' side played
    assert in_place["pods"] == 9 and in_place["same_pods"] and in_place["restart_count"] == 1
    # In order (the figures are rounded to 10 ms, so a quick step may read 0).
    assert 0 <= in_place["epoch_moved_s"] <= in_place["barrier_lifted_s"] <= in_place["all_running_s"]
    assert 0 <= in_place["all_acknowledged_s"] <= in_place["all_running_s"]
    assert in_place["last_restart"]["strategy"] == "InPlace" and in_place["last_restart"]["barrierLifted"]
    # The two floors of the acknowledgements, each a patch per member that answered 2xx.
    assert in_place["limit_patches_s"] >= 0 and in_place["limit_lease_patches_s"] >= 0
    writes = in_place["operator_writes"]  # O(1): no pod touched, the epoch and the barrier written once each
    assert writes.get("patch configmaps") == 2 and not any(k.endswith(" pods") for k in writes), writes

    requests = results["lifecycle_requests"]
    assert requests["pods_seen_running"] == 3
    # At least (the session's operator may be busy with other tests' jobs too): its pods and two
    # Services created, its status patched, the job deleted by its TTL.
    assert requests["by_verb_resource"].get("create pods", 0) >= 3
    assert requests["by_verb_resource"].get("create services", 0) >= 2
    assert requests["by_verb_resource"].get("patch msjobs/status", 0) >= 1
    assert requests["by_verb_resource"].get("delete msjobs", 0) >= 1
    assert requests["total"] == sum(requests["by_verb"].values())

    concurrent = results["concurrent"]
    assert concurrent["pods"] == 15 and 0 < concurrent["created_s"] <= concurrent["running_s"]

    resident = results["resident"]
    assert [r["resident_jobs"] for r in resident] == [2, 4]
    assert [r["resident_pods"] for r in resident] == [6, 12]
    assert all(0 < r["mean_created_s"] <= r["mean_s"] <= r["max_s"] for r in resident)
    assert resident[0]["ratio_to_first"] == 1.0 == resident[0]["ratio_created_to_first"]

    footprint = results["footprint"]
    assert footprint["jobs"] == 5 and footprint["pods"] == 15  # 4 resident and the one timed with them
    assert 10 < footprint["rss_mib"] <= footprint["peak_rss_mib"]
    assert footprint["cpu_s_total"] >= footprint["cpu_s_bringing_up"] > 0 and footprint["idle_cpu_percent"] >= 0

    assert results["load_before"]["cpus"] >= 1 and results["load_after"]["loadavg_1m"] >= 0
    out = capsys.readouterr().out
    headings = ("recovery, 8 workers", "recovery in place, 8 workers", "plain bulk client (the limit)", "resident jobs",
                "API requests for one job")
    for heading in headings:
        assert heading in out, out
