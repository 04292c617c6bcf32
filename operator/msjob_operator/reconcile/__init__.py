"""Pure reconcile logic: (MSJob, observed children, now) -> a Plan of actions and one status."""
