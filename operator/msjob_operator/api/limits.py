"""Bounds and defaults of the MSJob API (the CRD schema, CEL rules and the operator share them)."""

# Longest job name whose derived names fit Kubernetes limits: the pod hostname
# "<name>-scheduler-0" / "<name>-worker-<5 digits>" must be a 63-character DNS label.
MAX_NAME_LENGTH = 50
MAX_REPLICAS = 99999
# The longest duration any field admits: every deadline, timeout and TTL stays within what a
# datetime can add to today (and within what a person could mean).
MAX_SECONDS = 10 * 365 * 24 * 3600
MAX_CLUSTER_TIMEOUT_SECONDS = 7 * 24 * 3600  # MS_TOPO_TIMEOUT: forming a cluster never takes a week
MAX_COUNT = 2**31 - 1  # counts are int32 in Kubernetes' own APIs
DEFAULT_UNCOUNTED_RESTART_LIMIT = 10
DEFAULT_SCHEDULER_PORT = 2222
DEFAULT_BACKOFF_LIMIT = 3
# A failure rule's onOutput pattern: RE2 matching is linear in pattern x text, so a bound keeps it cheap.
MAX_OUTPUT_PATTERN_LENGTH = 256
