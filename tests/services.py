"""Real servers the tests and the benchmarks start for themselves: a free port to put one on,
and a throwaway PostgreSQL cluster (started the way scripts/test-all starts one).

Plain Python with no Django import: the benchmarks import it as scripts (bench/benchlib.py),
before any settings exist."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgresql_binaries():
    """The newest Debian server binaries (as scripts/test-all finds them), else those on PATH,
    else None."""
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
    return None


class PostgreSQLCluster:
    """A throwaway cluster on 127.0.0.1 in a folder of its own under the system's temporary
    folder, stopped and started at will. Run as `postgres` when the tests run as root:
    PostgreSQL refuses root, and `postgres` cannot enter pytest's folders. `settings` are
    postgresql.conf lines added to the cluster's own (tests add `fsync = off`; the benchmarks
    do not, their figures are of a durable server)."""

    def __init__(self, settings=(), *, prefix="inspector-pg."):
        self.binaries = postgresql_binaries()
        if self.binaries is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        folder = self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        self.settings = tuple(settings)
        self.port = free_port()
        self.data = folder / "pgdata"
        self.log = folder / "postgres.log"
        self.prefix = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres").pw_name
            except KeyError:
                user = "nobody"
            shutil.chown(folder, user)
            folder.chmod(0o700)
            self.prefix = ["runuser", "-u", user, "--"]
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool, *args):
        command = [*self.prefix, str(self.binaries / tool), *map(str, args)]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=90)
        if done.returncode:
            raise RuntimeError(f"{tool} failed:\n{done.stdout}{done.stderr}")

    def start(self):
        """Make the cluster and start it."""
        initdb = ["-D", self.data, "-N", "--auth=trust", "-U", "postgres", "--encoding=UTF8"]
        self.run("initdb", *initdb, "--locale=C.UTF-8")

        lines = [
            "",
            "# a throwaway cluster",
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.folder}'",
            *self.settings,
        ]
        with (self.data / "postgresql.conf").open("a") as conf:  # root may append; owner stays
            conf.write("\n".join(lines) + "\n")
        self.pg_ctl("start")

    def pg_ctl(self, *args):
        """`pg_ctl start`, `stop -m fast`, `restart`...: waits until it is done."""
        self.run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", *args)

    @property
    def postmaster(self):
        return int((self.data / "postmaster.pid").read_text().split()[0])

    @property
    def version(self):
        done = subprocess.run(
            [self.binaries / "postgres", "--version"], capture_output=True, text=True
        )
        return done.stdout.split()[2]

    def remove(self):
        """Stop the cluster if it runs and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            try:
                self.pg_ctl("stop", "-m", "fast")
            except RuntimeError:
                self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
