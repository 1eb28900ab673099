"""Inference: images in, instances of the prompted classes out (label image, per-instance data, semantic map).

Pure PyTorch. The post-processing functions work on one image's model outputs and stay on the model's
device; `Predictor` copies each batch's results to the host once (one packed tensor), so a CUDA stream is
never synchronised per instance. Results are named fields (as DETR's PostProcess returns dicts), never
tables with column numbers.

Class layout everywhere: the first P classes are the prompts, then the context vocabulary, void last.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pmp_ros.model.config import InferenceConfig

# Semantic-map classes upsampled at a time: bounds memory for large vocabularies at full resolution.
_SEMANTIC_CHUNK = 16


@dataclass(frozen=True)
class Instance:
    """One instance. id: its value in the label image (1..n, in decreasing score order);
    box: (x0, y0, x1, y1) inclusive pixel bounds; area: pixels; mask: bool [H,W]; embedding: float32 [D],
    L2-normalised, the CLIP image embedding the classifier used for its query (segmenter's
    query_embeddings: the tower's embedding of its crop, or its mask-pooled features), or None when the
    segmenter gives none (appearance for tracking)."""

    id: int
    label: str
    prompt_index: int
    score: float
    box: tuple[int, int, int, int]
    area: int
    mask: np.ndarray
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class Prediction:
    """label_image: uint16 [H,W] (0 = background); semantic: int32 [H,W], index into prompts + context,
    -1 = none, or None when not asked for; both at the input image's resolution."""

    label_image: np.ndarray
    instances: list[Instance]
    semantic: np.ndarray | None


def instance_scores(
    class_log_probs: Tensor, mask_logits: Tensor, num_prompts: int, mask_threshold: float
) -> tuple[Tensor, Tensor]:
    """Per query: (score [Q], class [Q] int64), class = argmax over the C real classes (void excluded; a
    void-dominated query scores low anyway), score = p(class) x mean sigmoid inside its binarised mask.
    Queries whose class is not a prompt score -1, so they never pass a threshold.

    class_log_probs: [Q,C+1] log-probabilities; mask_logits: [Q,h,w].
    """
    probs = class_log_probs.float().exp()
    class_prob, classes = probs[:, :-1].max(dim=1)
    mask_probs = mask_logits.float().sigmoid().flatten(1)
    inside = (mask_probs > mask_threshold).float()
    quality = (mask_probs * inside).sum(1) / inside.sum(1).clamp(min=1.0)
    scores = torch.where(classes < num_prompts, class_prob * quality, torch.full_like(quality, -1.0))
    return scores, classes


def resolve_overlaps(masks: Tensor, valid: Tensor, overlap_threshold: float) -> tuple[Tensor, Tensor]:
    """Paint masks into one label image in the given order (callers sort by decreasing score).

    masks: bool [N,H,W]; valid bool [N] (candidates that passed the thresholds).
    Each instance keeps only its pixels not painted yet and is dropped when that visible part is below
    overlap_threshold of its own mask (or empty). Returns (label int32 [H,W], ids int32 [N]): kept
    candidates get ids 1..n in order, dropped ones id 0. A fixed Python loop over N with tensor conditions:
    no host synchronisation.
    """
    label = torch.zeros(masks.shape[1:], dtype=torch.int32, device=masks.device)
    kept = []
    for index in range(masks.shape[0]):
        mask = masks[index]
        visible = mask & (label == 0)
        seen = visible.sum()
        keep = valid[index] & (seen > 0) & (seen >= overlap_threshold * mask.sum())
        label = torch.where(visible & keep, index + 1, label)
        kept.append(keep)
    if not kept:
        return label, torch.zeros(0, dtype=torch.int32, device=masks.device)
    kept_t = torch.stack(kept).int()
    ids = torch.cumsum(kept_t, 0, dtype=torch.int32) * kept_t
    # Painted with position + 1; renumber to consecutive ids over the kept instances.
    remap = torch.cat([ids.new_zeros(1), ids])
    return remap[label.long()], ids


def instance_geometry(label: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """Per id of `label`: (boxes float32 [N,4] as x0, y0, x1, y1 inclusive bounds, areas float32 [N]);
    zeros where absent or id 0.

    One pass over the label image (per-id minima/maxima by scatter_reduce), not one mask per id.
    """
    h, w = label.shape
    n = int(ids.numel())
    flat = label.reshape(-1).long()
    size = max(n + 1, 1)
    area = torch.bincount(flat, minlength=size)[:size]
    ys = torch.arange(h, device=label.device).repeat_interleave(w)
    xs = torch.arange(w, device=label.device).repeat(h)
    big = torch.full((size,), h + w, device=label.device, dtype=torch.long)
    small = torch.full((size,), -1, device=label.device, dtype=torch.long)
    x0 = big.scatter_reduce(0, flat, xs, "amin")
    y0 = big.scatter_reduce(0, flat, ys, "amin")
    x1 = small.scatter_reduce(0, flat, xs, "amax")
    y1 = small.scatter_reduce(0, flat, ys, "amax")
    index = ids.long().clamp(min=0)
    present = ((ids > 0) & (area[index] > 0)).float()
    boxes = torch.stack([x0, y0, x1, y1], dim=1)[index].float() * present[:, None]
    return boxes, area[index].float() * present


def instances_from_queries(
    class_log_probs: Tensor,
    mask_logits: Tensor,
    num_prompts: int,
    out_size: tuple[int, int],
    cfg: InferenceConfig,
    query_embeddings: Tensor | None = None,
) -> dict[str, Tensor]:
    """One image's queries -> its instances at out_size (H, W), as named fields.

    class_log_probs: [Q,C+1]; mask_logits: [Q,h,w] logits at the model's mask resolution; query_embeddings:
    [Q,D] or None. Scores are computed there; only the top max_instances candidates are upsampled (bilinear
    on logits) and painted. Returns, for N = the candidates considered (at most max_instances, highest score
    first): label_image int32 [H,W] (0 = background, else an id), ids int32 [N] (value in label_image, 0 =
    dropped by a threshold or by overlap), scores float32 [N], labels int64 [N] (class index: prompts
    first), boxes float32 [N,4] (x0, y0, x1, y1 inclusive pixel bounds of the painted pixels), areas
    float32 [N], and with query_embeddings, embeddings float32 [N,D] (L2-normalised; zero rows stay zero).
    """
    scores, classes = instance_scores(class_log_probs, mask_logits, num_prompts, cfg.mask_threshold)
    top_scores, top = scores.topk(min(cfg.max_instances, scores.numel()))  # sorted, highest first
    if top_scores.device.type == "cpu":
        # On the CPU, reading the count costs nothing (no device sync): upsample and paint only the
        # candidates that pass, so the cost follows the instances found, not the query count.
        passing = int((top_scores >= cfg.score_threshold).sum())
        top_scores, top = top_scores[:passing], top[:passing]
    if top.numel():
        logits = F.interpolate(
            mask_logits[top].float().unsqueeze(0), size=out_size, mode="bilinear", align_corners=False
        )[0]
    else:  # interpolate refuses an empty batch
        logits = mask_logits.new_zeros((0, *out_size), dtype=torch.float32)
    label, ids = resolve_overlaps(
        logits > _logit(cfg.mask_threshold), top_scores >= cfg.score_threshold, cfg.overlap_threshold
    )
    boxes, areas = instance_geometry(label, ids)
    found = {
        "label_image": label,
        "ids": ids,
        "scores": top_scores.float(),
        "labels": classes[top],
        "boxes": boxes,
        "areas": areas,
    }
    if query_embeddings is not None:
        found["embeddings"] = F.normalize(query_embeddings[top].float(), dim=-1)
    return found


def semantic_map(class_log_probs: Tensor, mask_logits: Tensor, out_size: tuple[int, int], threshold: float) -> Tensor:
    """int32 [H,W] at out_size: argmax over the C real classes of sum_q p(class|q) * sigmoid(mask_q),
    -1 where no class reaches `threshold`.

    class_log_probs: [Q,C+1]; mask_logits: [Q,h,w]. Classes are upsampled (bilinear) in chunks so a large
    vocabulary at full resolution does not hold C full-size maps at once.
    """
    probs = class_log_probs.float().exp()[:, :-1]
    per_class = torch.einsum("qc,qhw->chw", probs, mask_logits.float().sigmoid())
    best = torch.full(out_size, -1.0, device=per_class.device)
    best_class = torch.full(out_size, -1, dtype=torch.int32, device=per_class.device)
    for start in range(0, per_class.shape[0], _SEMANTIC_CHUNK):
        chunk = F.interpolate(
            per_class[None, start : start + _SEMANTIC_CHUNK], size=out_size, mode="bilinear", align_corners=False
        )[0]
        value, index = chunk.max(0)
        better = value > best
        best = torch.where(better, value, best)
        best_class = torch.where(better, (index + start).int(), best_class)
    return torch.where(best >= threshold, best_class, torch.full_like(best_class, -1))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def resolve_device(device: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; "cuda[:N]" without CUDA raises ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use 'cpu' or 'auto')")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """ "auto" -> bf16 (fp16 where bf16 is unsupported) on CUDA, fp32 on CPU. fp16 needs CUDA."""
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise ValueError(f"precision must be one of auto, {', '.join(dtypes)}; got {precision!r}")
    if dtypes[precision] == torch.float16 and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
    return dtypes[precision]


class Predictor:
    """A segmenter ready for frames: on its device, in eval mode, with the prompts' text encoded once.

    segmenter: implements the segmenter inference API (docs/architecture.md, model/segmenter.py):
        ``encode_text(class_names, prompts, templates=None) -> TextFeatures`` and
        ``forward(images [B,3,H,W] in [0,1], text_features) -> {"class_log_probs" [B,Q,C+1],
        "pred_masks" [B,Q,h,w]}`` in eval mode.
    cfg: InferenceConfig; a public attribute, replaced as a whole (dataclasses.replace) to change
        thresholds at run time: each predict() reads it once.

    set_prompts and predict may be called from different threads; a predict() uses the prompts that were
    set when it started.
    """

    def __init__(
        self, segmenter: torch.nn.Module, inference_cfg: InferenceConfig, device: str = "auto", precision: str = "auto"
    ):
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.segmenter = segmenter.to(self.device).eval()
        self.cfg = inference_cfg
        self._lock = threading.Lock()
        self._text: Any = None
        self.prompts: tuple[str, ...] = ()
        self.class_names: tuple[str, ...] = ()

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str = "auto", precision: str = "auto", **inference_overrides: Any
    ) -> tuple[Predictor, Any]:
        """Load a checkpoint (the one place that imports the segmenter loader); returns (predictor,
        ModelConfig). inference_overrides replace fields of the checkpoint's InferenceConfig."""
        from pmp_ros.model.segmenter import load_segmenter

        resolved = resolve_device(device)
        segmenter, model_cfg = load_segmenter(path, resolved)
        return cls(segmenter, replace(model_cfg.inference, **inference_overrides), str(resolved), precision), model_cfg

    def _autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def encode_text(
        self,
        class_names: Sequence[str],
        prompts: Sequence[str] | Sequence[Sequence[str]] = (),
        templates: Sequence[str] | None = None,
    ) -> Any:
        """The segmenter's TextFeatures for class_names and prompts (one list shared by a batch, or one list
        per image), at the Predictor's precision. Does not change the prompts set by set_prompts."""
        nested = bool(prompts) and not isinstance(prompts[0], str)
        prompt_lists = [list(p) for p in prompts] if nested else list(prompts)
        with torch.inference_mode(), self._autocast():
            return self.segmenter.encode_text(
                list(class_names), prompt_lists, None if templates is None else list(templates)
            )

    def forward(self, images: Sequence[np.ndarray], text: Any) -> dict[str, Tensor]:
        """The model's raw outputs for a batch: images uint8 [H,W,3] RGB (sizes may differ), each resized to
        cfg.size, with text from encode_text. Returns the segmenter's eval outputs (class_log_probs
        [B,Q,C+1], pred_masks [B,Q,h,w] logits, pred_logits [B,Q,C+1], ...) on the Predictor's device."""
        for image in images:
            _check_image(image)
        with torch.inference_mode():
            batch = torch.stack([self._preprocess(image, self.cfg.size) for image in images])
            with self._autocast():
                return self.segmenter(batch, text)

    def set_prompts(
        self, prompts: Sequence[str], context: Sequence[str] = (), templates: Sequence[str] | None = None
    ) -> None:
        """Encode and cache the text for prompts + context. Context entries that name a prompt, as a whole or
        as one of their synonyms ("cup" in "cup,cups,water cup"), are dropped, so a prompt never competes
        with itself. templates: None = the model's own."""
        from pmp_ros.model.segmenter import split_synonyms  # the segmenter's synonym convention

        prompts = tuple(prompts)
        if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError(f"prompts must be non-empty strings, got {list(prompts)}")
        prompt_names = {p.strip() for p in prompts}
        context = tuple(dict.fromkeys(c for c in context if c and not prompt_names & set(split_synonyms(c))))
        names = prompts + context
        text = self.encode_text(names, prompts, templates)
        with self._lock:
            self._text, self.prompts, self.class_names = text, prompts, names

    def predict(self, images: Sequence[np.ndarray], semantic: bool = True) -> list[Prediction]:
        """images: uint8 [H,W,3] RGB (sizes may differ) -> one Prediction each, at its input size.

        semantic: also compute the semantic map (evaluation); the node does not publish it, and at camera
        resolution it costs more than the instances."""
        with self._lock:
            text, prompts, names = self._text, self.prompts, self.class_names
        if text is None:
            raise RuntimeError("set_prompts() must be called before predict()")
        return self._predict(images, text, prompts, names, self.cfg, semantic)

    def warmup(self) -> None:
        """One forward pass on a blank frame (allocator, cuDNN autotuning, lazy init) so the first real
        frame is not slow. Uses the current prompts, or a placeholder one without keeping it."""
        with self._lock:
            text, prompts, names = self._text, self.prompts, self.class_names
        if text is None:
            prompts = names = ("object",)
            text = self.encode_text(names, prompts)
        height, width = self.cfg.size
        self._predict([np.zeros((height, width, 3), np.uint8)], text, prompts, names, self.cfg)

    def _predict(
        self,
        images: Sequence[np.ndarray],
        text: Any,
        prompts: tuple[str, ...],
        names: tuple[str, ...],
        cfg: InferenceConfig,
        semantic: bool = True,
    ) -> list[Prediction]:
        if not images:
            return []
        out = self.forward(images, text)
        embeddings = out.get("query_embeddings")
        fields = []  # per image: its instance fields, then its semantic map when asked for
        with torch.inference_mode():
            for i, image in enumerate(images):
                log_probs, masks = out["class_log_probs"][i].float(), out["pred_masks"][i].float()
                found = instances_from_queries(
                    log_probs, masks, len(prompts), image.shape[:2], cfg, None if embeddings is None else embeddings[i]
                )
                fields.append(
                    found
                    | (
                        {"semantic": semantic_map(log_probs, masks, image.shape[:2], cfg.mask_threshold)}
                        if semantic
                        else {}
                    )
                )
            flat = _to_host([t for f in fields for t in f.values()])
        results, offset = [], 0
        for f in fields:
            host = dict(zip(f, flat[offset : offset + len(f)]))
            offset += len(f)
            results.append(prediction_from_fields(host, names))
        return results

    def _preprocess(self, image: np.ndarray, size: tuple[int, int]) -> Tensor:
        # from_numpy shares memory (read-only buffers are copied: torch warns on them otherwise).
        pixels = torch.from_numpy(image if image.flags.writeable else image.copy()).to(self.device)
        pixels = pixels.permute(2, 0, 1).float().div_(255.0).unsqueeze(0)
        return F.interpolate(pixels, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)[0]


def _check_image(image: np.ndarray) -> tuple[int, int]:
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] != 3
        or 0 in image.shape
    ):
        raise ValueError(
            f"expected a uint8 [H,W,3] RGB image, got {getattr(image, 'dtype', type(image))} "
            f"{getattr(image, 'shape', '')}"
        )
    return image.shape[0], image.shape[1]


