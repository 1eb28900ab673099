"""The ONNX Runtime backend: a Predictor whose image path is an exported graph (docs/deployment.md).

    predictor, model_cfg = load_onnx_predictor("models/pmp_default.safetensors", "pmp_default.onnx")
    predictor.set_prompts(["red star"])
    prediction = predictor.predict([rgb])[0]

It is model/inference.Predictor itself, built on OnnxImagePath instead of a PMPSegmenter: set_prompts,
predict, warmup, cfg, device, prompts, the preprocessing and the post-processing are the PyTorch backend's
own code. The checkpoint still provides the text tower (prompts are encoded once per instruction in
PyTorch) and must be the one the graph was exported from (checked by its SHA-256).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnxruntime
import torch
from torch import Tensor, nn

from pmp_ros.deploy import metadata
from pmp_ros.deploy.graph import IMAGE_INPUT, text_tensors
from pmp_ros.model.config import ModelConfig
from pmp_ros.model.inference import Predictor, resolve_device
from pmp_ros.model.segmenter import PMPSegmenter, TextFeatures, load_segmenter

# Best first; each is used when this onnxruntime build has it (onnxruntime-gpu has CUDA and TensorRT).
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = PREFERRED_PROVIDERS[:2]


def execution_providers(
    device: str = "auto", available: Sequence[str] | None = None, engine_cache: str | os.PathLike | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """ONNX Runtime providers with their options, best first, for InferenceSession(providers=...).

    device: "cpu" = the CPU provider only; "auto" = TensorRT and CUDA where this build has them, then CPU;
    "cuda[:N]" = the same on GPU N, and ValueError when the build has neither GPU provider.
    available: the build's providers (default onnxruntime.get_available_providers()).
    engine_cache: folder where the TensorRT provider keeps its built engines (building one takes minutes).
    """
    available = onnxruntime.get_available_providers() if available is None else list(available)
    if device == "cpu":
        return [("CPUExecutionProvider", {})]
    if device != "auto" and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda") and not any(name in available for name in GPU_PROVIDERS):
        raise ValueError(
            f"device {device!r}: this onnxruntime has no GPU provider (has {', '.join(available)}); "
            "install onnxruntime-gpu"
        )
    gpu = {"device_id": int(device.partition(":")[2] or 0)}
    options = {
        "TensorrtExecutionProvider": gpu
        | ({"trt_engine_cache_enable": True, "trt_engine_cache_path": str(engine_cache)} if engine_cache else {}),
        "CUDAExecutionProvider": gpu,
        "CPUExecutionProvider": {},
    }
    return [(name, options[name]) for name in PREFERRED_PROVIDERS if name in available]


class OnnxImagePath(nn.Module):
    """The segmenter inference API that Predictor drives, with the image path in ONNX Runtime.

    encode_text(class_names, prompts, templates) -> TextFeatures: the checkpoint's text tower (PyTorch).
    forward(images [B,3,H,W] float RGB in [0,1] at the graph's size, text) -> {"class_log_probs" [B,Q,C+1],
    "pred_masks" [B,Q,ceil(H/4),ceil(W/4)], and the graph's other outputs} on the images' device; one
    graph run per image (the graph's batch is 1).

    text_segmenter: a PMPSegmenter whose image modules may be released (only encode_text is used).
    session: an InferenceSession of the exported graph; input_size: its (H, W); pmp: it takes prompt tokens.
    """

    def __init__(
        self,
        text_segmenter: PMPSegmenter,
        session: onnxruntime.InferenceSession,
        input_size: tuple[int, int],
        pmp: bool,
    ):
        super().__init__()
        self.text_segmenter = text_segmenter
        self.session = session
        self.input_size = input_size
        self.pmp = pmp
        self.output_names = tuple(output.name for output in session.get_outputs())
        self._text_arrays: tuple[TextFeatures, dict] | None = None  # the last text and its graph inputs

    @property
    def providers(self) -> list[str]:
        """The execution providers the session uses, best first."""
        return self.session.get_providers()

    def encode_text(
        self,
        class_names: Sequence[str],
        prompts: Sequence[str] | Sequence[Sequence[str]] = (),
        templates: Sequence[str] | None = None,
    ) -> TextFeatures:
        return self.text_segmenter.encode_text(class_names, prompts, templates)

    def forward(self, images: Tensor, text: TextFeatures) -> dict[str, Tensor]:
        if tuple(images.shape[-2:]) != self.input_size:
            raise ValueError(
                f"the ONNX graph takes {metadata.format_size(self.input_size)} images, got "
                f"{metadata.format_size(tuple(images.shape[-2:]))}: export it again with --height/--width, or "
                "keep the inference size"
            )
        feeds = self._text_inputs(text)
        per_image = [
            self.session.run(list(self.output_names), {IMAGE_INPUT: image[None].float().cpu().numpy(), **feeds})
            for image in images
        ]
        return {
            name: torch.cat([torch.from_numpy(outputs[index]) for outputs in per_image]).to(images.device)
            for index, name in enumerate(self.output_names)
        }

    def _text_inputs(self, text: TextFeatures) -> dict:
        """The graph's text inputs as host arrays, converted once per TextFeatures (once per instruction)."""
        cached = self._text_arrays
        if cached is not None and cached[0] is text:
            return cached[1]
        arrays = {name: tensor.cpu().numpy() for name, tensor in text_tensors(text, self.pmp).items()}
        self._text_arrays = (text, arrays)
        return arrays


def load_onnx_predictor(
    checkpoint: str | os.PathLike,
    onnx_path: str | os.PathLike,
    device: str = "auto",
    threads: int = 0,
    profile_prefix: str | os.PathLike | None = None,
    **inference_overrides: Any,
) -> tuple[Predictor, ModelConfig]:
    """The ONNX Runtime twin of Predictor.from_checkpoint: (predictor, ModelConfig), the config the checkpoint's
    with the graph's input size as its inference size (the size was fixed at export).

    checkpoint: the pmp_ros checkpoint the graph was exported from (text tower, config); onnx_path: the
    graph (OUT.onnx.data beside it when the weights are external). device: "auto" | "cpu" | "cuda[:N]",
    for the execution providers (execution_providers) and for PyTorch's text encoding and post-processing.
    threads: ONNX Runtime's intra-op threads, 0 = its default (one per physical core).
    profile_prefix: record ONNX Runtime's profile (SessionOptions.enable_profiling) into a JSON file with this
    prefix; predictor.segmenter.session.end_profiling() writes it and returns its path.
    inference_overrides replace fields of the checkpoint's InferenceConfig; the size must stay the graph's.
    Raises ValueError when the graph was exported from another checkpoint or has no pmp_ros metadata.
    """
    onnx_path = Path(onnx_path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    providers = execution_providers(device, engine_cache=onnx_path.parent / "trt_engines")
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=providers)
    recorded = session.get_modelmeta().custom_metadata_map
    if metadata.CHECKPOINT_SHA256 not in recorded:
        raise ValueError(f"{onnx_path} has no pmp_ros metadata: export it with pmp-export-onnx")
    if metadata.file_sha256(checkpoint) != recorded[metadata.CHECKPOINT_SHA256]:
        raise ValueError(
            f"{onnx_path} was exported from another checkpoint ({recorded[metadata.CHECKPOINT_NAME]}), not "
            f"{checkpoint}: its text features would not match the graph"
        )
    input_size = metadata.parse_size(recorded[metadata.INPUT_SIZE])
    text_segmenter, model_cfg = load_segmenter(checkpoint, "cpu")  # Predictor moves what is kept to the device
    _release_image_modules(text_segmenter)
    image_path = OnnxImagePath(text_segmenter, session, input_size, recorded[metadata.PMP] == "true")
    # A graph exported with --height/--width runs at that size, not the checkpoint's: callers that fall back
    # to "the model's inference size" (the node's parameters left at 0) must get the graph's.
    model_cfg.inference = replace(model_cfg.inference, size=input_size)
    inference_cfg = replace(model_cfg.inference, **inference_overrides)
    return Predictor(image_path, inference_cfg, str(resolve_device(device)), "fp32"), model_cfg


def _release_image_modules(segmenter: PMPSegmenter) -> None:
    """Drop the image towers and the head (the graph has them): only the text tower is kept in memory."""
    segmenter.backbone = segmenter.head = segmenter.side_adapter = segmenter.crop_backbone = None
