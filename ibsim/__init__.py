"""ibsim: a local IB Gateway that speaks the TWS socket protocol (server version 176).

Unmodified ib_async connects to it and trades QQQ option spreads as IB would:
contracts, market data from a seeded price model, orders and combos with IB's
sign convention and fill rules, accounts, executions, faults and the expiry.
It is the broker of the embedded platform and of every test involving IB.

Layout: `wire` (framing, message ids), `server` (sockets, sessions, clientIds,
pacing, faults), `handlers/` (one module per request family), `market`
(price model), `instruments` (contracts, conIds, chain), `engine` (orders,
fills, accounts, expiry: pure, no sockets), `codec` (order/contract messages
mirroring ib_async's encoder and decoder), `scenario` (scripted days).
"""

SERVER_VERSION = 176
