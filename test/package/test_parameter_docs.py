"""The node's parameter table in docs/node.md against the one in code (pmp_ros/ros/interface.py PARAMETERS,
read when the test runs): every parameter once, its default, its range or values and whether it is dynamic;
the README points there instead of keeping a copy."""

import re
from pathlib import Path

from pmp_ros.ros import interface

ROOT = Path(__file__).resolve().parents[2]
NODE_DOC = ROOT / "docs" / "node.md"
README = ROOT / "README.md"
HEADER = "| name | default | range / values | dynamic | meaning |"


def _rows(text: str) -> list[list[str]]:
    """The cells of the table under HEADER (its separator row left out)."""
    lines = text.splitlines()
    start = lines.index(HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _documented() -> dict[str, dict[str, str]]:
    """name -> {default, values, dynamic} cells; a row "a / b" documents two parameters (its default "x / y")."""
    found: dict[str, dict[str, str]] = {}
    for name_cell, default_cell, values, dynamic, _meaning in _rows(NODE_DOC.read_text()):
        names, defaults = name_cell.split(" / "), default_cell.split(" / ")
        assert len(names) == len(defaults), f"row {name_cell}: {len(names)} names, {len(defaults)} defaults"
        for name, default in zip(names, defaults):
            assert name not in found, f"{name} is documented twice"
            found[name] = {"default": default, "values": values, "dynamic": dynamic}
    return found


def _default_text(value) -> str:
    """A default as the table writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return repr(value)


def _problems(spec: interface.Parameter, row: dict[str, str]) -> list[str]:
    problems = []
    if row["default"] != _default_text(spec.default) and not (
        isinstance(spec.default, (int, float)) and _number(row["default"]) == spec.default
    ):
        problems.append(f"default {row['default']!r}, the code's {_default_text(spec.default)!r}")
    if (row["dynamic"] == "yes") != spec.dynamic:
        problems.append(f"dynamic {row['dynamic']!r}, the code's {spec.dynamic}")
    if spec.choices is not None:
        listed = {value.strip() for value in row["values"].split(",")}
        if listed != {str(choice) for choice in spec.choices}:
            problems.append(f"values {row['values']!r}, the code's {list(spec.choices)}")
    if spec.min_value is not None:
        bounds = re.match(r"([-\d.]+)\.\.([-\d.]+)", row["values"])
        if bounds is None or (_number(bounds[1]), _number(bounds[2])) != (spec.min_value, spec.max_value):
            problems.append(f"range {row['values']!r}, the code's {spec.min_value}..{spec.max_value}")
    return problems


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def test_docs_node_md_lists_every_parameter_with_the_codes_default_range_and_dynamic_flag():
    documented = _documented()
    declared = {spec.name: spec for spec in interface.PARAMETERS}
    assert sorted(set(declared) - set(documented)) == [], "parameters missing from docs/node.md"
    assert sorted(set(documented) - set(declared)) == [], "docs/node.md lists parameters the node does not have"
    problems = [f"{name}: {p}" for name, spec in declared.items() for p in _problems(spec, documented[name])]
    assert problems == [], "docs/node.md disagrees with pmp_ros/ros/interface.py:\n" + "\n".join(problems)


def test_the_readme_points_to_the_table_instead_of_copying_it():
    readme = README.read_text()
    copied = [name for name in (spec.name for spec in interface.PARAMETERS) if f"\n| {name} |" in readme]
    assert copied == [], f"README.md repeats rows of the parameter table: {copied}"
    assert "docs/node.md" in readme[readme.index("### Parameters") :]
