"""Reports read only the results store, so they can be rebuilt at any time."""
