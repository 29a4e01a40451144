"""How a worker leases due runs: one module per database behind `Claim` (`base.py`)."""

from inspector.runtime.databases import database
from inspector.workers.claims.base import Claim
from inspector.workers.claims.postgresql import SkipLockedClaim
from inspector.workers.claims.sqlite import WriteLockClaim

_BY_VENDOR = {"postgresql": SkipLockedClaim, "sqlite": WriteLockClaim}


def claim_for(worker, connection=None):
    """The claim of `worker` on the database behind `connection` (the default one)."""
    return _BY_VENDOR[database(connection).vendor](worker)


__all__ = ["Claim", "claim_for"]
