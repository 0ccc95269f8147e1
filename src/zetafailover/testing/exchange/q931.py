"""Q.931 message types, user-side call states and Q.850 cause values, as the simulated exchange and cards use them.

Message codes are those of libpri's ``pri_q931.h``; the cause texts follow Q.850. Only the values the simulator
produces or a driver must understand are listed.
"""

from __future__ import annotations

import enum

__all__ = ["RETRYABLE_CAUSES", "CallState", "Cause", "Message", "cause_text"]


class Message(enum.IntEnum):
    """Q.931 message types (the byte in the message-type octet)."""

    ALERTING = 0x01
    CALL_PROCEEDING = 0x02
    SETUP = 0x05
    CONNECT = 0x07
    CONNECT_ACKNOWLEDGE = 0x0F
    DISCONNECT = 0x45
    RELEASE = 0x4D
    RELEASE_COMPLETE = 0x5A


class CallState(enum.StrEnum):
    """User-side call states (Q.931 U-states, libpri's names)."""

    NULL = "U0 null"
    CALL_INITIATED = "U1 call initiated"
    OUTGOING_PROCEEDING = "U3 outgoing call proceeding"
    CALL_DELIVERED = "U4 call delivered"
    CALL_PRESENT = "U6 call present"
    CALL_RECEIVED = "U7 call received"
    CONNECT_REQUEST = "U8 connect request"
    INCOMING_PROCEEDING = "U9 incoming call proceeding"
    ACTIVE = "U10 active"
    DISCONNECT_REQUEST = "U11 disconnect request"
    DISCONNECT_INDICATION = "U12 disconnect indication"
    RELEASE_REQUEST = "U19 release request"


class Cause(enum.IntEnum):
    """Q.850 cause values."""

    UNALLOCATED_NUMBER = 1
    NO_ROUTE = 3
    NORMAL_CLEARING = 16
    USER_BUSY = 17
    NO_USER_RESPONDING = 18
    NO_ANSWER = 19
    CALL_REJECTED = 21
    NON_SELECTED_USER_CLEARING = 26
    DESTINATION_OUT_OF_ORDER = 27
    INVALID_NUMBER_FORMAT = 28
    NORMAL_UNSPECIFIED = 31
    NO_CIRCUIT_AVAILABLE = 34
    NETWORK_OUT_OF_ORDER = 38
    TEMPORARY_FAILURE = 41
    SWITCHING_CONGESTION = 42
    RECOVERY_ON_TIMER_EXPIRY = 102


_TEXT = {
    1: "unallocated number",
    3: "no route to destination",
    16: "normal clearing",
    17: "user busy",
    18: "no user responding",
    19: "no answer from user",
    21: "call rejected",
    26: "non-selected user clearing",
    27: "destination out of order",
    28: "invalid number format",
    31: "normal, unspecified",
    34: "no circuit/channel available",
    38: "network out of order",
    41: "temporary failure",
    42: "switching equipment congestion",
    102: "recovery on timer expiry",
}

RETRYABLE_CAUSES = frozenset({16, 17, 18, 19, 26, 27, 31, 34, 38, 41, 42, 102})
"""Causes after which a fax job is tried again later; the others (unallocated number, rejected, invalid number
format…) will not change by retrying and fail the job."""


def cause_text(cause: int) -> str:
    """``"Q.931 cause 17 (user busy)"`` — the wording that goes into a job's history."""
    return f"Q.931 cause {cause} ({_TEXT.get(cause, 'unknown cause')})"
