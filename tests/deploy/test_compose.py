"""docker-compose.yml is a valid Compose file that wires the pipeline together.

It validates against the Compose specification's JSON schema (the copy
check-jsonschema ships), and holds what a schema cannot: every service talks
to the compose Kafka, starts after the topics exist, builds from a Dockerfile
that exists, reads only settings its service has, and gets provider keys from
the environment rather than from the file.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock
import pytest
import yaml

from semnexus_provider_worker.config import load_providers
from tests.deploy.settings_fields import SETTINGS, unknown_variables

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["cache-lookup", "router", "provider-worker", "cost-ledger"]
DOCKERFILES = sorted([*ROOT.glob("services/*/Dockerfile"), ROOT / "infra/simulator/Dockerfile"])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose reads it (anchors and merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return loaded


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    """The Compose specification JSON schema vendored in check-jsonschema."""
    # Read as package data, not imported: check_jsonschema's CLI module does not
    # import with the locked click, and only the schema file is needed here.
    path = distribution("check-jsonschema").locate_file(
        "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
    )
    schema: dict[str, Any] = json.loads(Path(str(path)).read_text("utf-8"))
    return schema


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever form the file uses."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def test_valid_against_the_compose_specification(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    """The file has no error against the Compose specification schema."""
    validator = jsonschema.Draft202012Validator(compose_schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_schema_rejects_a_misspelt_key(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    """The schema check is not vacuous: an unknown service key is an error."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["router"]["depend_on"] = ["kafka"]
    assert not jsonschema.Draft202012Validator(compose_schema).is_valid(broken)


def test_every_service_points_at_the_compose_kafka(compose: dict[str, Any]) -> None:
    """Every SemNexus container bootstraps from kafka:9092, which Kafka advertises."""
    kafka_env = env_of(compose["services"]["kafka"])
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, no ZooKeeper"
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    for name in [*SERVICES, "topics-init"]:
        assert env_of(compose["services"][name])["SEMNEXUS_KAFKA__BOOTSTRAP"] == "kafka:9092"


def test_builds_use_existing_dockerfiles_and_cover_them_all(compose: dict[str, Any]) -> None:
    """Every build names a Dockerfile in the repo and every Dockerfile has a service."""
    used = set()
    for name, service in compose["services"].items():
        if "build" in service:
            path = ROOT / service["build"]["context"] / service["build"]["dockerfile"]
            assert path.is_file(), f"{name}: {path} does not exist"
            assert service.get("image"), f"{name}: a built service names its image"
            used.add(path.resolve())
    assert {p.resolve() for p in DOCKERFILES} <= used


def test_services_start_after_kafka_and_the_topics(compose: dict[str, Any]) -> None:
    """Services wait for a healthy Kafka and a topics-init that exited successfully."""
    init = compose["services"]["topics-init"]
    assert init["entrypoint"] == ["semnexus", "topics", "apply"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["topics-init"]["condition"] == "service_completed_successfully"
    milvus = compose["services"]["cache-lookup"]["depends_on"]["milvus"]
    assert milvus["condition"] == "service_healthy"


def test_infrastructure_has_healthchecks(compose: dict[str, Any]) -> None:
    """Kafka, etcd, MinIO, Milvus, the ledger and the simulator declare healthchecks."""
    for name in ["kafka", "etcd", "minio", "milvus", "cost-ledger", "simulator"]:
        assert compose["services"][name]["healthcheck"]["test"], name


def test_milvus_standalone_shape(compose: dict[str, Any]) -> None:
    """Milvus runs standalone on its own etcd and MinIO; cache-lookup uses it."""
    milvus = compose["services"]["milvus"]
    assert milvus["command"] == ["milvus", "run", "standalone"]
    assert env_of(milvus) == {"ETCD_ENDPOINTS": "etcd:2379", "MINIO_ADDRESS": "minio:9000"}
    cache_env = env_of(compose["services"]["cache-lookup"])
    assert cache_env["SEMNEXUS_CACHE__VECTOR_URI"] == "http://milvus:19530"


def test_jaeger_v2_receives_otlp(compose: dict[str, Any]) -> None:
    """Jaeger 2.x publishes OTLP 4317/4318 and the UI, and services export to it."""
    jaeger = compose["services"]["jaeger"]
    assert re.match(r"jaegertracing/jaeger:2\.", jaeger["image"])
    assert {"4317:4317", "4318:4318", "16686:16686"} <= set(jaeger["ports"])
    for name in SERVICES:
        endpoint = env_of(compose["services"][name])["SEMNEXUS_TELEMETRY__OTLP_ENDPOINT"]
        assert endpoint == "http://jaeger:4318"


def test_cache_lookup_can_scale(compose: dict[str, Any]) -> None:
    """cache-lookup has no fixed container name or host port, so --scale works."""
    service = compose["services"]["cache-lookup"]
    assert "container_name" not in service
    assert "ports" not in service


def test_simulator_only_under_its_profile(compose: dict[str, Any]) -> None:
    """The provider simulator starts only with --profile simulator."""
    profiled = {n for n, s in compose["services"].items() if s.get("profiles")}
    assert profiled == {"simulator"}
    assert compose["services"]["simulator"]["profiles"] == ["simulator"]


@pytest.mark.parametrize("name", [*SERVICES, "topics-init"])
def test_environment_names_reach_real_settings(compose: dict[str, Any], name: str) -> None:
    """Every SEMNEXUS_ variable given to a service is a field of that service's settings."""
    names = env_of(compose["services"][name])
    assert unknown_variables(SETTINGS[name], names) == []


def test_provider_keys_come_from_the_environment(compose: dict[str, Any]) -> None:
    """API keys are interpolated from the user's environment, never written in the file."""
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if key.endswith(("_API_KEY", "_TOKEN", "_PASSWORD")):
                assert re.fullmatch(r"\$\{[A-Z_]+(:-)?\}", value), f"{name}: {key}={value}"


def test_compose_providers_match_the_repository_file(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The worker's compose providers file loads and declares what infra/providers.yaml does."""
    content = compose["configs"]["providers"]["content"]
    target = tmp_path / "providers.yaml"
    target.write_text(content, encoding="utf-8")
    loaded = load_providers(target, {})
    repo = yaml.safe_load((ROOT / "infra/providers.yaml").read_text("utf-8"))["providers"]
    assert set(loaded) == set(repo)
    for name, provider in loaded.items():
        assert provider.settings.kind == repo[name]["kind"]
        assert provider.settings.api_key_env == repo[name]["api_key_env"]
        assert provider.settings.base_url == f"http://simulator:8900/{name}"
    worker_env = env_of(compose["services"]["provider-worker"])
    mount = compose["services"]["provider-worker"]["configs"][0]
    assert mount == {"source": "providers", "target": worker_env["SEMNEXUS_PROVIDERS_FILE"]}
