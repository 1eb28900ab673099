"""Exact structured-parse accuracy on an instruction corpus (test/data/instructions_corpus.jsonl).

    python -m pmp_ros.language.corpus test/data/instructions_corpus.jsonl [--show-errors dev]

Each line: {"text", "style", "split" ("dev": rules were developed on it; "test": held out), "expect": the
ParsedInstruction.as_dict() fields, or {"error": reason}}.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from pmp_ros.language.parse import InstructionParseError, parse_instruction


def parse_fields(text: str) -> dict:
    """The corpus's `expect` form of a text's parse."""
    try:
        return parse_instruction(text).as_dict()
    except InstructionParseError as error:
        return {"error": error.reason}


def score(path: Path) -> dict:
    """{split: {"correct", "total", "accuracy", "by_style": {style: [correct, total]}, "wrong": [texts]}}."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out: dict = {}
    for row in rows:
        split = out.setdefault(
            row["split"], {"correct": 0, "total": 0, "by_style": defaultdict(lambda: [0, 0]), "wrong": []}
        )
        right = parse_fields(row["text"]) == row["expect"]
        split["correct"] += right
        split["total"] += 1
        split["by_style"][row["style"]][0] += right
        split["by_style"][row["style"]][1] += 1
        if not right:
            split["wrong"].append(row["text"])
    for split in out.values():
        split["accuracy"] = split["correct"] / split["total"]
        split["by_style"] = dict(split["by_style"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--show-errors", metavar="SPLIT", help="print the texts parsed wrongly in this split")
    args = parser.parse_args(argv)
    results = score(args.corpus)
    for name, split in sorted(results.items()):
        print(f"{name}: {split['correct']}/{split['total']} = {split['accuracy']:.3f} exact structured parses")
        print("  " + ", ".join(f"{style} {c}/{t}" for style, (c, t) in sorted(split["by_style"].items())))
    if args.show_errors:
        for text in results[args.show_errors]["wrong"]:
            print(f"  wrong: {text!r} -> {parse_fields(text)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
