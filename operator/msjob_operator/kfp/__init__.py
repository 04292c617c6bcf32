"""Kubeflow Pipelines integration: an MSJob as a pipeline step.

- ``msjob_operator.kfp.launcher``: what the step runs (plain Python on ``MSJobClient``; no kfp needed at run time);
- ``msjob_operator.kfp.component``: the KFP v2 container component (``msjob_op``, ``make_msjob_op(image)``);
  importing it needs ``kfp`` 2.x (``pip install 'msjob-operator[kfp]'``).

Nothing is imported here, so the launcher runs in an image without kfp.
"""
