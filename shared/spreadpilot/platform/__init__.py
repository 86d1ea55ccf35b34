"""Cross-cutting runtime pieces: settings, logging, topology, events, wiring."""
