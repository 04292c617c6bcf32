"""The kopf layer: watches, caches, a work queue, and applying plans through an async client."""
