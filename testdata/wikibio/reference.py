#!/usr/bin/env python3
"""Independent reference values for wikibio-visible.jsonl, for plumb's tests of long answers.

Run from this folder with Debian's python3-numpy and python3-sklearn:

    /usr/bin/python3 reference.py

It prints the table that REFERENCE.md holds. It shares no code with plumb: the tokenisation is
re-written from docs/DESIGN.md ("Long answers"), the metrics are sklearn's, the splits numpy's.

- support: plumb's lexical measure (the claim's content words found in a sample, weighted by
  their inverse frequency among the samples) for the first claims of the first passage, to
  check plumb's Lexicon to 1e-12;
- the peers: how well a claim's mean support over the 20 samples ranks the false claims, for
  the LLM judge's support in the file, plain unigram overlap (every content word weighing
  the same) and plumb's weighted measure: AUC-PR of the false claims (average precision) and
  AUROC;
- conformal factuality on the plain mean (Mohri and Hashimoto 2024): 20 seeds of calibrating
  the threshold on a random half of the passages and applying it to the other, at alpha 0.2,
  the share of test passages whose kept claims are all true and the share of claims kept.
"""
import json
import math
import re
import unicodedata

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

FUNCTION_WORDS = set("""a an the and or but if of at by for with about against between into through during
    before after above below to from up down in out on off over under again further then once here there when where
    why how all any both each few more most other some such no nor not only own same so than too very can will just
    should now i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is are was were
    be been being have has had having do does did doing would could also as s t""".split())


def words(text):
    """Content words: NFKC, runs of letters and digits, lower case, without function words."""
    ws = [w.lower() for w in re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text))]
    content = [w for w in ws if w not in FUNCTION_WORDS]
    return content or ws


def supports(claim, samples, weighted=True):
    """Per sample: the weighted share of the claim's distinct content words it holds."""
    sets = [set(words(s)) for s in samples]
    n = len(samples)
    cw = []
    for w in words(claim):
        if w not in cw:
            cw.append(w)
    if not cw:
        return [0.0] * n
    weight = {w: math.log((n + 1) / (sum(w in s for s in sets) + 0.5)) if weighted else 1.0 for w in cw}
    total = sum(weight.values())
    return [sum(weight[w] for w in cw if w in s) / total for s in sets]


rows = [json.loads(line) for line in open("wikibio-visible.jsonl")]
passages = []
for r in rows:
    q = r["request"]
    samples = [s["text"] for s in q["paraphrases"][0]["samples"]]
    judge = np.array([s["support"] for s in q["paraphrases"][0]["samples"]])  # samples × claims
    claims = [c["text"] for c in q["claims"]]
    verdicts = r["label"]["claims"]
    passages.append(dict(
        claims=claims,
        false=np.array([v == "CLAIM_VERDICT_FALSE" for v in verdicts]),
        known=np.array([v != "CLAIM_VERDICT_UNSPECIFIED" for v in verdicts]),
        judge=judge.mean(axis=0),
        plain=np.array([np.mean(supports(c, samples, weighted=False)) for c in claims]),
        lexical=np.array([np.mean(supports(c, samples)) for c in claims]),
        first=[supports(c, samples) for c in claims[:3]],
    ))

print("lexical support of passage 0, claims 0-2, samples 0-4 (repr):")
for j, s in enumerate(passages[0]["first"]):
    print(f"  claim {j}:", [repr(v) for v in s[:5]])

print("\n| measure | AUC-PR of false claims | AUROC |")
print("|---|---:|---:|")
for name in ("judge", "plain", "lexical"):
    y = np.concatenate([p["false"][p["known"]] for p in passages])
    c = np.concatenate([p[name][p["known"]] for p in passages])
    print(f"| {name} | {average_precision_score(y, 1 - c):.4f} | {roc_auc_score(y, 1 - c):.4f} |")

print("\nconformal factuality on the plain mean, alpha 0.2, 20 seeds of half / half: means over the")
print("seeds of the test half's share of answers whose kept claims are all true, of claims kept, and")
print("of the AUC-PR and AUROC of its labelled claims:")
print("| measure | answers all true | claims kept | AUC-PR of false claims | AUROC |")
print("|---|---:|---:|---:|---:|")
alpha = 0.2
perms = [np.random.default_rng(seed).permutation(len(passages)) for seed in range(20)]
for name in ("judge", "plain", "lexical"):
    all_true, kept, ap, auc = [], [], [], []
    for perm in perms:
        cal, test = perm[: len(perm) // 2], perm[len(perm) // 2:]
        # A passage's score: the highest confidence of a false claim (none: minus infinity).
        m = np.array([max(list(passages[i][name][passages[i]["false"]]), default=-np.inf) for i in cal])
        rank = math.ceil((len(cal) + 1) * (1 - alpha) - 1e-9)
        tau = np.inf if rank > len(cal) else np.sort(m)[rank - 1]
        ok, k, n = 0, 0, 0
        for i in test:
            p = passages[i]
            keep = p[name] > tau
            ok += not np.any(keep & p["false"])
            k += int(keep[p["known"]].sum())
            n += int(p["known"].sum())
        all_true.append(ok / len(test))
        kept.append(k / n)
        y = np.concatenate([passages[i]["false"][passages[i]["known"]] for i in test])
        c = np.concatenate([passages[i][name][passages[i]["known"]] for i in test])
        ap.append(average_precision_score(y, 1 - c))
        auc.append(roc_auc_score(y, 1 - c))
    print(f"| {name} | {np.mean(all_true):.4f} | {np.mean(kept):.4f} | {np.mean(ap):.4f} | {np.mean(auc):.4f} |")

print("\nthe 20 splits (numpy.random.default_rng(seed).permutation(40), seeds 0-19; the first half calibrates):")
for perm in perms:
    print("  {" + ", ".join(str(int(i)) for i in perm) + "},")