def _to_host(tensors: list[Tensor]) -> list[np.ndarray]:
    """Copy int32/float32 tensors to the host in ONE transfer (packed as int32 bits), shapes preserved."""
    flat = [(t.view(torch.int32) if t.dtype == torch.float32 else t.int()).reshape(-1) for t in tensors]
    host = torch.cat(flat).cpu().numpy()
    out, offset = [], 0
    for t in tensors:
        part = host[offset : offset + t.numel()].reshape(tuple(t.shape))
        out.append(part.view(np.float32) if t.dtype == torch.float32 else part)
        offset += t.numel()
    return out


def prediction_from_fields(found: dict[str, np.ndarray], names: Sequence[str]) -> Prediction:
    """A Prediction from one image's host copy of instances_from_queries' fields (+ "semantic")."""
    label_image = found["label_image"].astype(np.uint16)
    instances = []
    for k in np.flatnonzero(found["ids"] > 0):
        instance_id, label = int(found["ids"][k]), int(found["labels"][k])
        x0, y0, x1, y1 = (int(v) for v in found["boxes"][k])
        embedding = found["embeddings"][k].copy() if "embeddings" in found else None
        instances.append(
            Instance(
                id=instance_id,
                label=names[label],
                prompt_index=label,
                score=float(found["scores"][k]),
                box=(x0, y0, x1, y1),
                area=int(found["areas"][k]),
                mask=label_image == instance_id,
                embedding=embedding if embedding is not None and embedding.any() else None,
            )
        )
    semantic = found.get("semantic")
    return Prediction(
        label_image=label_image, instances=instances, semantic=None if semantic is None else semantic.astype(np.int32)
    )
