"""The platform contract suite's cases (one per adapter), the local fakes of each API, and
a recording publish context."""
