"""pmp-export-onnx: a checkpoint's per-frame image path -> one ONNX graph (docs/deployment.md).

    pmp-export-onnx models/pmp_default.safetensors pmp_default.onnx [--height 480 --width 640] [--opset 18]

The graph (ImagePathGraph) takes the preprocessed image at a static size (the checkpoint's inference size
unless --height/--width say otherwise) and the text features of the current prompts, with the number of
classes, synonyms and prompt tokens as dynamic axes. Exported with torch.export (torch.onnx.export,
dynamo=True); weights go to OUT.onnx.data beside the graph past the exporter's 1.5 GB threshold (protobuf's
limit is 2 GB).

Parts that do not trace as written, and what the graph runs instead (checked equal by
test/deploy/test_export_equivalents.py and test_onnx_parity.py):
- crop classification's crop_images reads the crop windows on the host and slices by them; while exporting,
  crop_ensemble uses crop_images_by_resampling (the same windows as matrix products).
- classification_logits' synonym max takes Python ints (num_templates); the graph passes the same layout as
  a bool membership tensor, the class_synonyms input.

onnxscript's graph optimiser (torch.onnx.export's optimize=True) is not used: its "x + 0 -> x" rewrite
matches any constant within 1e-8 of zero, so it removed the +1e-8 of mask pooling's division and empty
masks gave NaN. Constant folding alone is applied; ONNX Runtime optimises the graph when it loads it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxscript.optimizer
import torch

from pmp_ros.deploy import metadata
from pmp_ros.deploy.graph import ImagePathGraph, input_names, output_names, text_tensors
from pmp_ros.model.config import ModelConfig
from pmp_ros.model.segmenter import load_segmenter

# The opset torch.onnx's exporter writes; onnx's version converter cannot take this graph lower (it has no
# Pad adapter below 18). For TensorRT this means TensorRT 10 (docs/deployment.md).
DEFAULT_OPSET = 18
# Example text for tracing: two classes, one with two synonyms, so every dynamic axis is > 1 (torch.export
# specialises axes of size 1).
EXAMPLE_CLASSES = ("object", "thing, stuff")
EXAMPLE_PROMPTS = ("object",)


class ExportError(RuntimeError):
    """The graph could not be written as asked (the message says why)."""


@dataclass(frozen=True)
class ExportResult:
    """path: the .onnx file; data_path: its external weights file, or None when the weights are inside;
    input_size: (H, W); contents: what the graph holds, in words; outputs: the graph's output names;
    max_abs_difference: per output, ONNX Runtime (CPU) against PyTorch on the tracing example (a random
    image); seconds: export time."""

    path: Path
    data_path: Path | None
    input_size: tuple[int, int]
    contents: str
    outputs: tuple[str, ...]
    max_abs_difference: dict[str, float]
    seconds: float


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    size: tuple[int, int] | None = None,
    opset: int = DEFAULT_OPSET,
    external_data: bool = False,
) -> ExportResult:
    """Export the checkpoint's image path to `out`; size (H, W), None = the checkpoint's inference size.

    external_data: weights in OUT.onnx.data even when they fit in the graph file (they always go there past
    the exporter's 1.5 GB threshold, under protobuf's 2 GB limit). Raises ExportError when the graph cannot
    be written at `opset`.
    """
    start = time.perf_counter()
    checkpoint, out = Path(checkpoint), Path(out)
    segmenter, cfg = load_segmenter(checkpoint, "cpu")
    size = tuple(size or cfg.inference.size)
    pmp = cfg.decoder.pmp
    text = segmenter.encode_text(list(EXAMPLE_CLASSES), list(EXAMPLE_PROMPTS))
    names = input_names(pmp)
    inputs = {"images": torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)), **text_tensors(text, pmp)}
    with torch.no_grad():
        reference = segmenter(inputs["images"], text)
    outputs = output_names(reference)
    with warnings.catch_warnings():
        # Each dynamic axis shared by two inputs is reported as an unused name; the graph names it once.
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        program = torch.onnx.export(
            ImagePathGraph(segmenter, outputs),
            tuple(inputs[name] for name in names),
            input_names=list(names),
            output_names=list(outputs),
            dynamic_shapes=_dynamic_shapes(pmp),
            opset_version=opset,
            dynamo=True,
            optimize=False,
            verbose=False,
        )
    written_opset = program.model.opset_imports.get("", None)
    if written_opset != opset:
        raise ExportError(f"the exporter could not write opset {opset} (it wrote {written_opset}); use --opset 18+")
    onnxscript.optimizer.fold_constants(program.model)
    onnxscript.optimizer.remove_unused_nodes(program.model)
    program.model.metadata_props.update(_metadata(checkpoint, size, pmp))
    out.parent.mkdir(parents=True, exist_ok=True)
    data_path = out.with_name(out.name + ".data")
    data_path.unlink(missing_ok=True)  # a previous export's weights, which this graph would not use
    program.save(out, external_data=external_data)
    differences = _compare_with_onnxruntime(out, {name: inputs[name] for name in names}, reference, outputs)
    return ExportResult(
        out,
        data_path if data_path.exists() else None,
        size,
        _contents(cfg),
        outputs,
        differences,
        time.perf_counter() - start,
    )


def _dynamic_shapes(pmp: bool) -> dict[str, dict[int, torch.export.Dim] | None]:
    """Per forward argument of ImagePathGraph: its dynamic axes (the image is static)."""
    classes, synonyms = torch.export.Dim("classes", min=1), torch.export.Dim("synonyms", min=1)
    shapes = {
        "images": None,
        "class_embeddings": {0: synonyms},
        "class_synonyms": {0: classes, 1: synonyms},
        "seen_mask": {0: classes},
    }
    if pmp:
        tokens = torch.export.Dim("prompt_tokens", min=1)
        shapes |= {"prompt_tokens": {1: tokens}, "prompt_padding": {1: tokens}}
    return shapes


def _metadata(checkpoint: Path, size: tuple[int, int], pmp: bool) -> dict[str, str]:
    return {
        metadata.CHECKPOINT_SHA256: metadata.file_sha256(checkpoint),
        metadata.CHECKPOINT_NAME: checkpoint.name,
        metadata.INPUT_SIZE: metadata.format_size(size),
        metadata.PMP: str(pmp).lower(),
    }


def _compare_with_onnxruntime(
    path: Path, inputs: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], outputs: tuple[str, ...]
) -> dict[str, float]:
    """Max |ONNX Runtime - PyTorch| per output on the tracing example, CPU execution provider."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    produced = session.run(list(outputs), {name: tensor.numpy() for name, tensor in inputs.items()})
    return {
        name: float(np.abs(value - reference[name].numpy()).max(initial=0.0)) for name, value in zip(outputs, produced)
    }


