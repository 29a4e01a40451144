"""Helpers the benchmarks share: percentiles, ratios, CPU accounting, and a throwaway
PostgreSQL cluster started the way scripts/test-all starts one."""

import contextlib
import math
import os
import resource
import sys
import uuid
from pathlib import Path

from tests.services import PostgreSQLCluster  # the scripts put the repository on sys.path


def log(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


def ratio(value, reference):
    return f"{value / reference:.2f}×" if reference else "n/a"


def percentile(ordered, p):
    """Nearest-rank percentile of an already sorted list."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


def proc_stat(pid):
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


@contextlib.contextmanager
def throwaway_cluster(settings=()):
    """A PostgreSQL cluster on 127.0.0.1 in a temporary folder (tests/services.py's, which the
    tests restart under a live page); yields (url, label, postmaster)."""
    try:
        cluster = PostgreSQLCluster(settings, prefix="bench-pg.")
    except RuntimeError as error:
        raise SystemExit(f"bench: {error}") from None
    try:
        cluster.start()
        version = cluster.version
        log(f"PostgreSQL {version} cluster on 127.0.0.1:{cluster.port} in {cluster.folder}")
        label = f"throwaway {version} cluster" + (
            f" with {', '.join(settings)}" if settings else ""
        )
        yield cluster.url, label, cluster.postmaster
    finally:
        cluster.remove()


def machine_busy_s():
    """CPU seconds all processes on the machine have used since boot (/proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid):
    """CPU seconds one running process has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def own_cpu_s():
    """CPU seconds of this process and of its children that have been waited for."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


@contextlib.contextmanager
def scratch_database(server_url, *, prefix="inspector_bench", template=None):
    """A fresh database on the server of `server_url` (a copy of `template`, which nobody may
    be connected to, if given), dropped at exit; yields its URL."""
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(server_url)
    params = {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
        "dbname": config["NAME"] or "postgres",
    }
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if "django.db" in sys.modules:  # this process's own connections go first
            from django.db import connections

            connections.close_all()
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def without_static_manifest():
    """After django.setup(): pages name their static files without the manifest's hashes, so
    a benchmark with DEBUG off needs no collectstatic."""
    from django.conf import settings

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
