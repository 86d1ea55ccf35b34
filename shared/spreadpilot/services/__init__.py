"""Use cases: each takes its ports in its constructor, so both adapter sets run it."""