def _contents(cfg: ModelConfig) -> str:
    """What the graph holds, in words: tower, pixel decoder, decoder, classifier."""
    return (
        f"CLIP {cfg.clip.model_name} image tower, {cfg.pixel_decoder.name} pixel decoder, "
        f"{cfg.decoder.num_layers}-layer decoder{' with PMP' if cfg.decoder.pmp else ''}, "
        f"{cfg.ensemble.out_vocabulary} classification"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pmp-export-onnx",
        description="Export a checkpoint's per-frame image path to one ONNX graph (text stays in PyTorch).",
    )
    parser.add_argument("model", type=Path, help="pmp_ros checkpoint (.safetensors)")
    parser.add_argument("out", type=Path, help="ONNX file to write")
    parser.add_argument("--height", type=int, help="input height (default: the checkpoint's inference size)")
    parser.add_argument("--width", type=int, help="input width (default: the checkpoint's inference size)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    args = parser.parse_args(argv)
    if (args.height is None) != (args.width is None):
        parser.error("give both --height and --width, or neither")
    # The constant folder logs a warning for every multi-output op it leaves alone.
    logging.getLogger("onnxscript").setLevel(logging.ERROR)
    size = (args.height, args.width) if args.height else None
    try:
        result = export_onnx(args.model, args.out, size, args.opset)
    except ExportError as error:
        print(f"pmp-export-onnx: {error}", file=sys.stderr)
        return 1
    weights = f", weights in {result.data_path}" if result.data_path else ""
    print(f"wrote {result.path} ({result.input_size[0]}x{result.input_size[1]}{weights}) in {result.seconds:.0f} s")
    print(f"graph: {result.contents}; outputs: {', '.join(result.outputs)}")
    print(
        "ONNX Runtime vs PyTorch on a random image, max |difference|: "
        + ", ".join(f"{name} {value:.2e}" for name, value in result.max_abs_difference.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
