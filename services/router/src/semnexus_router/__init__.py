"""router: SemNexus."""
