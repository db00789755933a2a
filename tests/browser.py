"""A headless Chromium driven through the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in a NUL byte on file
descriptors 3 and 4), with nothing but the standard library: tests open a
page and evaluate JavaScript in it."""

import json
import os
import select
import shutil
import subprocess
import tempfile
import time

CHROMIUM = next(
    (
        path
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (path := shutil.which(name))
    ),
    None,
)


class Browser:
    """One headless Chromium showing ``url``; ``evaluate`` runs JavaScript
    in the page and returns its (awaited) value."""

    def __init__(self, url, timeout=60):
        self.profile = tempfile.mkdtemp(prefix="gmsep-chromium-")
        commands, self._commands = os.pipe()
        self._replies, replies = os.pipe()

        def on_fds_3_and_4():
            # duplicated first: the pipe's own fds may be 3 or 4
            read, write = os.dup(commands), os.dup(replies)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",  # tests may run as root
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-pipe",
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
                "about:blank",
            ],
            preexec_fn=on_fds_3_and_4,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands)
        os.close(replies)
        self.timeout, self._buffer, self._id = timeout, b"", 0
        self.session = self._attach()
        self._open(url)

    def _send(self, method, params=None, session=None):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise TimeoutError(f"{method}: no reply in {self.timeout} s")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium exited")
            self._buffer += chunk

    def _attach(self):
        for _ in range(100):
            targets = self._send("Target.getTargets")["targetInfos"]
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("chromium opened no page")
        attached = self._send(
            "Target.attachToTarget",
            {"targetId": pages[0]["targetId"], "flatten": True},
        )
        return attached["sessionId"]

    def _open(self, url):
        """Navigates to url and waits until its document has loaded."""
        self._send("Page.navigate", {"url": url}, self.session)
        deadline = time.monotonic() + self.timeout
        loaded = "document.readyState === 'complete' && location.href"
        while self.evaluate(loaded) != url:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: not loaded in {self.timeout} s")
            time.sleep(0.05)

    def evaluate(self, expression):
        """The value of a JavaScript expression (a promise is awaited)."""
        result = self._send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
            },
            self.session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
