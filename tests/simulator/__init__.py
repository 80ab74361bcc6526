"""Tests of the provider simulator (infra/simulator)."""
