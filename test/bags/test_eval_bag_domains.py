"""pmp-eval-bag honours ROS_DOMAIN_ID for any number of bags (issue #26: with two or more it picked random
domains 1..101): with it set, every bag's node runs in that domain, one after another; without it, in random
domains of their own, --jobs at a time. The test run's own domain (ros_harness) is the user's here, so a
client of this test sees the nodes' results only when they ran in it."""

import pytest

from pmp_ros.bags.evaluate import EvalOptions, evaluate_bags
from pmp_ros.bags.writer import write_bag
from pmp_ros.data.streams import SequenceConfig, procedural_stream
from pmp_ros.ros import interface
from pmp_ros.ros.process import pick_domains, user_domain
from pmp_ros_msgs.msg import SegmentationResult

# Two short bags told apart by their stamps (each starts at its own time).
STARTS_NS = (1_700_000_000 * 10**9, 1_800_000_000 * 10**9)
NODE_PARAMS = {"cpu_threads": "1", "tracking": "false", "inference_width": "128", "inference_height": "96"}


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bags")
    paths = []
    for index, start in enumerate(STARTS_NS):
        config = SequenceConfig(width=96, height=72, seconds=0.2, instruction_seconds=0.1, start_ns=start)
        write_bag(folder / f"bag{index}", list(procedural_stream(config)), "mcap")
        paths.append(folder / f"bag{index}")
    return paths


def test_several_bags_run_one_after_another_in_the_users_domain(tmp_path, model_file, bags, ros_client, capsys):
    domain = user_domain()
    assert domain is not None  # the harness set this test run's ROS_DOMAIN_ID
    seen = ros_client.subscribe(SegmentationResult, interface.SEGMENTATION_TOPIC, qos=50)
    options = EvalOptions(model=str(model_file), lockstep=True, device="cpu", node_params=NODE_PARAMS, progress=False)
    reports = evaluate_bags(bags, options, tmp_path / "out", jobs=2)
    assert all(r["frames"] == r["results"] > 0 for r in reports), [r["problems"] for r in reports]
    # Both nodes published in this domain: this test's client got results of each bag's frames.
    from_bags = {int(msg.header.stamp.sec >= STARTS_NS[1] // 10**9) for msg in list(seen)}
    assert from_bags == {0, 1}, from_bags
    assert [r["ros_domain_id"] for r in reports] == [domain, domain]
    assert f"2 bags one after another in ROS_DOMAIN_ID {domain} (--jobs 2 not used" in capsys.readouterr().out


def test_without_a_domain_set_the_bags_get_random_domains_of_their_own(monkeypatch):
    monkeypatch.delenv("ROS_DOMAIN_ID")
    assert user_domain() is None
    domains = pick_domains(5)
    assert len(set(domains)) == 5 and all(1 <= d <= 101 for d in domains)
    monkeypatch.setenv("ROS_DOMAIN_ID", "42")
    assert pick_domains(1) == [42]
