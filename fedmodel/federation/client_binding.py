"""Which client id each node answers for, in one server process.

The server records privacy figures and counts spent clients by the client id
a reply names. A simulation's ids are the server's own (`metrics_problem`
refuses others); a deployment's site names its own (`--site-id`), so a node
could name a new id each round, or two nodes one id, and the figures and the
budget stop would count sites that do not exist. Within one server process a
node answers for the first id it names, and an id for the node that named it
last, unless that node is gone. Flower gives a SuperNode started again a new
node id without node authentication (a key per connection) and the same one
with it (the site's key), so a site started again keeps its id either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedmodel.federation.messages import ClientFailure

# The operator's slip that two nodes naming one client id point to, and its fix.
_SAME_SITE_ID = "two sites were started with the same --site-id (node config site-id)"
_OWN_SITE_ID = "give each site its own and start its SuperNode again"


def named_twice(client_id: int, named_by: int) -> str:
    """Why a reply naming a client another node named this round is refused."""
    return (
        f"it names client {client_id}, as node {named_by} did in this round: "
        f"{_SAME_SITE_ID}; {_OWN_SITE_ID}"
    )


def reported_before(client_id: int, before: int) -> str:
    """What a refusal adds where another node reported the client before."""
    return (
        f". Node {before} reported client {client_id} before; if it still runs, "
        f"{_SAME_SITE_ID}: {_OWN_SITE_ID}"
    )


def reported_client(reporters: dict[int, int], node: int) -> int | None:
    """The client whose recorded figures came from `node`'s reply in this process.

    `reporters` maps each client id to the node it was last recorded from.
    None where they came from none of its replies, or where it reported
    figures for more than one client.
    """
    clients = [c for c, source in reporters.items() if source == node]
    return clients[0] if len(clients) == 1 else None


@dataclass
class ClientBinding:
    """The client id each node named first, and the node each id is taken from."""

    # The first client id each node named.
    first_named: dict[int, int] = field(default_factory=dict)
    # The latest (round, node) each client id was taken from.
    taken_from: dict[int, tuple[int, int]] = field(default_factory=dict)
    # The nodes taking part as the latest round began: the SuperLink counted
    # them connected, and none was refused for good.
    connected: set[int] = field(default_factory=set)

    def refusal(
        self, server_round: int, *, node: int, client_id: int
    ) -> ClientFailure | None:
        """Why `node` may not answer for `client_id` now, or None (then it does).

        A node naming another id than its first is refused for good. So is
        one naming an id another node answered for in this round. An id
        another node answered for before is refused for this round only while
        that node takes part (`connected`): a SuperNode killed and started
        again without node authentication comes back under a new node id
        while the SuperLink counts the old one connected (about a minute,
        until its heartbeats lapse), and is taken once it does not.
        """
        first = self.first_named.setdefault(node, client_id)
        if first != client_id:
            reason = (
                f"it names client {client_id}, but it named client {first} before: "
                "a SuperNode answers for one --site-id (node config site-id) for "
                f"the whole run; start it again with --site-id {first}"
            )
            return ClientFailure(server_round, node, None, reason, True)
        taken_in, other = self.taken_from.get(client_id, (server_round, node))
        if other != node and taken_in == server_round:
            reason = named_twice(client_id, other)
            return ClientFailure(server_round, node, None, reason, True)
        if other != node and other in self.connected:
            reason = (
                f"it names client {client_id}, which node {other} answers for and "
                "which was connected as this round began: if this site's SuperNode "
                f"was started again, it is taken once node {other} is counted gone "
                f"(about a minute after it stopped); if not, {_SAME_SITE_ID}; "
                f"{_OWN_SITE_ID}"
            )
            return ClientFailure(server_round, node, None, reason, False)
        self.taken_from[client_id] = (server_round, node)
        return None
