"""The operator's benchmark: `python -m msjob_localcluster.bench --help`. One module per scenario.

Numbers, never assertions: speed is measured, not tested.
"""

from .run import Options, main, run_scenarios  # noqa: F401
from .sizes import HEADER, _row, run_sizes  # noqa: F401  (the big-jobs scenario, as before the split)
