"""How a measurement ended: the statuses of every record and table row.

One module, so that the launchers, the records, the tables, `compare` and
the command line read the same names.
"""

from __future__ import annotations

OK = "ok"
NOISY = "noisy"  # measured while the machine was disturbed or slowed, and not remeasured clean
OUT_OF_MEMORY = "out_of_memory"
ERROR = "error"
INVALID = "invalid"  # a serving run MLPerf's LoadGen judged INVALID (its reasons are in the row)

STATUSES = (OK, NOISY, OUT_OF_MEMORY, ERROR, INVALID)
TRUSTED = (OK,)  # statuses whose numbers compare and speed-ups may use
FAILED = (OUT_OF_MEMORY, ERROR)  # no numbers: the point is to be measured again
