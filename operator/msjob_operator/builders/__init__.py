"""Pure functions that turn an MSJob into the objects it owns (plain dicts, no API calls)."""
