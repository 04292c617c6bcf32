"""Training health and progress, the operator's side: from worker 0's annotation to ``status.progress``.

What runs in the pods (the reporter sidecar, ``ProgressCallback``, the step-time reader and the
progress dict with its helpers) is the standard-library package ``msjob_runtime``; see
``msjob_runtime.progress`` for how progress flows.  Here: the pod parts the operator adds to
worker 0 (sidecar.py: the reporter container ``REPORTER_CONTAINER``, the emptyDir ``VOLUME_NAME``
and env), the reporter's RBAC (rbac.py: it may patch only its own pod) and the stall check
(status.py).  All pure; nothing here imports ``kubernetes`` or ``mindspore``.
"""

from __future__ import annotations

REPORTER_CONTAINER = "msjob-reporter"
VOLUME_NAME = "msjob-run"
