"""Domain claims (pmp_ros/ros/environment.py): runs on one machine never share a DDS domain by chance. A
30-minute fuzz run once read another test run's node counters because both had drawn the same random id."""

import os
import subprocess
import sys
import tempfile

import pytest

from pmp_ros.ros import environment
from pmp_ros.ros.environment import DOMAIN_IDS, claim_domains, release_domains

# A second process that claims one domain, says which, and holds it until its stdin closes.
HOLDER = (
    "import sys; from pmp_ros.ros.environment import claim_domains; "
    "print(claim_domains(1)[0], flush=True); sys.stdin.read()"
)


@pytest.fixture(autouse=True)
def private_locks(tmp_path, monkeypatch):
    """Lock files in this test's own folder: probing every free domain must not starve parallel runs."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def free_count() -> int:
    """Domains this process could still claim (probing claims and gives them back)."""
    probe = []
    for _ in DOMAIN_IDS:
        try:
            probe += claim_domains(1)
        except RuntimeError:
            break
    release_domains(probe)
    return len(probe)


def test_a_domain_another_process_holds_is_never_claimed_until_that_process_ends():
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        held = int(holder.stdout.readline())
        free = free_count()
        mine = claim_domains(free)
        try:
            assert held not in mine and len(set(mine)) == free
            with pytest.raises(RuntimeError, match="free on this machine"):
                claim_domains(1)
        finally:
            release_domains(mine)
    finally:
        holder.stdin.close()
        holder.wait(10)
    # Its lock went with it (the system drops it), so the domain can be claimed again.
    assert free_count() == free + 1


def test_released_domains_can_be_claimed_again_and_claims_are_distinct():
    first = claim_domains(3)
    assert len(set(first)) == 3 and all(d in DOMAIN_IDS for d in first)
    assert not set(first) & set(claim_domains(0))
    before = free_count()
    release_domains(first)
    assert free_count() == before + 3
    assert not set(first) & set(environment._claimed)
