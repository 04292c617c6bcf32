"""Training health and progress: from MindSpore's step times to ``status.progress``.

How progress flows (only worker 0 reports: in data-parallel training every rank steps together,
and a hang anywhere stops worker 0 too)::

    MindSpore in worker 0            PERF_DUMP_* env (perf.py reads it) and/or ProgressCallback (callback.py)
      -> files in the emptyDir RUN_DIR shared by the pod's containers
      -> the reporter sidecar (reporter.py, container REPORTER_CONTAINER, built by sidecar.py)
      -> the pod annotation PROGRESS_ANNOTATION (JSON)
      -> the operator, which watches the pods: read_progress / stall_check (status.py)
         -> status.progress, metrics, the Stalled condition

The reporter may patch only its own pod (rbac.py).  Everything here except reporter.py and
callback.py is pure; this package imports neither ``kubernetes`` nor ``mindspore`` at the top.
"""

from __future__ import annotations

PROGRESS_ANNOTATION = "mindspore.gitee.com/progress"
RUN_DIR = "/var/run/msjob"
PERF_DIR = RUN_DIR + "/perf"
PROGRESS_FILE = RUN_DIR + "/progress.json"
REPORTER_CONTAINER = "msjob-reporter"
VOLUME_NAME = "msjob-run"
