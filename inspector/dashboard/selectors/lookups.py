"""Text from a URL or a query string, checked before it reaches a query."""

POSITION_MAX = 2**63 - 1  # positions and global positions are 64-bit columns


def storable(text):
    """Whether a row could hold `text`: none holds NUL (the domain's fields refuse it), and
    PostgreSQL refuses a query that carries one instead of matching nothing."""
    return "\x00" not in text
