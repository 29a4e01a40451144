"""An outage is told once each way, however many loops of the process meet it."""

import logging
import time

from inspector.runtime.connections import Outage


def test_a_connection_the_outage_cut_met_just_after_it_ended_is_no_second_outage(caplog):
    outage = Outage("The database", "retrying", log=logging.getLogger("test.outage"))
    outage.AFTERMATH_SECONDS = 0.3
    with caplog.at_level(logging.INFO, logger="test.outage"):
        outage.went_away(OSError("cut"))
        outage.went_away(OSError("cut, seen by another loop"))  # the same outage
        outage.is_back()
        outage.went_away(OSError("terminating connection"))  # a leftover, read late
        assert not outage.down and outage.count == 1
        time.sleep(0.35)
        outage.went_away(OSError("refused"))  # after the aftermath: a new outage
        outage.is_back()
    lines = [record.getMessage() for record in caplog.records]
    assert [line.split(" (")[0] for line in lines] == [
        "The database went away",
        "The database is back",
        "The database went away",
        "The database is back",
    ]
    assert outage.count == 2
