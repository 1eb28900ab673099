import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.instructions import generate_instructions
from pmp_ros.data.world import TabletopWorld, WorldConfig
from pmp_ros.language.parse import parse_instruction

WORLD = TabletopWorld(160, 120, WorldConfig.cluttered())
SCENES = [WORLD.render(s) for s in range(8)]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(scene=st.sampled_from(SCENES), seed=st.integers(0, 2**32 - 1), absent=st.floats(0, 1))
def test_generated_instructions_parse_back(scene, seed, absent):
    for ins in generate_instructions(scene, seed, n=3, absent_prob=absent):
        assert parse_instruction(ins.text).targets == ins.prompts, ins.text
        for name, ids in zip(ins.prompts, ins.target_ids):
            assert set(ids) == {o.id for o in scene.objects_of(name)}


def test_generation_options():
    seen = voc.seen_classes()
    rng = np.random.default_rng(0)
    all_named, absent_seen = set(), 0
    for scene in SCENES:
        for ins in generate_instructions(scene, rng, n=4, classes=seen, absent_prob=0.5, max_targets=2):
            assert set(ins.prompts) <= set(seen) and 1 <= len(ins.prompts) <= 3
            all_named |= set(ins.prompts)
            absent_seen += ins.absent
            assert ins.all_target_ids == tuple(sorted({i for t in ins.target_ids for i in t}))
    assert absent_seen > 0 and len(all_named) > 10
    assert generate_instructions(SCENES[0], 0, classes=()) == []
    a = generate_instructions(SCENES[1], 5, n=3)
    assert a == generate_instructions(SCENES[1], 5, n=3)
