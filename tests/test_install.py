"""`pip install .` gives a host project a working Inspector.

Builds the wheel from a clean copy of this repository, checks what it ships, installs it into
a fresh virtualenv (the suite's own dependencies made visible to it, offline, but never this
repository), makes a `django-admin startproject mysite` project, applies the README section
"Add Inspector to your Django project" block by block, runs a command through the warehouse
domain the README declares, and opens the staff pages as a logged-in superuser.

Everything runs in subprocesses under `tmp_path`; no database fixture is used.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_SECTION = "## Add Inspector to your Django project"

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        bool(os.environ.get("DATABASE_URL")),
        reason="installs into a fresh SQLite project; the SQLite run of the suite covers it",
    ),
]


def run(args, *, cwd, env=None, timeout=120):
    """Run a command; fail the test with its output when it does not exit 0."""
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {done.returncode} in {cwd}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    return done.stdout


def source_files(root):
    """The repository's files as a clean checkout would have them, plus new untracked ones:
    no build/, *.egg-info, virtualenv or caches (a stale build/lib would leak into the wheel)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        skipped = {".git", ".venv", "build", "dist", "__pycache__", ".ruff_cache", ".pytest_cache"}
        return [
            path.relative_to(root)
            for path in root.rglob("*")
            if path.is_file()
            and not skipped.intersection(path.relative_to(root).parts)
            and not any(part.endswith(".egg-info") for part in path.parts)
            and not path.name.startswith("db.sqlite3")
        ]
    return [Path(name) for name in listed.split("\0") if name and (root / name).is_file()]


def build_wheel(tmp_path):
    src = tmp_path / "src"
    for relative in source_files(REPO):
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, src / relative)
    wheels = tmp_path / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--disable-pip-version-check", "-w", wheels, src],
        cwd=tmp_path,
        timeout=180,
    )
    (wheel,) = wheels.glob("inspector-*.whl")
    return src, wheel


