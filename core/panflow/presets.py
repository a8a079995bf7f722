"""The size presets every benchmark and run config speaks, smallest first.

``smoke`` is plumbing only (seconds; tests and CI), ``quick`` the first run a person reads (minutes
per domain on a CPU, the model already beats its baseline), ``small`` where the bars live (up to
30 minutes per domain on a CPU), ``full`` GPU scale.
"""

PRESETS = ("smoke", "quick", "small", "full")
PLUMBING_ONLY = ("smoke",)  # presets whose numbers are a plumbing check, not a quality result

__all__ = ["PRESETS", "PLUMBING_ONLY"]
