"""The FC-CLIP preset's first instruction, text side: COCO panoptic's 133 classes (254 synonyms) x FC-CLIP's
14 templates = 3,556 texts through an FC-CLIP-size text tower (convnext_large_d_320, random weights), without
and with the class embeddings' disk store (pmp_ros/model/clip/text.py).

    python bench/bench_text_cache.py [--json out.json] [--vocabulary-limit N]

Runs, in one process, each with a fresh encoder (as a new node process starts):
  cold   no store entry yet: every text through the tower, then the vocabulary written to the store;
  warm   the store holds the vocabulary: the weights' hash, the store read and the new prompt only.
The set_prompts path encodes prompts + context in one class_embeddings call, which is what is timed.
--vocabulary-limit N takes the first N classes (a quick smoke run; the figure then is not the preset's).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from pmp_ros import paths
from pmp_ros.model.clip import ClipTextEncoder, create_clip
from pmp_ros.model.config import ClipConfig
from pmp_ros.model.fcclip_import import COCO_PANOPTIC_CLASSES_FILE, FCCLIP_TEMPLATES, read_class_names
from pmp_ros.model.segmenter import split_synonyms

FCCLIP_CLIP = "convnext_large_d_320"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--vocabulary-limit", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    classes = read_class_names(paths.config_file(COCO_PANOPTIC_CLASSES_FILE))
    if args.vocabulary_limit:
        classes = classes[: args.vocabulary_limit]
    context = [s for name in classes for s in split_synonyms(name)]
    torch.manual_seed(0)
    start = time.monotonic()
    model, tokenizer = create_clip(ClipConfig(model_name=FCCLIP_CLIP))
    build_s = time.monotonic() - start
    rows = []
    with tempfile.TemporaryDirectory() as store, torch.inference_mode():
        for run, prompt in (("cold", "red star"), ("warm", "blue mug")):
            encoder = ClipTextEncoder(model, tokenizer, FCCLIP_TEMPLATES, disk_cache=store)
            start = time.monotonic()
            digest_start = time.monotonic()
            encoder.weights_digest()
            digest_s = time.monotonic() - digest_start
            embeddings = encoder.class_embeddings([prompt, *context])
            total_s = time.monotonic() - start
            rows.append(
                {
                    "run": run,
                    "texts": (1 + len(context)) * len(FCCLIP_TEMPLATES),
                    "tower_calls": encoder.tower_calls,
                    "weights_hash_s": digest_s,
                    "first_instruction_text_s": total_s,
                    "rows": int(embeddings.shape[0]),
                }
            )
            print(
                f"{run}: {total_s:.1f} s ({encoder.tower_calls} tower calls of <= {encoder.batch_size} texts; "
                f"weights hash {digest_s:.1f} s)",
                flush=True,
            )
    result = {
        "benchmark": "text_cache",
        "model": FCCLIP_CLIP,
        "classes": len(classes),
        "synonyms": len(context),
        "templates": len(FCCLIP_TEMPLATES),
        "threads": torch.get_num_threads(),
        "model_build_s": build_s,
        "rows": rows,
    }
    if len(rows) == 2 and rows[1]["first_instruction_text_s"] > 0:
        result["speedup"] = rows[0]["first_instruction_text_s"] / rows[1]["first_instruction_text_s"]
        print(f"cold / warm: {result['speedup']:.0f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
