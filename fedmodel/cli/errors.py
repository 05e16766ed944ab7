"""One error format and one set of exit codes for every command.

Exit codes: 0 done; 1 a finding (a flagged privacy plan, an audit bound above
the claim); 2 a user error (bad input or config), reported on one line as
`fedmodel <command>: error: <message>` without a traceback, as argparse does;
130 a simulation stopped by Ctrl-C (128 + SIGINT, as shells count it), 143 one
stopped by SIGTERM (128 + SIGTERM).
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
