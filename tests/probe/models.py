from django.db import models


class Seen(models.Model):
    """One row per successful handling: which handler saw which message, in commit order."""

    handler = models.CharField(max_length=100)
    message_id = models.UUIDField()
    stream = models.CharField(max_length=255)
    position = models.BigIntegerField()
    n = models.IntegerField()

    def __str__(self):
        return f"{self.handler} saw {self.stream}@{self.position}"


class Switch(models.Model):
    """A flag a test flips to make a handler fail or succeed."""

    name = models.CharField(max_length=50, primary_key=True)
    on = models.BooleanField(default=False)

    def __str__(self):
        return f"{self.name}={self.on}"
