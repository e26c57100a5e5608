"""
Dialogs (RFC 3261 section 12): the state two user agents share for the
length of a call or subscription, and the requests built within it.

Sans-IO: no Twisted, no I/O; the stack sends what a L{Dialog} builds.
"""

from sipstack.dialog.dialog import Dialog, DialogId, build_request, new_call_id

__all__ = ["Dialog", "DialogId", "build_request", "new_call_id"]
