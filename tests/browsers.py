"""What the browser tests share: Debian's Chromium with the arguments it runs with here, a
guard that records console errors and failed requests on every page, and axe-core's WCAG 2
A/AA check (the shop's tests in tests/browser, the inspector's own in tests/inspector)."""

import re
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@dataclass(frozen=True)
class Problem:
    kind: str  # "console", "pageerror", "requestfailed" or "response"
    text: str
    url: str = ""
    status: int | None = None

    def __str__(self):
        return f"{self.kind}: {self.text}"


class BrowserProblems:
    """What a clean browser console rules out, on every page of a test's browser: console
    errors, uncaught exceptions, failed requests and responses with an error status.

    A test that provokes one on purpose (a 404 page, a 422 form answer) says so first with
    `expect(status, url_pattern)`; a missing expected one is not an error.
    """

    def __init__(self):
        self.seen = []
        self.expected = []

    def expect(self, status, url_pattern):
        """Allow responses with `status` for URLs matching `url_pattern` (a regex searched
        for in the URL), and the console error Chromium logs for each."""
        self.expected.append((status, re.compile(url_pattern)))

    def watch(self, page):
        def on_console(message):
            if message.type == "error":
                url = (message.location or {}).get("url", "")
                self.seen.append(Problem("console", f"{message.text} (on {page.url})", url))

        def on_response(response):
            if response.status >= 400:
                text = f"{response.status} for {response.request.method} {response.url}"
                self.seen.append(Problem("response", text, response.url, response.status))

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.seen.append(Problem("pageerror", str(error))))

        def on_request_failed(request):
            # Chromium reports loads the page itself cancelled (it navigated away while an
            # icon was loading) as ERR_ABORTED: no server or network failed them.
            if request.failure == "net::ERR_ABORTED":
                return
            text = f"{request.method} {request.url}: {request.failure}"
            self.seen.append(Problem("requestfailed", text, request.url))

        page.on("requestfailed", on_request_failed)
        page.on("response", on_response)

    def _is_expected(self, problem):
        for status, pattern in self.expected:
            if not pattern.search(problem.url):
                continue
            if problem.status == status or (
                problem.kind == "console" and f"status of {status}" in problem.text
            ):
                return True
        return False

    def unexpected(self):
        return [problem for problem in self.seen if not self._is_expected(problem)]


def accessibility_violations(axe, page, label):
    """axe-core's WCAG 2 A/AA violations on `page` as it is now, one line each, named by
    `label` (`axe`: an `axe_playwright_python.sync_playwright.Axe`)."""
    results = axe.run(
        page, options={"runOnly": {"type": "tag", "values": WCAG}, "resultTypes": ["violations"]}
    )
    found = []
    for violation in results.response["violations"]:
        targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
        more = len(violation["nodes"]) - 5
        found.append(
            f"{label}: {violation['id']} ({violation['impact']}) on {targets}"
            + (f" and {more} more" if more > 0 else "")
        )
    return found
