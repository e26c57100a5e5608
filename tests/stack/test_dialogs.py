"""
The dialog table of L{SIPStack} over loopback UDP (RFC 3261 section 12):
requests outside any known dialog get 481, out-of-order ones 500, target
refreshes move the remote target, BYE and failed INVITEs end dialogs, an
unacknowledged 2xx ends its dialog with a BYE, and forked 2xx responses are
hung up without ever raising, even while the stack closes.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from sipstack.config import StackConfig, TimerValues
from sipstack.dialog import Dialog, DialogId, build_request
from sipstack.message import NameAddress, Response, build_response
from sipstack.message.uri import SIPURI
from sipstack.stack import IncomingRequest, RequestHandler, RequestResult, SIPStack
from tests.stack import Callee, invite_to, record_requests, udp_pair
from tests.transport._helpers import reactor, wait_for

_Tables = list[tuple[list[Dialog], list[Dialog]]]


def _snapshot(a: SIPStack, b: SIPStack, into: _Tables) -> Callable[[Response], None]:
    """An C{on_provisional} callback that records both stacks' dialogs as each 1xx arrives."""
    return lambda response: into.append((list(a.dialogs.values()), list(b.dialogs.values())))


def _mirrored(dialog: Dialog) -> DialogId:
    """The ID the peer's side of C{dialog} has."""
    return DialogId(dialog.id.call_id, dialog.id.remote_tag, dialog.id.local_tag)


def _answer_200(seen: list[IncomingRequest]) -> RequestHandler:
    """A handler that records each request and answers it with 200."""

    def answer(incoming: IncomingRequest) -> Response:
        seen.append(incoming)
        return incoming.response(200)

    return answer


