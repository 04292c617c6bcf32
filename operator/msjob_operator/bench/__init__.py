"""``python -m msjob_operator.bench``: the operator's benchmark, which lives in the local platform.

The benchmark starts a local cluster and the operator, so it belongs to ``msjob_localcluster``
(``python -m msjob_localcluster.bench``); this name is kept because it is the documented command. It
runs the platform's module in a new process instead of importing it: the operator package never
imports the local platform (an import contract checks it).
"""
