"""Layer 0: schema, registry, device resolution, atomic I/O, cache, seeds, progress."""
