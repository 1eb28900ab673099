"""The node's model: a checkpoint (and with backend onnxruntime its ONNX graph) loaded into a Predictor for the
device, precision and inference settings of the node's parameters, warmed up. Runs on the node's model
thread (node.py, which names it in the OS: name_os_thread); every failure is a StartupError that names its
cause in one line.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import NamedTuple

from pmp_ros.ros import interface
from pmp_ros.ros.node_settings import NodeSettings, StartupError

# open_clip's warning when it builds the CLIP towers without pretrained weights: the node's checkpoint
# holds every weight and replaces them right after, so the warning would only mislead.
OPEN_CLIP_RANDOM_INIT = "No pretrained weights loaded"


class LoadedModel(NamedTuple):
    """predictor: model.inference.Predictor, running the settings' inference settings; config: the
    checkpoint's ModelConfig (its inference settings are what unset parameters leave in force)."""

    predictor: object
    config: object


def load_model(model_path: str, settings: NodeSettings) -> LoadedModel:
    """The checkpoint at model_path as the node runs it (module docstring)."""
    import torch

    from pmp_ros.model.inference import Predictor

    torch.set_num_threads(interface.cpu_threads(settings.cpu_threads))
    _check_device(settings.device, settings.precision)
    if not Path(model_path).is_file():
        raise StartupError(f"model file not found: {model_path} (set the model_path parameter)")
    silence_random_init = _DropMessage(OPEN_CLIP_RANDOM_INIT)
    logging.getLogger().addFilter(silence_random_init)  # open_clip warns through the root logger
    try:
        if settings.backend == "onnxruntime":
            predictor, model_cfg = _load_onnx(model_path, settings)
        else:
            predictor, model_cfg = Predictor.from_checkpoint(model_path, settings.device, settings.precision)
        predictor.cfg = settings.predictor_inference(model_cfg.inference)
        if settings.backend == "onnxruntime" and predictor.cfg.size != model_cfg.inference.size:
            raise StartupError(
                f"the ONNX graph's input size is fixed at {model_cfg.inference.size[1]}x"
                f"{model_cfg.inference.size[0]}: leave inference_width/height at 0 or export another size"
            )
        predictor.warmup()
    except StartupError:
        raise
    except Exception as error:  # any failure to load is fatal and reported as one line
        raise StartupError(f"cannot load model {model_path}: {type(error).__name__}: {error}") from None
    finally:
        logging.getLogger().removeFilter(silence_random_init)
    return LoadedModel(predictor, model_cfg)


def _load_onnx(model_path: str, settings: NodeSettings):
    """(Predictor on ONNX Runtime, ModelConfig) for backend onnxruntime; the text tower stays in PyTorch."""
    from pmp_ros.deploy.runtime import load_onnx_predictor

    onnx_path = settings.onnx_path or str(Path(model_path).with_suffix(".onnx"))
    if not Path(onnx_path).is_file():
        raise StartupError(
            f"ONNX graph not found: {onnx_path} (pmp-export-onnx {model_path} {onnx_path}, or set onnx_path)"
        )
    return load_onnx_predictor(model_path, onnx_path, settings.device, interface.cpu_threads(settings.cpu_threads))


def _check_device(device: str, precision: str) -> None:
    """StartupError naming the device (or precision) when this machine cannot run it: loading the model
    there would fail with an error that seems to blame the model file."""
    import torch

    from pmp_ros.model.inference import resolve_device, resolve_precision

    try:
        resolved = resolve_device(device)
        if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        resolve_precision(precision, resolved)
    except ValueError as error:
        raise StartupError(str(error)) from None


class _DropMessage(logging.Filter):
    """Drops log records whose message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` (15 bytes at most) in the OS too, so top -H, py-spy and
    bench/bench_node.py's per-thread table can tell it apart (the node names its model's thread so);
    Python's thread names stay inside Python."""
    try:
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(name[:15])
    except OSError:  # not Linux, or /proc not mounted: only the label is lost
        pass
