"""Tests of plumb_client against a real `plumb serve` (cmd/plumb's TestPythonClient starts one).

Environment: PLUMB_HTTP (the server's HTTP base URL), PLUMB_SCORE_TOKEN and PLUMB_ADMIN_TOKEN
(its tokens, by role), PLUMB_FIT_DATA and PLUMB_HELD_DATA (LabeledExample JSON Lines),
PLUMB_OUT (where the scores of the held-out requests are written, for the Go test to compare
with the same requests scored over gRPC).
"""

import json
import os
import unittest

from plumb_client import Client, PlumbError

ACTIONS = {"ACTION_ANSWER", "ACTION_CLARIFY", "ACTION_ABSTAIN"}


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.url = os.environ["PLUMB_HTTP"]
        cls.scorer = Client(cls.url, token=os.environ["PLUMB_SCORE_TOKEN"])
        cls.admin = Client(cls.url, token=os.environ["PLUMB_ADMIN_TOKEN"])
        cls.fit_data = read(os.environ["PLUMB_FIT_DATA"])
        cls.held = read(os.environ["PLUMB_HELD_DATA"])

    def test_1_fit_evaluate_score(self):
        fit = self.admin.fit("py", self.fit_data, risk=0.3, activate=True)
        self.assertTrue(fit.stored)
        self.assertEqual((fit.profile.name, fit.profile.version, fit.profile.active), ("py", 1, True))
        self.assertIsInstance(fit.report.examples, int)
        self.assertGreater(fit.report.examples, 0)
        self.assertLess(fit.report.examples, len(self.fit_data))  # held out from the fit's own split

        rep = self.admin.evaluate("py", self.held)
        self.assertEqual(rep.examples, len(self.held))
        self.assertEqual((rep.profile.name, rep.profile.version), ("py", 1))
        self.assertTrue(0 <= rep.after["ece"] <= 1, rep.after)

        listed = self.scorer.list_profiles("py")
        self.assertEqual([(p.version, p.active) for p in listed], [(1, True)])

        requests = [dict(ex["request"], profile="py") for ex in self.held]
        scores = self.scorer.score_many(requests)
        self.assertEqual([s.id for s in scores], [r["id"] for r in requests])
        with open(os.environ["PLUMB_OUT"], "w") as out:
            for s in scores:
                self.assertIsNone(s.error)
                self.assertIn(s.action, ACTIONS)
                self.assertTrue(0 <= s.confidence <= 1)
                self.assertEqual((s.profile.name, s.profile.version), ("py", 1))
                self.assertTrue(s.calibrated)
                self.assertTrue(s.badge.label)
                if s.action == "ACTION_ANSWER":
                    self.assertIn(s.answer, s.prediction_set.answers)
                out.write(json.dumps({"id": s.id, "answer": s.answer, "confidence": s.confidence,
                                      "action": s.action}) + "\n")

    def test_2_feedback_and_monitor(self):
        # After test_1: the held-out questions scored under "py" with receipts, their labels sent
        # back with a score token, and the monitor counting them once.
        requests = [dict(ex["request"], profile="py", segment="py-test") for ex in self.held]
        scores = self.scorer.score_many(requests)
        outcomes = []
        for s, ex in zip(scores, self.held):
            self.assertTrue(s.receipt, "no receipt from a server with a receipt key")
            outcomes.append({"receipt": s.receipt, "label": ex["label"], "source": "FEEDBACK_SOURCE_GROUND_TRUTH"})
        self.assertEqual(self.scorer.feedback(outcomes), (len(outcomes), 0))
        self.assertEqual(self.scorer.feedback(outcomes[:3]), (0, 3))
        monitors = self.scorer.monitor("py")
        self.assertEqual([(m["segment"], m["outcomes"]) for m in monitors], [("py-test", len(outcomes))])
        self.assertTrue(0 <= monitors[0]["ece"] <= 1, monitors[0])
        forged = dict(outcomes[0], receipt=outcomes[0]["receipt"][:-2] + "AA")
        with self.assertRaises(PlumbError) as cm:
            self.scorer.feedback([forged])
        self.assertEqual((cm.exception.code, cm.exception.field), ("permission_denied", "feedback[0].receipt"))

    def test_bad_request_names_its_field(self):
        with self.assertRaises(PlumbError) as e:
            self.scorer.score({"paraphrases": [{"options": [{"label": "A", "logprob": -0.1}]}]})
        self.assertEqual(e.exception.code, "invalid_argument")
        self.assertEqual(e.exception.field, "paraphrases[0].options")
        self.assertEqual(e.exception.http_status, 400)

    def test_bad_item_of_many_is_an_item_error(self):
        good = dict(self.held[0]["request"])
        bad = {"id": "bad", "paraphrases": [{"options": [{"label": "A", "logprob": 0.5},
                                                          {"label": "B", "logprob": -1}]}]}
        got = self.scorer.score_many([good, bad, good])
        self.assertIsNone(got[0].error)
        self.assertEqual(got[1].id, "bad")
        self.assertEqual(got[1].error.code, "invalid_argument")
        self.assertTrue(got[1].error.field.startswith("paraphrases[0].options"), got[1].error.field)
        self.assertEqual(got[0].confidence, got[2].confidence)

    def test_tokens_and_roles(self):
        with self.assertRaises(PlumbError) as e:
            Client(self.url).score(self.held[0]["request"])
        self.assertEqual(e.exception.code, "unauthenticated")
        with self.assertRaises(PlumbError) as e:
            self.scorer.fit("nope", self.fit_data[:10])
        self.assertEqual(e.exception.code, "permission_denied")

    def test_fit_error_in_stream(self):
        with self.assertRaises(PlumbError) as e:
            self.admin.fit("py-bad", self.fit_data[:50], alpha=1.5)
        self.assertEqual(e.exception.code, "invalid_argument")
        self.assertIn("alpha", e.exception.field)


if __name__ == "__main__":
    unittest.main()
