"""The conformance kit: does a plugin honour every panflow contract?

    from panflow.testing import check_plugin, assert_plugin_conforms
    report = check_plugin(my_plugin_object)      # or the entry-point name of an installed plugin
    assert_plugin_conforms(my_plugin_object)     # raises AssertionError listing every failure

Checks: it registers cleanly; component names are unique and well formed; each domain's
default dataset loads on the ``smoke`` preset and its encoder round-trips; each backbone maps a
batch of every fitting domain to the right output shape; one training step gives a finite loss;
sampling returns the right shape; metrics are deterministic for a fixed seed; benchmarks offer
the smoke preset.
"""

from .conformance import CheckResult, ConformanceReport, assert_plugin_conforms, check_plugin

__all__ = ["CheckResult", "ConformanceReport", "assert_plugin_conforms", "check_plugin"]
