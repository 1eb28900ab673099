"""Prompt templates are checked before use (issue #26: `['{} {']` or a template without `{}` was accepted,
then every frame failed while the node's status stayed OK)."""

import pytest

from pmp_ros.model.clip.text import TEMPLATE_PROBE, check_templates
from pmp_ros.model.config import DEFAULT_TEMPLATES


@pytest.mark.parametrize(
    "templates",
    [DEFAULT_TEMPLATES, ("{}",), ("a photo of a {}.",), ("{{braces}} around a {}",), ("a {} with {{}} in it",)],
)
def test_usable_templates_pass_and_format_a_name(templates):
    assert check_templates(templates) == tuple(templates)
    for template in templates:
        assert TEMPLATE_PROBE in template.format(TEMPLATE_PROBE)


@pytest.mark.parametrize(
    "templates, why",
    [
        (["{} {"], "'{} {'"),  # exactly one "{}" counted naively, yet format fails
        (["a photo"], "no {}"),
        (["{} and {}"], "2 fields"),
        (["a {0}"], "'a {0}'"),
        (["a {name}"], "'a {name}'"),
        (["a {:>10}"], "'a {:>10}'"),
        (["a {!r}"], "'a {!r}'"),
        (["a }"], "'a }'"),
        (["a photo of a {}.", "broken {"], "'broken {'"),
        ([], "no templates"),
        ([3], "not text"),
    ],
)
def test_unusable_templates_are_refused_with_the_offending_one(templates, why):
    with pytest.raises(ValueError, match="prompt template") as info:
        check_templates(templates)
    assert why in str(info.value)
