"""provider-worker: SemNexus."""
