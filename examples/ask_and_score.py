#!/usr/bin/env python3
"""Ask an OpenAI-compatible model one question in several wordings, and ask plumb how far to trust it.

    # offline, on the recorded responses in examples/recorded/ (no API key needed):
    python3 examples/ask_and_score.py --plumb http://localhost:8080 \\
        --recorded examples/recorded/capital-au.json examples/capital-au.json

    # live, against OpenAI or any OpenAI-compatible server (vLLM, llama.cpp, ...):
    OPENAI_API_KEY=... python3 examples/ask_and_score.py --plumb http://localhost:8080 \\
        --model gpt-4o-mini --n 5 --save my-recording.json examples/capital-au.json

The question file names the wordings: neutral ones, and the user's own wording marked
FRAMING_USER_STANCE with the answer it leans to (plumb measures how far that wording moves
the model, and keeps it out of the confidence). Each wording is sent with n samples and token
logprobs; every choice becomes one sampled completion of the ScoreRequest. Standard library
only; the plumb client is clients/python/plumb_client.py.
"""

import argparse
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python"))
from plumb_client import Client, PlumbError  # noqa: E402


def ask(base_url, api_key, model, prompt, n, top_logprobs):
    """One chat-completions call: n samples of a short answer, with token logprobs."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "n": n,
        "temperature": 1.0,
        "max_tokens": 16,
        "logprobs": True,
        "top_logprobs": top_logprobs,
    }
    req = urllib.request.Request(base_url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + api_key})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def paraphrase(wording, response):
    """A plumb Paraphrase from one wording and its chat-completions response."""
    p = {"prompt": wording["prompt"], "samples": []}
    if wording.get("framing"):
        p["framing"] = wording["framing"]
    if wording.get("stance"):
        p["stance"] = wording["stance"]
    for choice in response["choices"]:
        sample = {"text": (choice["message"].get("content") or "").strip()}
        tokens = ((choice.get("logprobs") or {}).get("content")) or []
        if tokens:
            sample["tokens"] = [{
                "token": t["token"],
                "logprob": t["logprob"],
                "topLogprobs": [{"token": a["token"], "logprob": a["logprob"]} for a in t.get("top_logprobs") or []],
            } for t in tokens]
        p["samples"].append(sample)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("question", help="a JSON file: id, group (optional), wordings [{prompt, framing, stance}]")
    ap.add_argument("--plumb", default="http://localhost:8080", help="plumb serve's HTTP address (--http-addr)")
    ap.add_argument("--plumb-token", default=os.environ.get("PLUMB_TOKEN"), help="plumb's bearer token ($PLUMB_TOKEN)")
    ap.add_argument("--profile", default="", help="the plumb profile to score with (default: the active 'default')")
    ap.add_argument("--recorded", help="read the responses from this recording instead of calling the model")
    ap.add_argument("--save", help="write the responses received to this recording")
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"))
    ap.add_argument("--n", type=int, default=5, help="samples per wording")
    ap.add_argument("--top-logprobs", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print plumb's whole ScoreResponse as JSON")
    args = ap.parse_args()

    with open(args.question) as f:
        question = json.load(f)
    if args.recorded:
        with open(args.recorded) as f:
            responses = json.load(f)["responses"]
    else:
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            sys.exit("ask_and_score: set OPENAI_API_KEY, or give --recorded FILE to run offline")
        responses = {w["prompt"]: ask(args.base_url, key, args.model, w["prompt"], args.n, args.top_logprobs)
                     for w in question["wordings"]}
    if args.save:
        with open(args.save, "w") as f:
            json.dump({"responses": responses}, f, indent=1)

    request = {"id": question.get("id", ""), "group": question.get("group", ""), "profile": args.profile,
               "paraphrases": [paraphrase(w, responses[w["prompt"]]) for w in question["wordings"]]}
    try:
        score = Client(args.plumb, token=args.plumb_token).score(request)
    except PlumbError as e:
        sys.exit(f"ask_and_score: plumb refused the request: {e}" + (f" (field {e.field})" if e.field else ""))
    if args.json:
        print(json.dumps(score.raw))
        return
    print(f"answer      {score.answer}")
    print(f"confidence  {score.confidence:.3f}  ({score.badge.label})")
    print(f"action      {score.action}  {' '.join(score.reasons)}")
    print(f"set         {score.prediction_set.answers}")
    print(f"sycophancy  shift {score.sycophancy.shift:+.3f} over {score.sycophancy.wordings} user wording(s)"
          + ("  FLAGGED" if score.sycophancy.flagged else ""))


if __name__ == "__main__":
    main()
