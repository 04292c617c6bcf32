"""The phases of a reconcile pass, in the order they run (see ``reconcile.plan``)."""
