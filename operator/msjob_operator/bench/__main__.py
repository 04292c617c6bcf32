import importlib.util
import os
import sys

if importlib.util.find_spec("msjob_localcluster") is None:
    sys.exit("the benchmark needs the local platform (msjob_localcluster): install msjob-operator from its "
             "source tree, e.g. `make setup`")
os.execv(sys.executable, [sys.executable, "-m", "msjob_localcluster.bench", *sys.argv[1:]])
