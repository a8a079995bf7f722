"""report.html in a real headless browser (Chromium from the distribution's packages): the rendered
DOM has one section per benchmark with its images and players, and the page logs no console errors."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from panflow import Preview, png_bytes, wav_bytes
from panflow.report import write_report

from .test_report import _result

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--disable-extensions", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")
def test_report_renders_in_headless_chromium(tmp_path):
    names = ["toy2d", "image", "audio"]
    for n in names:
        (tmp_path / f"{n}.json").write_text(json.dumps(_result(n)))

    def hook(result, samples):
        return [Preview("grid", "png", png_bytes(np.eye(4))), Preview("clip", "wav", wav_bytes(np.ones(80), 8000))]

    for n in ("image", "audio"):  # a hook is called for results that kept samples
        np.savez(tmp_path / f"{n}.samples.npz", x=np.zeros(3))
    page = write_report(tmp_path, {}, {"image": hook, "audio": hook})
    dom = _chromium("--dump-dom", page.as_uri()).stdout
    assert re.findall(r'<section class="benchmark" id="bench-(\w+)"', dom) == sorted(names)
    for n in names:
        section = dom.split(f'id="bench-{n}"')[1].split("</section>")[0]
        assert "Quality against NFE" in section and section.count("data:image/png;base64,") >= 2
    assert dom.count("<audio") == 2
    # console errors: chromium logs them (with the page's source) to stderr when logging is on
    log = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri())
    errors = [line for line in log.stderr.splitlines() if "CONSOLE" in line and ("ERROR" in line or "error" in line)]
    assert not errors, errors
    # a page with a broken script does log one: the check above can fail
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefined_function_xyz();</script></body></html>")
    log = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", bad.as_uri())
    assert any("undefined_function_xyz" in line for line in log.stderr.splitlines()), log.stderr[-2000:]
