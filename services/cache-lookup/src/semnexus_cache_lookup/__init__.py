"""cache-lookup: SemNexus."""
