"""Progress bars: drawn with an ETA on a terminal, silent otherwise (logs, CI, pipes)."""

import io
import sys
import time

from panflow import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_draw_on_a_terminal_with_eta(monkeypatch):
    err = _Tty()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.delenv("PANFLOW_PROGRESS", raising=False)
    with progress.timed("toy2d (quick)", 30):
        time.sleep(1.3)
    bar = progress.stage("sweep", 3)
    bar.update(3)
    bar.close()
    out = err.getvalue()
    assert "toy2d (quick)" in out and "ETA" in out and "of ~30s" in out and "sweep:" in out and "/3" in out


def test_bars_are_silent_off_a_terminal_or_when_disabled(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with progress.timed("x", 5):
        pass
    progress.stage("y", 2).update(2)
    assert err.getvalue() == "" and not progress.enabled()
    monkeypatch.setattr(sys, "stderr", _Tty())
    monkeypatch.setenv("PANFLOW_PROGRESS", "0")
    assert not progress.enabled()