def check_wheel_contents(src, wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata_name).decode()

    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"inspector", metadata_name.split("/", 1)[0]}, sorted(top_level)
    assert not [n for n in names if n.startswith(("bookshelf/", "tests/", "bench/"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    # Every module, template, static file and migration of the app, whatever the folder.
    shipped = {
        path.relative_to(src).as_posix()
        for path in (src / "inspector").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert shipped - names == set(), f"left out of the wheel: {sorted(shipped - names)}"
    for expected in (
        "inspector/templates/inspector/base.html",
        "inspector/templates/inspector/live.html",
        "inspector/templates/inspector/message-detail.html",
        "inspector/templates/admin/inspector/handlerrun/action-confirmation.html",
        "inspector/static/inspector/inspector.css",
        "inspector/static/inspector/live.js",
        "inspector/migrations/__init__.py",
        "inspector/migrations/0001_initial.py",
        "inspector/management/commands/run_handlers.py",
    ):
        assert expected in names
    for requirement in ("Django", "channels", "django-htmx", "prometheus-client"):
        assert re.search(rf"^Requires-Dist: {requirement}\b", metadata, re.M | re.I), requirement
    assert re.search(r"^Provides-Extra: postgres$", metadata, re.M)
    assert re.search(r"^Provides-Extra: redis$", metadata, re.M)


def make_venv(tmp_path, wheel):
    """A fresh virtualenv holding only the wheel; the suite's installed packages (Django,
    Channels, daphne...) are visible through a .pth file, so nothing is downloaded."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)  # pip is ours
    python = venv / "bin" / "python"
    site_packages = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=venv
        ).strip()
    )
    host_paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    assert str(REPO) not in host_paths
    (site_packages / "_suite_dependencies.pth").write_text("".join(f"{p}\n" for p in host_paths))
    run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index"]
        + ["--disable-pip-version-check", wheel],
        cwd=tmp_path,
    )
    return python, site_packages


def readme_blocks():
    """(file, code) for each ```python block of the README's install section, in order."""
    text = (REPO / "README.md").read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    section = text[start : end if end != -1 else len(text)]
    blocks = []
    for code in re.findall(r"^```python\n(.*?)^```$", section, re.M | re.S):
        first_line = code.split("\n", 1)[0]
        match = re.fullmatch(r"# ([\w./-]+\.py)", first_line)
        assert match, f"a python block of the README must start with `# <file>`: {first_line!r}"
        assert ".." not in Path(match[1]).parts
        blocks.append((match[1], code))
    return blocks


SCRIPT = textwrap.dedent(
    """
    import asyncio
    import json

    import django

    django.setup()

    from django.test.utils import setup_test_environment

    setup_test_environment()  # "testserver" in ALLOWED_HOSTS, for the test client

    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    import inspector
    from inspector.models import HandlerRun, Message
    from mysite.asgi import application
    from warehouse.commands import PlaceOrder, ShipOrder
    from warehouse.domain import domain
    from warehouse.models import Inventory, Notification, Order

    domain.repository_for(Inventory).add(Inventory(book_id="1", in_stock=100))
    order_id = domain.process(PlaceOrder(book_id="1", quantity=10))
    domain.process(ShipOrder(order_id=order_id))
    shipped = Message.objects.get(type="warehouse.OrderShipped.v1")

    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "not-used")
    client = Client()
    client.force_login(staff)


    def page(url):
        response = client.get(url)
        return {"url": url, "status": response.status_code, "text": response.content.decode()}


    async def websocket():
        communicator = WebsocketCommunicator(
            application,
            "/ws/inspector/feed/",
            headers=[
                (b"origin", b"http://testserver"),
                (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
            ],
        )
        connected, _ = await communicator.connect(timeout=10)
        await communicator.disconnect()
        return connected


    result = {
        "inspector_file": inspector.__file__,
        "in_stock": Inventory.objects.get(book_id="1").in_stock,
        "shipped": Order.objects.get(pk=order_id).shipped,
        "notifications": list(Notification.objects.values_list("text", flat=True)),
        "message_types": sorted(set(Message.objects.values_list("type", flat=True))),
        "runs": sorted([r.handler, r.message_type, r.status] for r in HandlerRun.objects.all()),
        "pages": {
            name: page(url)
            for name, url in {
                "live": reverse("inspector:live"),
                "message": reverse("inspector:message", kwargs={"message_id": shipped.id}),
                "handlers": reverse("inspector:handlers"),
                "metrics": "/metrics",
                "healthz": "/healthz",
            }.items()
        },
        "anonymous_live": Client().get(reverse("inspector:live")).status_code,
        "websocket_connected": asyncio.run(websocket()),
    }
    print("RESULT " + json.dumps(result))
    """
)


def test_the_wheel_installs_into_a_fresh_project(tmp_path):
    src, wheel = build_wheel(tmp_path)
    check_wheel_contents(src, wheel)

    python, site_packages = make_venv(tmp_path, wheel)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
        and not key.startswith(("INSPECTOR_", "DJANGO_"))
    }
    work = tmp_path / "work"  # never the repository, so it is not on sys.path
    work.mkdir()
    located = run(
        [python, "-c", "import inspector; print(inspector.__file__)"], cwd=work, env=env
    ).strip()
    assert Path(located).resolve() == (site_packages / "inspector" / "__init__.py").resolve()
    probe = "import importlib.util as u; print(u.find_spec('bookshelf'), u.find_spec('tests'))"
    assert run([python, "-c", probe], cwd=work, env=env).split() == ["None", "None"]

    run([python, "-m", "django", "startproject", "mysite"], cwd=work, env=env)
    project = work / "mysite"
    (project / "warehouse").mkdir()
    (project / "warehouse" / "__init__.py").write_text("")
    blocks = readme_blocks()
    files = [name for name, _ in blocks]
    assert {"mysite/settings.py", "mysite/urls.py", "mysite/asgi.py"} <= set(files), files
    for name, code in blocks:
        with open(project / name, "a") as target:
            target.write("\n\n" + code)

    env["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
    manage = [python, "manage.py"]
    run([*manage, "check", "--fail-level", "WARNING"], cwd=project, env=env)
    run([*manage, "makemigrations", "warehouse"], cwd=project, env=env)
    run([*manage, "migrate", "--noinput"], cwd=project, env=env)
    (project / "exercise.py").write_text(SCRIPT)
    output = run([python, "exercise.py"], cwd=project, env=env)
    result = json.loads(output.split("RESULT ", 1)[1])
    # A worker started in the host project drains what is due (nothing: processing is sync).
    run([*manage, "run_handlers", "--batch"], cwd=project, env=env, timeout=60)

    assert Path(result["inspector_file"]).is_relative_to(site_packages)
    assert result["in_stock"] == 90
    assert result["shipped"] is True
    assert result["notifications"] == ["Your order is on its way"]
    assert result["message_types"] == [
        "warehouse.OrderPlaced.v1",
        "warehouse.OrderShipped.v1",
        "warehouse.PlaceOrder.v1",
        "warehouse.ShipOrder.v1",
    ]
    runs = {(handler, message_type): status for handler, message_type, status in result["runs"]}
    assert runs == {
        ("warehouse.OrderCommandHandler", "warehouse.PlaceOrder.v1"): "succeeded",
        ("warehouse.OrderCommandHandler", "warehouse.ShipOrder.v1"): "succeeded",
        ("warehouse.InventoryEventHandler", "warehouse.OrderShipped.v1"): "succeeded",
        ("warehouse.ShippingNotifications", "warehouse.OrderShipped.v1"): "succeeded",
    }

    pages = result["pages"]
    for name, page in pages.items():
        assert page["status"] == 200, f"{name} {page['url']}: {page['status']}\n{page['text']}"
    assert "OrderShipped" in pages["live"]["text"]
    message = pages["message"]["text"]
    assert "<svg" in message
    for name in ("OrderShipped", "InventoryEventHandler", "ShippingNotifications"):
        assert name in message, name
    for name in ("InventoryEventHandler", "ShippingNotifications"):
        assert name in pages["handlers"]["text"], name
    assert "inspector_messages_appended" in pages["metrics"]["text"]
    assert pages["healthz"]["text"].startswith("ok")
    assert result["anonymous_live"] == 302  # to the admin's login
    assert result["websocket_connected"] is True
