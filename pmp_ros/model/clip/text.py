"""ClipTextEncoder: CLIP text tower giving class embeddings (for classifiers) and prompt tokens (for PMP).

Both outputs depend only on strings, and a robot asks the same vocabulary and instructions frame after
frame, so with a frozen tower they are computed once and cached (bounded LRU, keyed by the strings and
the tower's device and dtype).

A large vocabulary (FC-CLIP's COCO context: 254 names x 14 templates = 3,556 texts, minutes on a CPU) is
also kept on disk across processes (TextEmbeddingStore): keyed by a hash of the text tower's weights, the
templates, the tokenizer and the autocast dtype, one embedding per name, so a later run's first instruction
encodes only its prompts. The folder is $PMP_TEXT_CACHE_DIR (set it to "off" to disable), else
$XDG_CACHE_HOME/pmp_ros/text_embeddings (~/.cache/...); only batches of DISK_CACHE_MIN_TEXTS texts or more
are stored, so a few prompts never make a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import string
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

CLASS_CACHE_PER_ENTRY = 128  # a vocabulary has many names, an instruction few prompts
TEMPLATE_PROBE = "test name"  # what check_templates formats each template with
DISK_CACHE_MIN_TEXTS = 512  # names x templates encoded at once from which they are also stored on disk
CACHE_DIR_ENV = "PMP_TEXT_CACHE_DIR"
# Part of every disk key: raise it when _encode_classes computes embeddings differently, so no store
# written by earlier code is read (open_clip's version, whose pooling it uses, is in the key too).
STORE_FORMAT = 1

log = logging.getLogger(__name__)


class ClipTextEncoder(nn.Module):
    """Text tower of an open_clip ``CLIP`` (token embedding, causal transformer, ln_final, projection).

    Args:
        open_clip_model: an open_clip ``CLIP`` (built-in causal text transformer; HF text towers are not
            supported).
        tokenizer: open_clip tokenizer, ``tokenizer(list[str]) -> int64 [N, L]`` with L the context length.
        templates: prompt templates with one ``{}`` for the class name, averaged over (check_templates).
        frozen: no gradients, eval mode kept, outputs cached.
        cache_size: cached prompt lists (prompt tokens); class embeddings are cached per name, up to
            CLASS_CACHE_PER_ENTRY times as many.
        batch_size: texts per tower call (bounds memory for large vocabularies).
        disk_cache: where class embeddings of large vocabularies persist across processes; "default" =
            default_cache_dir(), None = in memory only. Used only when frozen.

    Attributes:
        width: W_t, the transformer width (prompt token feature size).
        embed_dim: D, the joint embedding size.
        tower_calls: number of text-tower forward passes so far (tests use it to prove cache hits).
    """

    def __init__(
        self,
        open_clip_model: nn.Module,
        tokenizer: Any,
        templates: Sequence[str],
        frozen: bool = True,
        cache_size: int = 32,
        batch_size: int = 256,
        disk_cache: str | Path | None = "default",
    ):
        super().__init__()
        if hasattr(open_clip_model, "text") or not hasattr(open_clip_model, "token_embedding"):
            raise ValueError(
                f"unsupported CLIP text tower in {type(open_clip_model).__name__}: ClipTextEncoder needs "
                "open_clip's built-in CLIP text transformer"
            )
        self.token_embedding = open_clip_model.token_embedding
        self.positional_embedding = open_clip_model.positional_embedding
        self.transformer = open_clip_model.transformer
        self.ln_final = open_clip_model.ln_final
        self.text_projection = open_clip_model.text_projection
        self.register_buffer("attn_mask", open_clip_model.attn_mask, persistent=False)
        self.pool_type = open_clip_model.text_pool_type
        self.eos_id = getattr(open_clip_model, "text_eos_id", None)

        self.tokenizer = tokenizer
        self.context_length = self.positional_embedding.shape[0]
        probe = tokenizer(["probe"])
        if probe.shape[-1] != self.context_length:
            raise ValueError(
                f"tokenizer context length {probe.shape[-1]} != text tower context length {self.context_length}"
            )
        self.templates = check_templates(templates)
        self.width = self.transformer.width
        proj = self.text_projection
        if isinstance(proj, nn.Linear):
            self.embed_dim = proj.out_features
        else:
            self.embed_dim = proj.shape[1] if proj is not None else self.width
        self.frozen = frozen
        self.cache_size = cache_size
        self.batch_size = batch_size
        self.tower_calls = 0
        self._class_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._prompt_cache: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        cache_dir = default_cache_dir() if disk_cache == "default" else disk_cache
        self.disk_cache = TextEmbeddingStore(Path(cache_dir)) if cache_dir is not None and frozen else None
        self._weights_digest: tuple[torch.dtype, str] | None = None
        # New weights make every cached output stale.
        self.register_load_state_dict_post_hook(lambda module, incompatible: module.clear_cache())
        if frozen:
            self.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> ClipTextEncoder:
        return super().train(mode and not self.frozen)

    def clear_cache(self) -> None:
        """Forget every cached output (in memory; the disk store is keyed by the weights' hash, which is
        recomputed)."""
        self._class_cache.clear()
        self._prompt_cache.clear()
        self._weights_digest = None

    def weights_digest(self) -> str:
        """SHA-256 of the text tower's weights (names, dtypes, shapes, values) and its tokenizer's context
        length: what the disk store's key says about the model. Computed once per weights and dtype."""
        dtype = self.token_embedding.weight.dtype
        if self._weights_digest is None or self._weights_digest[0] != dtype:
            digest = hashlib.sha256(f"{type(self.tokenizer).__name__} {self.context_length}".encode())
            for name, tensor in self.state_dict().items():
                digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
                digest.update(tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy())
            self._weights_digest = (dtype, digest.hexdigest())
        return self._weights_digest[1]

    def class_embeddings(self, names: Sequence[str], templates: Sequence[str] | None = None) -> torch.Tensor:
        """names (K) -> float [K,D]: per name, normalise each template's embedding, average, normalise.

        templates: None = the encoder's own; others are checked like the constructor's. Cached per name, so
        a new instruction encodes only its new names, not the whole context vocabulary again.
        """
        templates = self.templates if templates is None else check_templates(templates)
        keys = [self._key([name]) + (templates,) for name in names]
        missing = list(dict.fromkeys(name for name, key in zip(names, keys) if key not in self._class_cache))
        fresh = self._from_disk(missing, templates)
        to_encode = [name for name in missing if name not in fresh]
        if to_encode:
            encoded = dict(zip(to_encode, self._encode_classes(to_encode, templates)))
            self._to_disk(encoded, templates)
            fresh |= encoded
        rows = []
        for name, key in zip(names, keys):
            if name in fresh:
                self._store(self._class_cache, key, fresh[name])
                rows.append(fresh[name])
            else:
                self._class_cache.move_to_end(key)
                rows.append(self._class_cache[key])
        if not rows:
            return self.token_embedding.weight.new_zeros(0, self.embed_dim)
        return torch.stack(rows)

    def _disk_key(self, templates: tuple[str, ...]) -> str | None:
        """The disk store's key for these templates under the current weights and autocast state; None when
        the store is off (it is for a tower that is not frozen)."""
        if self.disk_cache is None:
            return None
        device = self.token_embedding.weight.device.type
        autocast = str(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else "off"
        parts = [STORE_FORMAT, open_clip.__version__, self.weights_digest(), list(templates), device, autocast]
        text = json.dumps(parts)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _from_disk(self, names: list[str], templates: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The stored embeddings of those names that have one, on the tower's device and dtype."""
        if len(names) * len(templates) < DISK_CACHE_MIN_TEXTS or (key := self._disk_key(templates)) is None:
            return {}
        weight = self.token_embedding.weight
        stored = self.disk_cache.lookup(key, names)
        return {name: row.to(device=weight.device, dtype=weight.dtype) for name, row in stored.items()}

    def _to_disk(self, encoded: dict[str, torch.Tensor], templates: tuple[str, ...]) -> None:
        if len(encoded) * len(templates) < DISK_CACHE_MIN_TEXTS or (key := self._disk_key(templates)) is None:
            return
        self.disk_cache.add(key, encoded)

    def _encode_classes(self, names: list[str], templates: tuple[str, ...]) -> torch.Tensor:
        """[len(names), D] template-averaged, normalised embeddings (runs the tower)."""
        texts = [template.format(name) for name in names for template in templates]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self._tokenize(texts)
            features = self._encode(tokens)  # [K*T, L, W_t]
            pooled = text_global_pool(features, tokens, self.pool_type, eos_token_id=self.eos_id)
            embeddings = F.normalize(self._project(pooled), dim=-1)
            embeddings = embeddings.reshape(len(names), len(templates), self.embed_dim).mean(dim=1)
            return F.normalize(embeddings, dim=-1)

    def prompt_tokens(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts (P) -> (tokens float [P,L,W_t], valid bool [P,L]).

        Per-token features after ln_final (before the projection). Valid positions are those up to and
        including each prompt's end-of-text token; L is trimmed to the longest prompt, since positions after
        every prompt's end carry no text.
        """
        key = self._key(prompts)
        if key in self._prompt_cache:
            self._prompt_cache.move_to_end(key)
            return self._prompt_cache[key]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self._tokenize(list(prompts))
            eot = self._eot_positions(tokens)  # [P]
            length = int(eot.max()) + 1 if len(prompts) else 0
            features = self._encode(tokens)[:, :length]
            valid = torch.arange(length, device=tokens.device)[None, :] <= eot[:, None]
        result = (features, valid)
        self._store(self._prompt_cache, key, result)
        return result

    def _key(self, strings: Sequence[str]) -> tuple:
        weight = self.token_embedding.weight
        return (tuple(strings), weight.device, weight.dtype)

    def _store(self, cache: OrderedDict, key: tuple, value: Any) -> None:
        # Outputs that carry gradients belong to one training step: never cache them.
        if not self.frozen:
            return
        cache[key] = value
        limit = self.cache_size * (CLASS_CACHE_PER_ENTRY if cache is self._class_cache else 1)
        while len(cache) > limit:
            cache.popitem(last=False)

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts).to(self.token_embedding.weight.device)

    def _eot_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens int64 [N,L] -> [N] index of the end-of-text token (same rule as the tower's pooling)."""
        if self.pool_type == "eos" and self.eos_id is not None:
            return (tokens == self.eos_id).int().argmax(dim=-1)
        return tokens.argmax(dim=-1)  # open_clip's CLIP tokenizer: end-of-text has the largest id

    def _encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens int64 [N,L] -> per-token features [N,L,W_t] after ln_final, in chunks of batch_size."""
        chunks = []
        for start in range(0, tokens.shape[0], self.batch_size):
            self.tower_calls += 1
            chunk = tokens[start : start + self.batch_size]
            dtype = self.token_embedding.weight.dtype
            x = self.token_embedding(chunk) + self.positional_embedding.to(dtype)
            x = self.transformer(x, attn_mask=self.attn_mask)
            chunks.append(self.ln_final(x))
        if not chunks:
            return self.token_embedding.weight.new_zeros(0, tokens.shape[1], self.width)
        return torch.cat(chunks)

    def _project(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled [N,W_t] -> [N,D] through the text projection (a Linear, a matrix, or none)."""
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(pooled)
        if self.text_projection is None:
            return pooled
        return pooled @ self.text_projection


def check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """The templates as a tuple when each is text with exactly one replacement field, a bare ``{}`` (literal
    braces doubled: ``{{`` ``}}``), and formats TEMPLATE_PROBE; ValueError naming the first that is not.
    The node checks its prompt_templates parameter with this at start-up and when it is set."""
    if not templates:
        raise ValueError("prompt templates: no templates (at least one, with {} for the class name)")
    for template in templates:
        problem = _template_problem(template)
        if problem is not None:
            raise ValueError(f"prompt template {template!r}: {problem}")
    return tuple(templates)


def _template_problem(template: object) -> str | None:
    """Why a template is unusable, or None (check_templates)."""
    if not isinstance(template, str):
        return f"not text ({type(template).__name__})"
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)]
    except ValueError as error:  # an unmatched brace
        return f"{error} (a literal brace is doubled: {{{{ or }}}})"
    fields = [field for field in fields if field[0] is not None]
    if len(fields) != 1:
        return f"{len(fields)} fields; exactly one {{}}, for the class name" if fields else "no {} for the class name"
    if fields[0] != ("", "", None):
        return "the class name's field must be a bare {} (no index, name, format or conversion)"
    try:
        template.format(TEMPLATE_PROBE)
    except (ValueError, KeyError, IndexError) as error:
        return f"does not format a name: {error}"
    return None


def default_cache_dir() -> Path | None:
    """$PMP_TEXT_CACHE_DIR ("off" or empty: None, no disk store), else $XDG_CACHE_HOME/pmp_ros/
    text_embeddings, else ~/.cache/pmp_ros/text_embeddings."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured is not None:
        return None if configured.strip().lower() in ("", "off") else Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pmp_ros" / "text_embeddings"


class TextEmbeddingStore:
    """Class embeddings on disk: root/<key>/<hash of the names>.safetensors, each file one encoded batch
    (tensor "embeddings" float32 [N,D], metadata "names": their JSON list). A key's files are read once per
    store and kept in memory. Files are written whole (temporary file, then renamed), so a reader never sees
    half of one; a store that cannot be read or written logs a warning and encodes as without it."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._loaded: dict[str, dict[str, torch.Tensor]] = {}

    def lookup(self, key: str, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """name -> float32 [D] (CPU) for the names stored under key."""
        entries = self._entries(key)
        return {name: entries[name] for name in names if name in entries}

    def add(self, key: str, embeddings: dict[str, torch.Tensor]) -> None:
        """Store name -> [D] rows under key (one new file)."""
        names = list(embeddings)
        folder = self.root / key
        path = folder / f"{hashlib.sha256(json.dumps(names).encode()).hexdigest()[:32]}.safetensors"
        matrix = torch.stack([embeddings[name] for name in names]).detach().float().cpu().contiguous()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            save_file({"embeddings": matrix}, str(partial), metadata={"names": json.dumps(names)})
            os.replace(partial, path)
        except OSError as error:
            log.warning("text embedding cache: cannot write %s (%s); encoding without it", path, error)
            return
        self._entries(key).update(zip(names, matrix))

    def _entries(self, key: str) -> dict[str, torch.Tensor]:
        if key not in self._loaded:
            entries: dict[str, torch.Tensor] = {}
            for path in sorted((self.root / key).glob("*.safetensors")):
                try:
                    with safe_open(str(path), "pt") as stored:
                        names = json.loads(stored.metadata()["names"])
                        matrix = stored.get_tensor("embeddings")
                    if matrix.ndim != 2 or matrix.shape[0] != len(names):
                        raise ValueError(f"{matrix.shape[0]} rows for {len(names)} names")
                except (OSError, ValueError, KeyError, TypeError, SafetensorError) as error:
                    log.warning("text embedding cache: skipping unreadable %s (%s)", path, error)
                    continue
                entries.update(zip(names, matrix))
            self._loaded[key] = entries
        return self._loaded[key]
