"""Inspector: a Django runtime for event-driven domain code, and the dashboard that shows it."""


def __getattr__(name):
    # Lazy, so `from inspector import Domain` works from models modules while apps load.
    if name in ("Domain", "handle", "current_domain"):
        from inspector.runtime import domain

        return getattr(domain, name)
    raise AttributeError(name)


__all__ = ["Domain", "handle", "current_domain"]
