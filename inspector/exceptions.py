"""Errors the domain runtime raises; callers catch these, never database errors."""


class DomainError(Exception):
    """A business rule was broken; nothing was written."""


class ValidationError(DomainError):
    """Input did not validate; `errors` maps each bad field to its messages."""

    def __init__(self, errors):
        if isinstance(errors, str):
            errors = {"__all__": [errors]}
        self.errors = {field: list(messages) for field, messages in errors.items()}
        super().__init__(
            "; ".join(f"{field}: {' '.join(messages)}" for field, messages in self.errors.items())
        )


class ConcurrencyError(DomainError):
    """Someone else wrote the stream or aggregate first; reload and try again."""


class ObjectNotFound(DomainError):
    """The aggregate or message asked for does not exist."""


class ConfigurationError(Exception):
    """A domain declaration is wrong; raised at start-up, naming the class."""


class IncorrectUsageError(DomainError):
    """The runtime was used in a way it does not support."""
