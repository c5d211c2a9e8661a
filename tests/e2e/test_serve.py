"""`dlapps serve` end to end: a real server subprocess on a free port of 127.0.0.1 over the committed
saved models, every REST endpoint with good and bad requests, then the web app in headless
Chromium (Playwright driving the system's browser): a sentence in the sentiment tab, a digit
image in the mnist tab, a screenshot. The server is stopped by its PID.

The browser part needs Chromium at /usr/bin/chromium (Debian's `chromium` package, which
.ci/run installs); without it that test is skipped with the reason. DLAPPS_SCREENSHOT=PATH also
writes the screenshot there (the README's docs/serve.png comes from it).
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("DLAPPS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TASKS = ["mnist", "sentiment", "spam", "tabular", "translation", "autoencoder", "gan"]
START_TIMEOUT = 600  # seconds: seven models load on a 2-core machine


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(url: str, body: bytes | None = None, method: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _post(base: str, task: str, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return _request(f"{base}/api/{task}/predict", body)


def _digit_png(index: int = 0) -> tuple[bytes, int]:
    """A test digit from the embedded (scikit-learn) digits as PNG bytes, white ink on black, 112x112."""
    from PIL import Image

    from dlapps.data.digits import embedded_digits

    images, labels = embedded_digits()
    buffer = io.BytesIO()
    Image.fromarray(images[index, ..., 0]).resize((112, 112), Image.Resampling.NEAREST).save(buffer, "PNG")
    return buffer.getvalue(), int(labels[index])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, process) of `dlapps serve` over the committed models; stopped by PID afterwards."""
    missing = [t for t in TASKS if not (REPO / "saved_models" / t / "model.keras").exists()]
    if missing:
        pytest.skip(f"no committed model for {', '.join(missing)}")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "dlapps", "serve", *TASKS, "--port", str(port)],
                                   cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"dlapps serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if _request(f"{base}/api/tasks")[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"dlapps serve did not answer in {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")
        time.sleep(2)
    yield base, process, log
    process.send_signal(signal.SIGINT)  # Ctrl-C
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("dlapps serve did not stop on Ctrl-C within 120 s")
    assert "stopped" in log.read_text()


def test_start_message_names_the_url_and_the_binding(server):
    base, _, log = server
    text = log.read_text()
    assert f"{base}/" in text and "this machine only" in text and "Ctrl-C" in text


def test_api_tasks_lists_models_with_metrics(server):
    base, _, _ = server
    status, body = _request(f"{base}/api/tasks")
    assert status == 200
    listed = {entry["task"]: entry for entry in body["tasks"]}
    assert sorted(listed) == sorted(TASKS)
    assert listed["mnist"]["metrics"]["accuracy"] > 0.9
    assert all(entry["metrics"] and entry["inputs"] and entry["summary"] for entry in listed.values())


def test_predict_good_requests(server):
    base, _, _ = server
    status, body = _post(base, "sentiment", {"inputs": ["a wonderful, moving and beautifully acted film",
                                                        "a dull, stupid and boring mess"]})
    assert status == 200 and [o["label"] for o in body["outputs"]] == ["positive", "negative"]
    status, body = _post(base, "spam", {"inputs": ["WINNER!! You have won a free prize. Call 09061701461 now to claim",
                                                   "See you at lunch tomorrow?"]})
    assert status == 200 and [o["label"] for o in body["outputs"]] == ["spam", "ham"]
    png, label = _digit_png()
    status, body = _post(base, "mnist", {"inputs": [base64.b64encode(png).decode()]})
    assert status == 200 and body["outputs"][0]["label"] == str(label)
    assert len(body["outputs"][0]["probabilities"]) == 3
    status, body = _post(base, "autoencoder", {"inputs": ["data:image/png;base64," + base64.b64encode(png).decode()]})
    assert status == 200 and 0 <= body["outputs"][0]["error"] < 0.2
    status, body = _post(base, "tabular", {"inputs": ["-122.23,37.88,41,880,129,322,126,8.3252,NEAR BAY"]})
    assert status == 200 and 50_000 < body["outputs"][0]["median_house_value"] < 1_000_000
    status, body = _post(base, "translation", {"inputs": ["A man is riding a bicycle."], "beam_size": 1})
    assert status == 200 and body["outputs"][0]["translation"].strip()
    status, body = _post(base, "gan", {"inputs": [3, None], "seed": 1})
    assert status == 200 and len(body["outputs"]) == 2
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["outputs"][0]["image"]))))
    assert image.shape == (28, 28) and image.max() > 100


@pytest.mark.parametrize("task, payload, status, message", [
    ("sentiment", b"not json", 400, "not JSON"),
    ("sentiment", {"texts": ["x"]}, 400, '{"inputs": [...]}'),
    ("sentiment", {"inputs": "a film"}, 400, "non-empty list"),
    ("sentiment", {"inputs": []}, 400, "non-empty list"),
    ("sentiment", {"inputs": [3]}, 400, "non-empty text"),
    ("sentiment", {"inputs": ["x"] * 65}, 413, "the limit is 64"),
    ("sentiment", {"inputs": ["x" * 5001]}, 413, "the limit is 5000"),
    ("mnist", {"inputs": ["not base64!"]}, 400, "not valid base64"),
    ("mnist", {"inputs": [base64.b64encode(b"plain text").decode()]}, 400, "not an image"),
    ("tabular", {"inputs": ["1,2,3"]}, 400, "expected 9"),
    ("translation", {"inputs": ["a man"], "beam_size": 99}, 400, "beam_size"),
    ("gan", {"inputs": [12]}, 400, "digit 0-9"),
    ("imagenet", {"inputs": ["x"]}, 404, "not served"),
])
def test_predict_bad_requests_get_one_clear_message(server, task, payload, status, message):
    base, _, _ = server
    got, body = _post(base, task, payload)
    assert got == status and set(body) == {"error"}
    assert message in body["error"] and "Traceback" not in body["error"] and "\n" not in body["error"]


def test_request_body_is_bounded(server):
    """A declared body over 8 MiB is refused from its headers, before any of it is read."""
    import http.client

    base, _, _ = server
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/api/sentiment/predict")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(9 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 413 and "limit" in body["error"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: install Debian's `chromium` "
                    "package (.ci/run does) or set DLAPPS_CHROMIUM")
def test_web_app_in_chromium(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra)")
    base, _, _ = server
    png, label = _digit_png()
    digit_file = tmp_path / "digit.png"
    digit_file.write_bytes(png)
    screenshot = tmp_path / "serve.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(base + "/", wait_until="domcontentloaded", timeout=120_000)

            page.get_by_role("tab", name="sentiment").click(timeout=120_000)
            page.locator("#sentiment-text textarea").fill("a wonderful, moving and beautifully acted film")
            page.locator("#sentiment-run").click()
            label_box = page.locator("#sentiment-label")
            label_box.get_by_text("positive").first.wait_for(timeout=120_000)
            assert "positive" in label_box.locator("h2, .output-class").first.inner_text(timeout=60_000)

            page.get_by_role("tab", name="mnist").click()
            page.locator("#mnist-upload input[type=file]").set_input_files(str(digit_file))
            top = page.locator("#mnist-label h2, #mnist-label .output-class").first
            top.wait_for(timeout=120_000)
            deadline = time.monotonic() + 120
            while top.inner_text().strip() != str(label) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert top.inner_text().strip() == str(label)
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("DLAPPS_SCREENSHOT"):
        import shutil

        shutil.copy(screenshot, os.environ["DLAPPS_SCREENSHOT"])
