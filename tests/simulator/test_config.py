"""Configuration files and latency sampling."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from semnexus_simulator import ConfigError, LatencyConfig, ProviderConfig, Wire, load_config
from semnexus_simulator.clock import SystemClock
from semnexus_simulator.state import ProviderState

YAML = """
seed: 3
providers:
  primary:
    wire: openai
    auth: keys
    api_keys: [sk-one]
    latency: {kind: lognormal, median_ms: 200, p99_ms: 1000, inter_chunk_ms: 5}
    rate_limit: {requests: 10, tokens: 1000, window_s: 1}
    faults:
      server_error: {rate: 0.1, status: 502}
"""


def test_yaml_config_loads(tmp_path: Path) -> None:
    """A YAML file becomes a validated config with secrets kept secret."""
    path = tmp_path / "sim.yaml"
    path.write_text(YAML)
    config = load_config(path)
    provider = config.providers["primary"]
    assert config.seed == 3
    assert provider.wire is Wire.OPENAI
    assert provider.api_keys[0].get_secret_value() == "sk-one"
    assert "sk-one" not in repr(provider)
    assert provider.faults.server_error is not None
    assert provider.faults.server_error.status == 502


def test_json_config_loads(tmp_path: Path) -> None:
    """A JSON file with the same keys loads the same way."""
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"providers": {"claude": {"wire": "anthropic"}}}))
    assert load_config(path).providers["claude"].wire is Wire.ANTHROPIC


@pytest.mark.parametrize(
    "text",
    [
        "providers: {p: {wire: openai, typo: 1}}",
        "providers: {p: {wire: smoke-signals}}",
        "providers: {p: {wire: openai, auth: keys}}",
        "providers: {Bad/Name: {wire: openai}}",
        "providers: [unclosed",
    ],
)
def test_bad_config_is_a_config_error(tmp_path: Path, text: str) -> None:
    """Unknown keys, bad values, unsafe names and broken YAML raise ConfigError."""
    path = tmp_path / "sim.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist raises ConfigError."""
    with pytest.raises(ConfigError):
        load_config(tmp_path / "absent.yaml")


def test_lognormal_latency_matches_its_median_and_p99() -> None:
    """Lognormal samples have about the configured median and 99th percentile."""
    latency = LatencyConfig(kind="lognormal", median_ms=100, p99_ms=800)
    state = ProviderState("p", ProviderConfig(wire=Wire.OPENAI, latency=latency), SystemClock(), 1)
    samples = sorted(state.first_byte_delay_s() * 1000 for _ in range(20_000))
    assert 90 < statistics.median(samples) < 110
    assert 650 < samples[int(len(samples) * 0.99)] < 1000


def test_example_config_is_valid() -> None:
    """The example config shipped next to the package loads."""
    example = Path(__file__).parents[2] / "infra" / "simulator" / "simulator.example.yaml"
    assert set(load_config(example).providers) == {"openai", "anthropic", "llama"}
