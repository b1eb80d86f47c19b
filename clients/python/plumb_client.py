"""A small client for plumb's HTTP API (the Connect protocol with JSON), standard library only.

    from plumb_client import Client
    c = Client("http://localhost:8080", token="...")
    r = c.score({"paraphrases": [{"options": [{"label": "A", "logprob": -0.1},
                                              {"label": "B", "logprob": -2.4}]}]})
    print(r.answer, r.confidence, r.action, r.badge.label)

Requests are plain dicts in protojson form, as in plumb's JSON Lines files (proto or
lowerCamelCase field names, enums by name). Results are dataclasses holding the fields most
callers read; every one keeps the whole decoded JSON in `raw`. A call the server refuses
raises PlumbError with the Connect code ("invalid_argument", "unauthenticated", ...), the
message, and the field it names, when it names one.

Fit and Evaluate are client streams: the Connect protocol carries them over HTTP/1.1 as one
request body of enveloped messages, so they too need nothing beyond urllib.
"""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

__all__ = [
    "Client", "PlumbError", "Score", "PredictionSet", "Badge", "Sycophancy", "ClaimScore",
    "ProfileRef", "Report", "FitResult", "ProfileSummary",
]

_CONFIDENCE = "plumb.v1.ConfidenceService/"
_PROFILES = "plumb.v1.ProfileService/"
_MONITOR = "plumb.v1.MonitorService/"


class PlumbError(Exception):
    """A call plumb refused or could not complete: code is the Connect code in snake case."""

    def __init__(self, code: str, message: str, field: str = "", http_status: int = 0):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field
        self.http_status = http_status


@dataclass
class PredictionSet:
    answers: list[str]
    alpha: float
    open: bool
    calibrated: bool


@dataclass
class Badge:
    level: str
    label: str


@dataclass
class Sycophancy:
    shift: float
    wordings: int
    flagged: bool
    threshold: float


@dataclass
class ProfileRef:
    name: str
    version: int


@dataclass
class ClaimScore:
    id: str
    confidence: float
    action: str
    reasons: list[str]
    support: float


@dataclass
class Score:
    """One ScoreResponse. `error` is set (and the rest empty) for a bad item of score_many."""

    id: str
    answer: str
    confidence: float
    action: str
    reasons: list[str]
    prediction_set: PredictionSet
    badge: Badge
    sycophancy: Sycophancy
    profile: ProfileRef
    calibrated: bool
    claims: list[ClaimScore]
    error: Optional[PlumbError]
    raw: dict = field(repr=False)
    receipt: str = ""  # set when the server signs receipts (--receipt-key-file): send it back with feedback()


@dataclass
class Report:
    examples: int
    before: dict
    after: dict
    warnings: list[str]
    profile: ProfileRef
    raw: dict = field(repr=False)


@dataclass
class FitResult:
    stored: bool
    profile: ProfileSummary
    report: Report


@dataclass
class ProfileSummary:
    name: str
    version: int
    active: bool
    calibrated: bool
    raw: dict = field(repr=False)


# Connect's JSON error codes, by the gRPC code number an ItemError carries.
_CODES = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
          "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
          "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
          "unauthenticated"]


def _int(v: Any) -> int:
    # protojson prints 64-bit integers (versions) as strings.
    return int(v) if v not in (None, "") else 0


def _ref(d: Optional[dict]) -> ProfileRef:
    d = d or {}
    return ProfileRef(name=d.get("name", ""), version=_int(d.get("version")))


def _score(d: dict) -> Score:
    ps = d.get("predictionSet") or {}
    badge = d.get("badge") or {}
    syc = d.get("sycophancy") or {}
    err = d.get("error")
    return Score(
        id=d.get("id", ""),
        answer=d.get("answer", ""),
        confidence=float(d.get("confidence", 0.0)),
        action=d.get("action", "ACTION_UNSPECIFIED"),
        reasons=list(d.get("reasons", [])),
        prediction_set=PredictionSet(answers=list(ps.get("answers", [])), alpha=float(ps.get("alpha", 0.0)),
                                     open=bool(ps.get("open", False)), calibrated=bool(ps.get("calibrated", False))),
        badge=Badge(level=badge.get("level", "BADGE_LEVEL_UNSPECIFIED"), label=badge.get("label", "")),
        sycophancy=Sycophancy(shift=float(syc.get("shift", 0.0)), wordings=int(syc.get("wordings", 0)),
                              flagged=bool(syc.get("flagged", False)), threshold=float(syc.get("threshold", 0.0))),
        profile=_ref(d.get("profile")),
        calibrated=bool(d.get("calibrated", False)),
        claims=[ClaimScore(id=c.get("id", ""), confidence=float(c.get("confidence", 0.0)),
                           action=c.get("action", "CLAIM_ACTION_UNSPECIFIED"), reasons=list(c.get("reasons", [])),
                           support=float(c.get("support", 0.0))) for c in d.get("claims", [])],
        error=None if err is None else PlumbError(
            _CODES[err.get("code", 2)] if 0 <= err.get("code", 2) < len(_CODES) else "unknown",
            err.get("message", ""), err.get("field", "")),
        raw=d,
        receipt=d.get("receipt", ""),
    )


