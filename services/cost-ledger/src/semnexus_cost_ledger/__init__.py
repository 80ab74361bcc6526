"""cost-ledger: SemNexus."""
