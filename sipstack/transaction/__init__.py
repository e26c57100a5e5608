"""
SIP transactions (RFC 3261 section 17, corrected by RFC 6026): the four state
machines, the keys that match messages to them, and the interfaces they call
out through.

Everything here is sans-IO: a transaction is driven by the messages, timer
firings and transport failures it is given, runs its timers on an injected
L{sipstack.clock.Clock}, and sends through a L{TransactionTransport}.  The
L{TransactionManager} holds the tables of transactions and matches every
received message to one, reporting one event per message.
"""

from sipstack.transaction.client import (
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
    build_non_2xx_ack,
)
from sipstack.transaction.events import (
    Absorbed,
    AckReceived,
    CancelReceived,
    ClientTransactionUser,
    MergedRequest,
    RequestOutcome,
    RequestReceived,
    ResponseOutcome,
    ServerTransactionUser,
    StrayResponse,
    TransactionTransport,
)
from sipstack.transaction.manager import TransactionManager, build_cancel
from sipstack.transaction.server import InviteServerTransaction, NonInviteServerTransaction, ServerTransaction
from sipstack.transaction.states import (
    BRANCH_COOKIE,
    TransactionKey,
    TransactionState,
    cancel_target_key,
    client_key,
    client_key_for_response,
    server_key,
)

__all__ = [
    "TransactionState",
    "TransactionKey",
    "BRANCH_COOKIE",
    "server_key",
    "cancel_target_key",
    "client_key",
    "client_key_for_response",
    "TransactionTransport",
    "ClientTransactionUser",
    "ServerTransactionUser",
    "ClientTransaction",
    "InviteClientTransaction",
    "NonInviteClientTransaction",
    "build_non_2xx_ack",
    "ServerTransaction",
    "InviteServerTransaction",
    "NonInviteServerTransaction",
    "TransactionManager",
    "build_cancel",
    "RequestReceived",
    "CancelReceived",
    "MergedRequest",
    "AckReceived",
    "Absorbed",
    "StrayResponse",
    "RequestOutcome",
    "ResponseOutcome",
]
