"""One error format and one set of exit codes for every command.

Exit codes: 0 done; 1 a finding (a flagged privacy plan, an audit bound above
the claim); 2 a user error (bad input or config), reported on one line as
`fedmodel <command>: error: <message>` without a traceback, as argparse does;
130 a simulation (`simulate`, `resume`) stopped by Ctrl-C (128 + SIGINT, as
shells count it), 143 one stopped by SIGTERM (128 + SIGTERM).

`superlink` and `supernode` become Flower's own process once their checks
pass (`deploy/launch.py`), so from then on Flower's codes are theirs: 1 an
error Flower reports (`Exit Code: NNN` in its log); at Ctrl-C 0; at SIGTERM
(`systemctl stop`, `kill PID`) 0 for a SuperNode, while a SuperLink ends
killed by the signal, which a shell reports as 143 and systemd as a clean stop.
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
# The names the two run commands give their lines: a stopped run's line
# (interrupted.py) names both, whichever of them it stopped.
SIMULATE_PROG = "fedmodel simulate"
RESUME_PROG = "fedmodel resume"


def report_error(prog: str, message: str) -> None:
    """Print a user error in the shared one-line format."""
    print(f"{prog}: error: {message}", file=sys.stderr)
