"""A 10 s node heartbeat for a test's `flower-supernode` that has this on PYTHONPATH.

A SuperLink calls a SuperNode gone once it misses two heartbeats. Flower 1.41
fixes the interval at 30 s (`HEARTBEAT_DEFAULT_INTERVAL`, no option sets it),
so a test that kills a site waited about 70 s for Flower to report it; at
10 s, the least a SuperLink accepts, about 30 s (`test_dropouts.py`). Only
the node heartbeat of the `flower-supernode` process changes (the interval it
declares and how often it sends one); its apps' heartbeats and the SuperLink
are Flower's own. Python imports this file at start-up (`site`), where an
error is printed, not raised: the line this prints is how a test knows it
took effect.
"""

import sys
from pathlib import Path

HEARTBEAT_SECONDS = 10

if Path(sys.argv[0]).name == "flower-supernode":
    from flwr.supercore import heartbeat
    from flwr.supernode import fleet_http_connection

    modules = (heartbeat, fleet_http_connection)
    if all(hasattr(m, "HEARTBEAT_DEFAULT_INTERVAL") for m in modules):
        for module in modules:
            module.HEARTBEAT_DEFAULT_INTERVAL = HEARTBEAT_SECONDS
        print(f"test SuperNode: node heartbeat {HEARTBEAT_SECONDS} s", file=sys.stderr)
