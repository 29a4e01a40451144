"""Inspector: a Django runtime for event-driven domain code, and the dashboard that shows it."""


def __getattr__(name):
    # Lazy (PEP 562): Django imports this package before its app registry is ready, and the
    # runtime defines models; a project's models modules import these names once it is.
    if name in ("Domain", "handle", "current_domain"):
        from inspector.runtime import domain

        return getattr(domain, name)
    raise AttributeError(name)


__all__ = ["Domain", "handle", "current_domain"]
