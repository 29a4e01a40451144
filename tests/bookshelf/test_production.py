"""The production run as the README describes it: `check --deploy` on the README's variables,
and a daphne with DEBUG off, after collectstatic, answering real HTTP and websocket requests."""

import http.client
import os
import re
import secrets
import subprocess
import sys
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from tests.processes import on_test_database
from tests.sockets import LiveClient, daphne

ROOT = Path(__file__).resolve().parents[2]
TEN_YEARS = "max-age=315360000"


def readme_production_variables():
    """The `.env` block of the README's "Run in production" section, as a dict."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run in production", 1)[1]
    block = re.search(r"```sh\n# \.env\n(.*?)```", section, re.DOTALL).group(1)
    return dict(re.findall(r"^([A-Z_]+)=(\S*)", block, re.MULTILINE))


def production_environment(**variables):
    """The test's environment with the bookshelf's own settings (not the test settings) and
    DEBUG off; the secret key is a fresh one, as the README asks."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "INSPECTOR_", "PYTEST_"))
    }
    env.update(DJANGO_SETTINGS_MODULE="bookshelf.settings", DJANGO_DEBUG="0")
    env.update(variables)
    env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing_with_the_readme_production_variables():
    variables = readme_production_variables()
    assert variables["DJANGO_DEBUG"] == "0"
    assert "DJANGO_SECRET_KEY" in variables  # replaced by a fresh one, as the README says

    result = manage(
        production_environment(**variables), "check", "--deploy", "--fail-level", "WARNING"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout + result.stderr
    assert "WARNING" not in result.stderr


def test_debug_serves_static_files_and_the_favicon_without_collectstatic(client):
    """`make run`'s way (DEBUG on): whitenoise finds the files in the apps, nothing collected."""
    css = client.get("/static/inspector/layout.css")
    assert css.status_code == 200
    assert css["Content-Type"].startswith("text/css")
    assert b".site-header" in b"".join(css.streaming_content)
    htmx = client.get("/static/django_htmx/htmx-2.min.js")
    assert htmx.status_code == 200
    assert b"htmx" in b"".join(htmx.streaming_content)

    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/x-icon"
    assert b"".join(icon.streaming_content) == (ROOT / "public" / "favicon.ico").read_bytes()


class Site:
    """Plain HTTP to one daphne, as a TLS-terminating proxy in front of it would speak:
    every request says `X-Forwarded-Proto: https` unless `proxied=False`."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    @property
    def origin(self):
        return f"https://127.0.0.1:{self.port}"

    def request(self, path, *, method="GET", form=None, headers=(), proxied=True):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = {"Host": f"127.0.0.1:{self.port}", **dict(headers)}
        if proxied:
            sent["X-Forwarded-Proto"] = "https"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            response.content = response.read()
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response


@pytest.fixture
def production_site(tmp_path, transactional_db):
    """daphne on the bookshelf's production settings (DEBUG off, HTTPS only: SSL redirect,
    secure cookies, HSTS) over the test database, after collectstatic into a temporary folder,
    with a staff user made by `createsuperuser --noinput`, as the README's one-off steps say.

    It speaks plain HTTP: the test plays the TLS-terminating proxy and sends
    X-Forwarded-Proto: https, which DJANGO_SECURE_PROXY_SSL_HEADER makes Django trust; that
    is the README's set-up, so the test runs the same settings a deployment does instead of
    turning the HTTPS settings off."""
    env = production_environment(
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO",
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        INSPECTOR_EMBEDDED_WORKER="0",
        DJANGO_SUPERUSER_PASSWORD="correct horse battery",
    )
    on_test_database(env)
    for step in (
        ["collectstatic", "--noinput"],
        ["createsuperuser", "--noinput", "--username", "grace", "--email", "grace@example.com"],
    ):
        result = manage(env, *step)
        assert result.returncode == 0, result.stdout + result.stderr

    log = tmp_path / "daphne.log"
    with daphne("bookshelf.asgi:application", env=env, log=log, cwd=ROOT) as (port, _):
        yield Site(port)


def log_in(site, username, password, next_url):
    """The admin's login form, posted as a browser does: its CSRF token and cookie."""
    form = site.request(f"/admin/login/?next={next_url}")
    assert form.status == 200, form.content[:500]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.content).group(1)
    return site.request(
        "/admin/login/",
        method="POST",
        form={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token.decode(),
            "next": next_url,
        },
        headers={"Origin": site.origin, "Referer": f"{site.origin}/admin/login/"},
    )


def static_urls(html):
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_production_daphne_serves_pages_static_files_health_and_the_live_feed(production_site):
    site = production_site

    # Without the proxy's word that the request came over HTTPS: a redirect to https://,
    # except for the load balancer's health check and the metrics scrape.
    plain = site.request("/inspector/", proxied=False)
    assert plain.status == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{site.port}/inspector/"
    health = site.request("/healthz", proxied=False)
    assert (health.status, health.content) == (200, b"ok")
    assert site.request("/metrics", proxied=False).status == 401  # answered, not redirected

    login = log_in(site, "grace", "correct horse battery", "/inspector/")
    assert login.status == 302, login.content[:1000]
    assert login.headers["Location"] == "/inspector/"
    session_cookie = next(
        h for h in login.headers.get_all("Set-Cookie") if h.startswith("sessionid=")
    )
    assert "Secure" in session_cookie
    assert "HttpOnly" in session_cookie

    page = site.request("/inspector/")
    assert page.status == 200
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    html = page.content.decode()
    assert 'id="feed-status"' in html

    # Every stylesheet, script and icon the page links: hashed names from the manifest,
    # served by whitenoise with a ten-year, immutable Cache-Control and a gzip copy.
    urls = static_urls(html)
    hashed = re.compile(r"\.[0-9a-f]{12}\.(css|js|svg)$")
    assert any(u.startswith("/static/django_htmx/htmx-2.min.") for u in urls), urls
    assert any(u.startswith("/static/inspector/layout.") and u.endswith(".css") for u in urls)
    assert any(u.startswith("/static/bookshelf/icon.") for u in urls), urls
    for url in urls:
        assert hashed.search(url), url
        asset = site.request(url, headers={"Accept-Encoding": "gzip"})
        assert asset.status == 200, url
        assert TEN_YEARS in asset.headers["Cache-Control"], (url, asset.headers)
        assert "immutable" in asset.headers["Cache-Control"], url
        assert asset.headers["Content-Encoding"] == "gzip", url
        kind = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}
        assert asset.headers["Content-Type"].startswith(kind[hashed.search(url).group(1)]), url

    icon = site.request("/favicon.ico")
    assert icon.status == 200
    assert icon.headers["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert icon.content == (ROOT / "public" / "favicon.ico").read_bytes()

    # The live page's websocket: refused without the session, "Live" with it.
    feed = f"ws://127.0.0.1:{site.port}/ws/inspector/feed/"
    origin = f"http://127.0.0.1:{site.port}"
    refused = LiveClient(feed, cookie=b"", origin=origin, cwd=ROOT)
    refused.process.wait(10)
    refused.close()
    assert refused.closes
    assert not refused.opened
    live = LiveClient(
        feed, cookie=f"sessionid={site.cookies['sessionid']}".encode(), origin=origin, cwd=ROOT
    )
    try:
        live.wait_for(lambda text: ">Live</p>" in text)
        assert '<p id="feed-status"' in live.text
        assert live.opened == 1
        assert not live.closes
    finally:
        live.close()
