"""msjob-operator: a Kubernetes operator for distributed MindSpore training jobs."""

__version__ = "0.1.0"
