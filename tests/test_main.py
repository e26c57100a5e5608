"""
Tests for the C{sipstack} command line (L{sipstack.__main__}).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipstack.__main__ import main

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


class InspectTests(SynchronousTestCase):
    """
    C{sipstack inspect} shows what was understood, or the fault and the answer.
    """

    def run_inspect(self, *arguments: str) -> tuple[int, str]:
        out = io.StringIO()
        status = main(["inspect", *arguments], out=out)
        return status, out.getvalue()

    def test_valid_message(self) -> None:
        """A valid message is summarised with the fields a proxy reads."""
        status, output = self.run_inspect(str(EXAMPLES / "invite.sip"))
        self.assertEqual(status, 0)
        self.assertIn("INVITE", output)
        self.assertIn("z9hG4bK74bf9", output)
        self.assertIn("9fxced76sl", output)

    def test_invalid_message_json(self) -> None:
        """An invalid message reports its status, reason and the response that would be sent."""
        status, output = self.run_inspect("--json", str(EXAMPLES / "bad-cseq.sip"))
        self.assertEqual(status, 0)
        [result] = json.loads(output)
        self.assertFalse(result["valid"])
        self.assertEqual(result["status"], 400)
        self.assertIn("CSeq", result["reason"])
        self.assertTrue(result["response"].startswith("SIP/2.0 400 "))

    def test_check_flag(self) -> None:
        """With --check an invalid message makes the exit status 1."""
        status, _ = self.run_inspect("--check", str(EXAMPLES / "register.sip"), str(EXAMPLES / "bad-cseq.sip"))
        self.assertEqual(status, 1)
        status, _ = self.run_inspect("--check", str(EXAMPLES / "register.sip"))
        self.assertEqual(status, 0)
