"""Helpers the benchmarks share: percentiles, ratios, free ports, CPU accounting, and a
throwaway PostgreSQL cluster started the way scripts/test-all starts one."""

import contextlib
import math
import os
import pwd
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path


def log(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


def ratio(value, reference):
    return f"{value / reference:.2f}×" if reference else "n/a"


def percentile(ordered, p):
    """Nearest-rank percentile of an already sorted list."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_stat(pid):
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def pg_bin():
    """The newest Debian server binaries, as scripts/test-all finds them, else PATH."""
    found = [
        d
        for d in Path("/usr/lib/postgresql").glob("*/bin")
        if d.parent.name.isdigit() and (d / "initdb").exists() and (d / "pg_ctl").exists()
    ]
    if found:
        return max(found, key=lambda d: int(d.parent.name))
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise SystemExit("bench: PostgreSQL server binaries (initdb, pg_ctl) not found")


@contextlib.contextmanager
def throwaway_cluster(settings=()):
    """A PostgreSQL cluster on 127.0.0.1 in a temporary folder; yields (url, label, postmaster)."""
    bindir = pg_bin()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pg."))
    pgdata, sock, pglog = tmp / "pgdata", tmp / "pgsock", tmp / "postgres.log"
    prefix = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            user = "nobody"
        shutil.chown(tmp, user)
        tmp.chmod(0o700)
        prefix = ["runuser", "-u", user, "--"]

    def pg_ctl(*args, check=True):
        cmd = [*prefix, str(bindir / "pg_ctl"), "-D", str(pgdata), *map(str, args)]
        return subprocess.run(cmd, cwd=tmp, check=check, capture_output=True)

    started = False
    try:
        port = free_port()
        subprocess.run([*prefix, "mkdir", "-p", str(sock)], cwd=tmp, check=True)
        initdb = [str(bindir / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres"]
        initdb += ["--encoding=UTF8", "--locale=C.UTF-8"]
        subprocess.run([*prefix, *initdb], cwd=tmp, check=True, capture_output=True)
        conf = [
            "",
            "# bench: throwaway cluster",
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{sock}'",
            *settings,
        ]
        with (pgdata / "postgresql.conf").open("a") as handle:  # root may append; owner stays
            handle.write("\n".join(conf) + "\n")
        started = True
        pg_ctl("-l", pglog, "-w", "-t", "60", "start")
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        version = subprocess.run(
            [bindir / "postgres", "--version"], capture_output=True, text=True
        ).stdout.split()[2]
        log(f"PostgreSQL {version} cluster on 127.0.0.1:{port} in {tmp}")
        label = f"throwaway {version} cluster" + (
            f" with {', '.join(settings)}" if settings else ""
        )
        yield f"postgres://postgres@127.0.0.1:{port}/postgres", label, postmaster
    finally:
        if started and pg_ctl("-m", "fast", "-t", "30", "stop", check=False).returncode:
            pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(tmp, ignore_errors=True)


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
def scratch_database(server_url, *, prefix="inspector_bench"):
    """A fresh database on the server of `server_url`, dropped at exit; yields its URL."""
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
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if "django.db" in sys.modules:  # this process's own connections go first
            from django.db import connections

            connections.close_all()
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