def _report(d: dict) -> Report:
    return Report(examples=_int(d.get("examples")), before=d.get("before") or {}, after=d.get("after") or {},
                  warnings=list(d.get("warnings", [])), profile=_ref(d.get("profile")), raw=d)


def _summary(d: dict) -> ProfileSummary:
    return ProfileSummary(name=d.get("name", ""), version=_int(d.get("version")),
                          active=bool(d.get("active", False)), calibrated=bool(d.get("calibrated", False)), raw=d)


def _error(body: bytes, http_status: int) -> PlumbError:
    try:
        d = json.loads(body)
    except ValueError:
        return PlumbError("unknown", body.decode("utf-8", "replace")[:200], http_status=http_status)
    name = ""
    for detail in d.get("details", []):
        for v in (detail.get("debug") or {}).get("fieldViolations", []):
            name = name or v.get("field", "")
    return PlumbError(d.get("code", "unknown"), d.get("message", ""), name, http_status)


class Client:
    """A plumb server's HTTP address (serve --http-addr), with a bearer token when it has tokens."""

    def __init__(self, base_url: str, token: Optional[str] = None, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _post(self, path: str, body: bytes, content_type: str) -> bytes:
        headers = {"Content-Type": content_type, "Connect-Protocol-Version": "1"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        req = urllib.request.Request(self.base_url + "/" + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raise _error(e.read(), e.code) from None

    def _unary(self, path: str, msg: dict) -> dict:
        return json.loads(self._post(path, json.dumps(msg).encode(), "application/json"))

    def _client_stream(self, path: str, messages: Iterable[dict]) -> dict:
        # Each message is an envelope: a flags byte (0), a big-endian uint32 length, the JSON.
        parts = []
        for m in messages:
            b = json.dumps(m).encode()
            parts.append(struct.pack(">BI", 0, len(b)) + b)
        out = self._post(path, b"".join(parts), "application/connect+json")
        result, i = None, 0
        while i + 5 <= len(out):
            flags, n = struct.unpack(">BI", out[i:i + 5])
            payload = json.loads(out[i + 5:i + 5 + n] or b"{}")
            i += 5 + n
            if flags & 0x02:  # end of stream: an error, or nothing
                if payload.get("error"):
                    raise _error(json.dumps(payload["error"]).encode(), 200)
            else:
                result = payload
        if result is None:
            raise PlumbError("internal", "the server ended the stream without a response")
        return result

    def score(self, request: dict) -> Score:
        """Scores one ScoreRequest; raises PlumbError when the server refuses it."""
        return _score(self._unary(_CONFIDENCE + "Score", request))

    def score_many(self, requests: Iterable[dict]) -> list[Score]:
        """Scores each request in order; a bad one gives a Score whose error is set, not an exception."""
        out = []
        for r in requests:
            try:
                out.append(self.score(r))
            except PlumbError as e:
                if e.code not in ("invalid_argument", "not_found", "failed_precondition"):
                    raise
                out.append(_score({"id": r.get("id", ""), "error": {
                    "code": _CODES.index(e.code), "field": e.field, "message": e.message}}))
        return out

    def fit(self, name: str, examples: Iterable[dict], **config: Any) -> FitResult:
        """Fits a profile on LabeledExample dicts; config holds FitConfig fields (alpha, risk, activate, ...)."""
        msgs = [{"config": dict(config, name=name)}]
        msgs.extend({"example": ex} for ex in examples)
        d = self._client_stream(_PROFILES + "Fit", msgs)
        return FitResult(stored=bool(d.get("stored", False)), profile=_summary(d.get("profile") or {}),
                         report=_report(d.get("report") or {}))

    def evaluate(self, profile: str, examples: Iterable[dict], version: int = 0) -> Report:
        """Reports a stored profile's figures on held-out LabeledExample dicts; writes nothing."""
        msgs = [{"config": {"profile": profile, "version": str(version)}}]
        msgs.extend({"example": ex} for ex in examples)
        return _report(self._client_stream(_PROFILES + "Evaluate", msgs))

    def feedback(self, outcomes: Iterable[dict]) -> tuple[int, int]:
        """Sends outcomes back, all or none: FeedbackRequest dicts ({"receipt": score.receipt,
        "label": {"answers": [...]}, "servedAnswer": ..., "source": ...}). Returns (stored,
        duplicates): a receipt stored before counts once."""
        d = self._client_stream(_MONITOR + "FeedbackStream", list(outcomes))
        return int(d.get("accepted", 0)), int(d.get("duplicates", 0))

    def monitor(self, profile: str = "", window: int = 0) -> list[dict]:
        """The monitors (GetMonitorResponse.monitors, as dicts with lowerCamelCase keys: ece,
        coverage, selectiveRisk, riskBound, riskLowerBound, alarms, ...)."""
        msg: dict = {}
        if profile:
            msg["profile"] = profile
        if window:
            msg["window"] = window
        return list(self._unary(_MONITOR + "GetMonitor", msg).get("monitors", []))

    def list_profiles(self, name: str = "") -> list[ProfileSummary]:
        """Every stored version (of name), without reports."""
        d = self._unary(_PROFILES + "ListProfiles", {"name": name} if name else {})
        return [_summary(p) for p in d.get("profiles", [])]
