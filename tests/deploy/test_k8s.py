"""infra/k8s is a deployable kustomize base whose autoscaling respects Kafka.

Every manifest validates offline against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict) and every ScaledObject against the KEDA schema in
infra/schemas. Beyond schemas: no replica ceiling above the partition count of
the topic a deployment consumes (read from the one topic declaration), KEDA
watches the consumer group the service really joins, provider keys only by
Secret reference, resource requests everywhere, and ConfigMaps that name real
settings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock
import kubernetes_validate  # type: ignore[import-untyped]  # ships no py.typed
import pytest
import yaml

from semnexus_provider_worker.config import load_providers
from semnexus_router.config import load_catalog
from semnexus_shared.config import TopicSettings
from semnexus_shared.topics import declared_topics
from tests.deploy.settings_fields import SETTINGS, unknown_variables

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra/k8s"
KUBERNETES_VERSIONS = ["1.29.0", "1.31.0", "1.33.0"]
EXAMPLE_SECRET = K8S / "secret-provider-keys.example.yaml"
KEYS_SECRET = "semnexus-provider-keys"
# Which declared topics each service consumes (DESIGN.md, "The parts"; the
# compacted views, provider.health and budget, are read whole by every replica
# and do not bound scaling).
CONSUMES = {
    "cache-lookup": {"requests", "cache.fill", "cache.invalidate"},
    "router": {"cache.missed"},
    "cost-ledger": {"usage"},
}
PARTITIONS = {spec.name: spec.partitions for spec in declared_topics(TopicSettings())}


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of one manifest file."""
    return [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]


def kustomization() -> dict[str, Any]:
    """infra/k8s/kustomization.yaml."""
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text("utf-8"))
    return loaded


def manifests() -> list[dict[str, Any]]:
    """Every object the kustomization applies, in file order."""
    return [d for f in kustomization()["resources"] for d in load_documents(K8S / f)]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    """The applied objects of one kind, by name."""
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def config_of(deployment: dict[str, Any]) -> dict[str, str]:
    """The env a Deployment's container gets from its ConfigMap (envFrom)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    (ref,) = [e["configMapRef"]["name"] for e in container.get("envFrom", [])]
    data: dict[str, str] = of_kind("ConfigMap")[ref]["data"]
    return data


def component(obj: dict[str, Any]) -> str:
    """The service an object belongs to (its app.kubernetes.io/component label)."""
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def kafka_triggers(scaled: dict[str, Any]) -> list[dict[str, str]]:
    """The metadata of a ScaledObject's kafka triggers."""
    return [t["metadata"] for t in scaled["spec"]["triggers"] if t["type"] == "kafka"]


def declared_name(topic: str, prefix: str) -> str:
    """A full topic name without its pipeline prefix."""
    assert topic.startswith(prefix)
    return topic.removeprefix(prefix)


@pytest.fixture(scope="module")
def keda_schema() -> dict[str, Any]:
    """The KEDA ScaledObject schema subset in infra/schemas."""
    schema: dict[str, Any] = json.loads(
        (ROOT / "infra/schemas/keda-scaledobject.json").read_text("utf-8")
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    """kubectl apply -k applies every manifest file here except the example Secret."""
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {EXAMPLE_SECRET.name}
    assert kustomization()["namespace"] == "semnexus"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_valid_against_kubernetes_schemas(version: str) -> None:
    """Every built-in object (and the example Secret) passes strict schema validation."""
    documents = [*manifests(), *load_documents(EXAMPLE_SECRET)]
    checked = 0
    for document in documents:
        if document["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(document, version, strict=True)
        checked += 1
    assert checked >= 20


def test_kubernetes_validation_is_not_vacuous() -> None:
    """A misspelt field in a Deployment is rejected by the strict validation."""
    deployment = json.loads(json.dumps(next(iter(of_kind("Deployment").values()))))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_scaled_objects_valid_against_keda_schema(keda_schema: dict[str, Any]) -> None:
    """Every ScaledObject passes the KEDA schema."""
    validator = jsonschema.Draft202012Validator(keda_schema)
    scaled = of_kind("ScaledObject")
    assert scaled
    for name, document in scaled.items():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == [], name


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "maxReplicas"), 12),
        (("spec", "triggers", 0, "metadata", "lagThreshold"), 100),
        (("spec", "triggers", 0, "metadata", "offsetResetPolicy"), "newest"),
    ],
)
def test_keda_schema_rejects_mistakes(
    keda_schema: dict[str, Any], path: tuple[Any, ...], value: object
) -> None:
    """A misspelt field, a non-string trigger value or a bad enum fails the KEDA schema."""
    document = json.loads(json.dumps(of_kind("ScaledObject")["router"]))
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert not jsonschema.Draft202012Validator(keda_schema).is_valid(document)


