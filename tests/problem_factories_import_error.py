"""A module whose import fails, for the registry's error handling."""

raise RuntimeError("this module cannot be imported")
