"""Local fakes of third-party services (real HTTP servers on 127.0.0.1)."""