def test_max_replicas_never_above_partitions() -> None:
    """No ScaledObject may add a replica that owns no partition of any topic it scales on."""
    for name, scaled in of_kind("ScaledObject").items():
        prefix = config_of(of_kind("Deployment")[name]).get("SEMNEXUS_TOPICS__PREFIX", "")
        topics = [declared_name(t["topic"], prefix) for t in kafka_triggers(scaled)]
        assert topics, f"{name} scales on no Kafka lag"
        ceiling = max(PARTITIONS[t] for t in topics)
        assert scaled["spec"]["maxReplicaCount"] <= ceiling, name
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_kafka_triggers_watch_the_group_the_service_joins() -> None:
    """Each kafka trigger names the Deployment's service name (= group) and its bootstrap."""
    deployments = of_kind("Deployment")
    for name, scaled in of_kind("ScaledObject").items():
        target = scaled["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        config = config_of(deployments[name])
        for trigger in kafka_triggers(scaled):
            assert trigger["consumerGroup"] == config["SEMNEXUS_SERVICE_NAME"]
            assert trigger["bootstrapServers"] == config["SEMNEXUS_KAFKA__BOOTSTRAP"]


def test_each_stage_scales_on_the_topics_it_consumes() -> None:
    """cache-lookup on requests, router on cache.missed, each provider's worker on its topic."""
    scaled = of_kind("ScaledObject")
    topics = {n: {t["topic"] for t in kafka_triggers(s)} for n, s in scaled.items()}
    assert "requests" in topics["cache-lookup"]
    assert topics["cache-lookup"] <= CONSUMES["cache-lookup"]
    assert topics["router"] == CONSUMES["router"]
    deployments = of_kind("Deployment")
    for provider in TopicSettings().providers:
        name = f"provider-worker-{provider}"
        assert topics[name] == {f"provider.{provider}"}
        assert json.loads(config_of(deployments[name])["SEMNEXUS_SERVE"]) == [provider]


def test_provider_workers_also_scale_on_p95_latency() -> None:
    """Each provider worker has a Prometheus trigger on p95 provider latency at 200 ms."""
    for provider in TopicSettings().providers:
        scaled = of_kind("ScaledObject")[f"provider-worker-{provider}"]
        (prom,) = [t["metadata"] for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
        assert float(prom["threshold"]) == pytest.approx(0.2)
        query = re.sub(r"\s+", "", prom["query"])
        assert query.startswith("histogram_quantile(0.95,")
        assert "semnexus_provider_latency_seconds_bucket" in query
        assert f'provider="{provider}"' in query


def test_cost_ledger_is_one_replica_with_durable_state() -> None:
    """The ledger runs once (local SQLite), on a volume claim, with HTTP probes on /healthz."""
    assert "cost-ledger" not in of_kind("ScaledObject")
    ledger = of_kind("Deployment")["cost-ledger"]
    assert ledger["spec"]["replicas"] == 1
    assert ledger["spec"]["strategy"]["type"] == "Recreate"
    pod = ledger["spec"]["template"]["spec"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["cost-ledger-data"]
    assert "cost-ledger-data" in of_kind("PersistentVolumeClaim")
    container = pod["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"name": "http", "containerPort": 8700} in container["ports"]
    assert config_of(ledger)["SEMNEXUS_HTTP__HOST"] == "0.0.0.0"


def test_every_deployment_requests_resources() -> None:
    """Every container requests CPU and memory and caps its memory."""
    for name, deployment in of_kind("Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name


def test_every_deployment_has_a_disruption_budget_and_runs_non_root() -> None:
    """A PodDisruptionBudget selects each Deployment, whose pods run as non-root."""
    budgets = of_kind("PodDisruptionBudget")
    for name, deployment in of_kind("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(
            b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets.values()
        ), name
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]


def test_secrets_only_by_reference() -> None:
    """No Secret is applied; key variables come from secretKeyRef; no value looks like a key."""
    assert of_kind("Secret") == {}
    for name, deployment in of_kind("Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                assert "value" not in env or not env["name"].endswith("_KEY"), name
                if env["name"].endswith("_API_KEY"):
                    assert env["valueFrom"]["secretKeyRef"]["name"] == KEYS_SECRET
    text = "\n".join((K8S / f).read_text("utf-8") for f in kustomization()["resources"])
    assert not re.search(r"\b(sk-[A-Za-z0-9_-]{16,}|sk-ant-[A-Za-z0-9_-]{16,})", text)
    example = load_documents(EXAMPLE_SECRET)[0]
    assert set(example["stringData"].values()) == {"REPLACE_ME"}


def test_each_worker_gets_the_key_its_provider_names(tmp_path: Path) -> None:
    """A worker's secretKeyRef is the api_key_env its provider declares in the providers file."""
    path = tmp_path / "providers.yaml"
    path.write_text(of_kind("ConfigMap")["semnexus-providers"]["data"]["providers.yaml"], "utf-8")
    providers = load_providers(path, {})
    for provider in TopicSettings().providers:
        deployment = of_kind("Deployment")[f"provider-worker-{provider}"]
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in env}
        key_variable = providers[provider].settings.api_key_env
        assert refs == {key_variable: key_variable}


def test_cluster_providers_file_matches_the_repository_file(tmp_path: Path) -> None:
    """The ConfigMap's providers file loads in router and worker and differs only in URLs."""
    path = tmp_path / "providers.yaml"
    text = of_kind("ConfigMap")["semnexus-providers"]["data"]["providers.yaml"]
    path.write_text(text, "utf-8")
    cluster = load_catalog(path)
    repo = load_catalog(ROOT / "infra/providers.yaml")
    assert cluster.aliases == repo.aliases
    assert cluster.providers == repo.providers
    ours = yaml.safe_load(text)["providers"]
    theirs = yaml.safe_load((ROOT / "infra/providers.yaml").read_text("utf-8"))["providers"]
    for name in theirs:
        ours[name].pop("base_url")
        theirs[name].pop("base_url")
    assert ours == theirs
    assert "127.0.0.1" not in text


SERVICE_CONFIGMAPS = sorted(
    name
    for name, document in of_kind("ConfigMap").items()
    if "app.kubernetes.io/component" in document["metadata"]["labels"]
)


@pytest.mark.parametrize("name", SERVICE_CONFIGMAPS)
def test_configmap_names_reach_real_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ConfigMap variable is a field of its service's settings, which accept the values."""
    configmap = of_kind("ConfigMap")[name]
    settings_class = SETTINGS[component(configmap)]
    assert unknown_variables(settings_class, configmap["data"]) == []
    for key, value in configmap["data"].items():
        monkeypatch.setenv(key, value)
    settings = settings_class()
    assert settings.service_name == name
    assert settings.telemetry.metrics_host == "0.0.0.0"


def test_services_expose_what_listens() -> None:
    """Each Deployment has a Service for its metrics port; the ledger's also serves HTTP."""
    services = of_kind("Service")
    for name in of_kind("Deployment"):
        ports = {p["name"]: p["port"] for p in services[name]["spec"]["ports"]}
        assert ports.get("metrics") == 9464, name
    assert services["cost-ledger"]["spec"]["ports"][0] == {
        "name": "http",
        "port": 8700,
        "targetPort": "http",
    }
