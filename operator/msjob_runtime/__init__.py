"""msjob_runtime: what runs inside MSJob training pods, on the image's own Python.

Standard library only (Python 3.8 or later), and it never imports ``msjob_operator``: the
operator depends on this package, not the other way round, so a training image needs nothing
but these files (``python -m msjob_runtime.install DIR`` copies them anywhere).

Modules:

* ``progress``: the progress dict and annotation shared with the operator, and its pure helpers;
* ``perf``: MindSpore's step-time files (``PERF_DUMP_*``);
* ``reporter``: the progress reporter sidecar, ``python -m msjob_runtime.reporter``;
* ``callback``: ``ProgressCallback``, the optional MindSpore callback (epoch and loss);
* ``agent``: the in-place restart agent, ``python -m msjob_runtime.agent -- command`` (or the file
  run as a script), with ``agent_protocol`` (the names and pure helpers the operator shares,
  docs/in-place-restart.md), ``agent_api`` (its watch and reports), ``agent_process`` (the
  process group) and ``agent_output`` (its console and the output kept for reports);
* ``ranktable_wait``: ``python -m msjob_runtime.ranktable_wait``, waits for Ascend's ``hccl.json``;
* ``kubeapi`` and ``kubeconfig``: a small Kubernetes API client (in-cluster, explicit or kubeconfig);
* ``install``: copies this package into a directory (an init container's emptyDir).
"""
