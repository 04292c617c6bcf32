"""YAML written for a real cluster runs unchanged on the local cluster's fake nodes: no toleration, no node
selector, accelerator limits and hostPath volumes, as a user would apply it to their GPU or NPU cluster."""

from __future__ import annotations

import pytest
import yaml

from .msjobs import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.cluster

REAL_CLUSTER_YAML = """\
apiVersion: mindspore.gitee.com/v1
kind: MSJob
metadata:
  name: {name}
spec:
  runPolicy:
    backoffLimit: 2
  msReplicaSpecs:
    Scheduler:
      replicas: 1
      template:
        spec:
          containers:
            - name: mindspore
              image: mindspore/mindspore:2.10.0
              command: ["python", "/workspace/train.py"]
              volumeMounts:
                - {{name: code, mountPath: /workspace}}
          volumes:
            - name: code
              hostPath: {{path: /data/code, type: Directory}}
    PS:
      replicas: 1
      template:
        spec:
          containers:
            - name: mindspore
              image: mindspore/mindspore:2.10.0
              command: ["python", "/workspace/train.py"]
              volumeMounts:
                - {{name: code, mountPath: /workspace}}
          volumes:
            - name: code
              hostPath: {{path: /data/code, type: Directory}}
    Worker:
      replicas: 2
      restartPolicy: ExitCode
      template:
        spec:
          containers:
            - name: mindspore
              image: mindspore/mindspore:2.10.0
              command: ["python", "/workspace/train.py", "--epochs", "10"]
              resources:
                limits: {{{resource}: {count}, cpu: "4", memory: 16Gi}}
              volumeMounts:
                - {{name: code, mountPath: /workspace}}
                - {{name: datasets, mountPath: /datasets, readOnly: true}}
                - {{name: checkpoints, mountPath: /ckpt}}
          volumes:
            - name: code
              hostPath: {{path: /data/code, type: Directory}}
            - name: datasets
              hostPath: {{path: /data/imagenet, type: Directory}}
            - name: checkpoints
              hostPath: {{path: /data/checkpoints, type: DirectoryOrCreate}}
"""


@pytest.mark.parametrize("resource, count", [("nvidia.com/gpu", 4), ("huawei.com/Ascend910", 8)])
def test_real_cluster_yaml_runs_unchanged_on_fake_nodes(jobs, core, resource, count):
    name = "real-" + resource.split("/")[0].split(".")[0]
    body = yaml.safe_load(REAL_CLUSTER_YAML.format(name=name, resource=resource, count=count))
    for replica in body["spec"]["msReplicaSpecs"].values():  # as written for a real cluster
        assert "tolerations" not in replica["template"]["spec"] and "nodeSelector" not in replica["template"]["spec"]
    jobs.custom.create_namespaced_custom_object(GROUP, VERSION, jobs.ns, PLURAL, body)  # as `kubectl apply` does

    pods = jobs.wait_pods(name, 4, timeout=90)
    jobs.wait_condition(name, "Running", timeout=60)
    assert jobs.get(name)["status"]["workers"] == "2/2"
    for pod in pods:
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.annotations.get("kwok.x-k8s.io/node") == "fake", (pod.metadata.name, node.metadata.name)
        assert not node.spec.taints, node.spec.taints
        assert pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses)
        assert [v.host_path.path for v in pod.spec.volumes if v.host_path][:1] == ["/data/code"]
    workers = [p for p in pods if "-worker-" in p.metadata.name]
    assert [p.spec.containers[0].resources.limits[resource] for p in workers] == [str(count)] * 2
