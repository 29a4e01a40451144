"""The warehouse: the domain the inspector's own tests run on (the Event Handlers guide's)."""

from inspector import Domain

domain = Domain("warehouse")
