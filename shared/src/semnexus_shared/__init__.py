"""SemNexus shared library: settings, contracts, serde, the stream runner, telemetry."""
