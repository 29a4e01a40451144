"""Query-string values the pages share."""


def int_param(request, name, default):
    """A keyset cursor from the query string; anything that is not an integer starts over."""
    try:
        return int(request.GET.get(name, default))
    except (TypeError, ValueError):
        return default