class DialogMatchingTests(TestCase):
    """
    Requests with a To tag are matched to the stack's dialogs (section
    12.2.2).
    """

    async def test_unknown_dialog(self) -> None:
        """A BYE whose To tag matches no dialog gets 481 from the stack; the handler never sees it."""
        callee = Callee()
        a, _, peer = await udp_pair(self, callee)
        bye = build_request("BYE", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>;tag=gone")
        result = await a.request(bye)
        self.assertEqual(result.status, 481)
        self.assertEqual(callee.requests, [])

    async def test_unchecked(self) -> None:
        """With C{check_dialogs=False}, such a request reaches the handler, with no dialog."""
        callee = Callee()
        a, _, peer = await udp_pair(self, callee, check_dialogs=False)
        bye = build_request("BYE", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>;tag=gone")
        self.assertEqual((await a.request(bye)).status, 200)
        self.assertEqual(len(callee.of("BYE")), 1)
        self.assertIsNone(callee.of("BYE")[0].dialog)

    async def test_call_dialogs(self) -> None:
        """
        A call puts one dialog in each stack's table (the two IDs mirror
        each other); requests within it reach the handler with that dialog;
        the BYE ends both, and a BYE after that gets 481.
        """
        callee = Callee()
        a, b, peer = await udp_pair(self, callee)
        result = await a.request(invite_to(a, peer))
        dialog = result.dialog
        assert dialog is not None
        served = callee.of("INVITE")[0]
        assert served.dialog is not None
        self.assertEqual(dict(a.dialogs), {dialog.id: dialog})
        self.assertEqual(dict(b.dialogs), {_mirrored(dialog): served.dialog})
        self.assertFalse(dialog.early or served.dialog.early)
        self.assertIsNotNone(await served.acked)
        self.assertEqual((await a.request(dialog.create_request("INFO"))).status, 200)
        self.assertIs(callee.of("INFO")[0].dialog, served.dialog)
        self.assertEqual((await a.request(dialog.create_request("BYE"))).status, 200)
        self.assertEqual((dict(a.dialogs), dict(b.dialogs)), ({}, {}))
        self.assertEqual((await a.request(dialog.create_request("BYE"))).status, 481)
        self.assertEqual(len(callee.of("BYE")), 1)

    async def test_cseq_out_of_order(self) -> None:
        """A request within the dialog with a CSeq lower than the last one gets 500; a higher one is served."""
        callee = Callee()
        a, _, peer = await udp_pair(self, callee)
        result = await a.request(invite_to(a, peer, cseq=10))
        dialog = result.dialog
        assert dialog is not None
        dialog.local_cseq = 1
        self.assertEqual((await a.request(dialog.create_request("INFO"))).status, 500)
        self.assertEqual(callee.of("INFO"), [])
        dialog.local_cseq = 20
        self.assertEqual((await a.request(dialog.create_request("INFO"))).status, 200)
        self.assertEqual(len(callee.of("INFO")), 1)

    async def test_target_refresh(self) -> None:
        """
        A re-INVITE with a new Contact moves the callee's remote target
        (section 12.2.2): the same dialog object on both sides, and the
        callee's BYE then arrives at the caller's new address.
        """
        callee = Callee()
        a, b, peer = await udp_pair(self, callee)
        moved = await a.listen("udp:0:interface=127.0.0.1")
        result = await a.request(invite_to(a, peer))
        dialog = result.dialog
        assert dialog is not None
        target = SIPURI("sip", "127.0.0.1", port=moved.port)
        dialog.local_contact = NameAddress(target)
        again = await a.request(dialog.create_request("INVITE"))
        self.assertEqual(again.status, 200)
        self.assertIs(again.dialog, dialog)
        first, second = callee.of("INVITE")
        self.assertIs(second.dialog, first.dialog)
        assert second.dialog is not None
        self.assertEqual(second.dialog.remote_target, target)
        self.assertIsNotNone(await second.acked)
        seen: list[IncomingRequest] = []
        a.on_request(_answer_200(seen))
        self.assertEqual((await b.request(second.dialog.create_request("BYE"))).status, 200)
        self.assertEqual(seen[0].received.flow.local.port, moved.port)
        self.assertEqual((dict(a.dialogs), dict(b.dialogs)), ({}, {}))


class DialogLifetimeTests(TestCase):
    """
    Early dialogs, failed INVITEs, unacknowledged 2xx responses and forks.
    """

    async def test_early_dialog_confirmed(self) -> None:
        """The 180 makes an early dialog on both sides; the 200 confirms the same objects."""
        callee = Callee()
        a, b, peer = await udp_pair(self, callee)
        during: _Tables = []
        result = await a.request(invite_to(a, peer), on_provisional=_snapshot(a, b, during))
        [(caller_side, callee_side)] = during
        self.assertEqual(len(caller_side), 1)
        self.assertEqual(len(callee_side), 1)
        self.assertIs(result.dialog, caller_side[0])
        self.assertIs(callee.of("INVITE")[0].dialog, callee_side[0])
        self.assertFalse(caller_side[0].early or callee_side[0].early)

    async def test_failed_invite_ends_early_dialog(self) -> None:
        """A 486 after the 180 ends the early dialog on both sides (section 12.1)."""

        def busy(incoming: IncomingRequest) -> Deferred[Response | None]:
            incoming.respond(180)
            answer: Deferred[Response | None] = Deferred()
            reactor.callLater(0.02, answer.callback, incoming.response(486))
            return answer

        a, b, peer = await udp_pair(self, busy)
        during: _Tables = []
        result = await a.request(invite_to(a, peer), on_provisional=_snapshot(a, b, during))
        self.assertEqual(result.status, 486)
        [(caller_side, callee_side)] = during
        self.assertTrue(caller_side[0].early and callee_side[0].early)
        self.assertEqual(callee_side[0].id, _mirrored(caller_side[0]))
        self.assertEqual((dict(a.dialogs), dict(b.dialogs)), ({}, {}))

    async def test_bye_in_early_dialog(self) -> None:
        """
        The caller's BYE in the early dialog (RFC 3261 section 15) gets 200
        and ends the pending INVITE with 487 (section 15.1.2); both tables
        are empty afterwards.
        """
        callee = Callee(delay=None)
        a, b, peer = await udp_pair(self, callee)
        during: _Tables = []
        pending = a.request(invite_to(a, peer), on_provisional=_snapshot(a, b, during))
        await wait_for(lambda: during, "the 180")
        [early] = during[0][0]
        self.assertTrue(early.early)
        self.assertEqual((await a.request(early.create_request("BYE"))).status, 200)
        self.assertEqual((await pending).status, 487)
        self.assertTrue(callee.of("INVITE")[0].cancelled.called)
        self.assertEqual((dict(a.dialogs), dict(b.dialogs)), ({}, {}))
        self.assertEqual(b._pending_invites, {})

    async def test_no_ack_ends_dialog(self) -> None:
        """
        A 2xx never acknowledged: after 64*T1 the callee's stack ends the
        dialog with a BYE (section 13.3.1.4), which the caller's stack
        matches to its dialog.
        """
        quick = StackConfig(timers=TimerValues(t1=0.01, t2=0.08, t4=0.1))
        callee = Callee()
        a, b, peer = await udp_pair(self, callee, config=quick)
        seen: list[IncomingRequest] = []
        a.on_request(_answer_200(seen))
        result = await a.request(invite_to(a, peer), auto_ack=False)
        dialog = result.dialog
        assert dialog is not None
        self.assertIsNone(await callee.of("INVITE")[0].acked)
        await wait_for(lambda: seen, "the callee's BYE")
        self.assertEqual(seen[0].request.method, "BYE")
        self.assertIs(seen[0].dialog, dialog)
        self.assertEqual(dict(a.dialogs), {})
        await wait_for(lambda: not b.dialogs, "the callee's dialog to end")

    async def test_fork_while_closing(self) -> None:
        """
        A forked 2xx arriving while the caller's stack closes is ACKed and
        hung up with a BYE like any other, and nothing raises or is logged
        as an error.
        """
        byes: list[IncomingRequest] = []
        stacks: list[SIPStack] = []

        def answer(incoming: IncomingRequest) -> Response | Deferred[Response | None] | None:
            method = incoming.request.method
            if method == "INVITE":
                incoming.respond(200)
                fork = build_response(
                    incoming.request, 200, to_tag="fork", headers=(("Contact", str(stacks[0].contact())),)
                )
                stacks[0]._layer.send_response(fork, incoming.received.flow)
                return None
            if method == "BYE":
                byes.append(incoming)
                return incoming.response(200)
            # An OPTIONS answered late keeps the caller's stack busy while it closes.
            late: Deferred[Response | None] = Deferred()
            reactor.callLater(0.2, late.callback, incoming.response(200))
            return late

        a, b, peer = await udp_pair(self, answer, check_dialogs=False)
        stacks.append(b)
        options = build_request("OPTIONS", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>")
        busy = a.request(options)
        closing: list[Deferred[None]] = []

        def close(result: RequestResult) -> RequestResult:
            closing.append(a.close(2.0))
            return result

        result = await a.request(invite_to(a, peer)).addCallback(close)
        self.assertEqual(result.status, 200)
        await wait_for(lambda: byes, "the BYE to the fork")
        self.assertEqual(byes[0].request.to.tag, "fork")
        self.assertEqual((await busy).status, 200)
        await closing[0]
        self.assertEqual(self.flushLoggedErrors(), [])

    async def test_hang_up_after_close(self) -> None:
        """The stack's own BYE after it closed is not sent, and does not raise."""
        callee = Callee()
        a, _, peer = await udp_pair(self, callee)
        result = await a.request(invite_to(a, peer))
        assert result.dialog is not None
        sent = record_requests(a)
        await a.close(0.0)
        a._hang_up(result.dialog, "a test")
        self.assertEqual(sent, [])
        self.assertEqual(self.flushLoggedErrors(), [])
