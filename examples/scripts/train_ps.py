"""An MSJob with parameter servers (Scheduler + PS + Worker): the starting point for PS jobs.

Every member runs this command. The operator sets ``MS_ROLE=MS_PSERVER`` and
``MS_SERVER_NUM`` (the number of PS replicas) besides the variables described in
``train_data_parallel.py``; ``mindspore.communication.init()`` then registers each parameter
server with the scheduler under its own role (the scheduler's log says
``The new node: ...(role: MS_PSERVER) ... is registered successfully``).

MindSpore's parameter-server training API (``set_param_ps`` and friends) exists up to
MindSpore 2.5 on Ascend and GPU; MindSpore 2.10 still forms clusters with PS members but has no
PS training any more. So with 2.10 this script shows the cluster forming with every role: the
parameter server joins and is done, the workers train the data-parallel linear regression of
``train_data_parallel.py`` (same options, e.g. ``--epochs``, ``--ckpt-dir``). On MindSpore <= 2.5,
put your PS training after ``init()`` in the worker and server branches.

Keep this file next to ``train_data_parallel.py`` (both go into the same ConfigMap or image).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_data_parallel import main  # noqa: E402  (handles MS_SCHED, MS_PSERVER and MS_WORKER)

if __name__ == "__main__":
    sys.exit(main())
