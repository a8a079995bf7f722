"""Every case of the fault catalogue: listed bad inputs, corrupted runs, leftovers, data that must
load completely, and the generated loader fuzz (see catalogue.py; counted by benchmarks/faults_report.py)."""

import pytest

from .cases import run_case
from .catalogue import ALL, GOOD

KNOWN_GAPS: dict[str, str] = {}  # case name -> why it is still open (none today)


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_case(case, tmp_path):
    if case.name in KNOWN_GAPS:
        pytest.xfail(KNOWN_GAPS[case.name])
    outcome, message = run_case(case, tmp_path, limit_s=120)
    assert outcome in GOOD[case.expect], f"{case.group}: {case.name}: {outcome}: {message}"
