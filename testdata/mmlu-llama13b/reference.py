#!/usr/bin/env python3
"""Independent reference values for mmlu-llama13b.jsonl, for plumb's tests.

Run from this folder with Debian's python3-numpy and python3-scipy:

    /usr/bin/python3 reference.py

It prints the table that REFERENCE.md holds. It shares no code with plumb: numpy for the
softmax, pooling, entropies and metrics, scipy for the bounded scalar searches of the
temperature fits.
"""
import json
import math

import numpy as np
from scipy.optimize import minimize_scalar

z, gold = [], []
with open("mmlu-llama13b.jsonl") as f:
    for line in f:
        ex = json.loads(line)
        paras = ex["request"]["paraphrases"]
        labels = [o["label"] for o in paras[0]["options"]]
        z.append([[o["logprob"] for o in p["options"]] for p in paras])
        gold.append(labels.index(ex["label"]["answers"][0]))
z = np.array(z)  # questions × wordings × options
gold = np.array(gold)
n = len(gold)


def softmax(x, t):
    u = x / t
    u = u - u.max(axis=-1, keepdims=True)
    e = np.exp(u)
    return e / e.sum(axis=-1, keepdims=True)


def entropy(p):
    return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(axis=-1)


pi = softmax(z, 1.0)
pbar = pi.mean(axis=1)
top = pbar.argmax(axis=1)
c = pbar[np.arange(n), top]
correct = (top == gold).astype(float)

# ECE over 15 equal-width bins: bin 1 = [0, 1/15], bin i = ((i-1)/15, i/15].
bins = np.clip(np.ceil(c * 15).astype(int) - 1, 0, 14)
ece = sum(abs(correct[bins == b].mean() - c[bins == b].mean()) * (bins == b).sum() / n
          for b in range(15) if (bins == b).any())
brier = ((c - correct) ** 2).mean()
# AUROC with ties counted one half (Mann-Whitney with average ranks).
order = np.argsort(c, kind="stable")
ranks = np.empty(n)
sc = c[order]
i = 0
while i < n:
    j = i
    while j < n and sc[j] == sc[i]:
        j += 1
    ranks[order[i:j]] = (i + j + 1) / 2
    i = j
pos = correct.sum()
auroc = (ranks[correct == 1].sum() - pos * (pos + 1) / 2) / (pos * (n - pos))

H = entropy(pbar)
A = entropy(pi).mean(axis=1)
W = H - A
V = pi[np.arange(n), :, top].var(axis=1)  # population variance over the 10 wordings

scores = np.sort(1 - pbar[np.arange(n), gold])
rank = math.ceil((n + 1) * 0.9 - 1e-9)
qhat = scores[rank - 1]
sets = (1 - pbar <= qhat + 1e-12)
sets[np.arange(n), top] = True
coverage = sets[np.arange(n), gold].mean()
size = sets.sum(axis=1).mean()


def pooled_nll(logt):
    p = softmax(z, math.exp(logt)).mean(axis=1)
    return -np.log(p[np.arange(n), gold]).mean()


def wording_nll(logt):
    p = softmax(z, math.exp(logt))
    return -np.log(p[np.arange(n), :, gold]).mean()


tp = minimize_scalar(pooled_nll, bounds=(math.log(0.05), math.log(20)), method="bounded",
                     options={"xatol": 1e-10})
tw = minimize_scalar(wording_nll, bounds=(math.log(0.05), math.log(20)), method="bounded",
                     options={"xatol": 1e-10})

rows = [
    ("accuracy of k* (T = 1)", correct.mean()),
    ("mean c (T = 1)", c.mean()),
    ("ECE15 of c (T = 1)", ece),
    ("Brier of c against correct (T = 1)", brier),
    ("AUROC of c for correct (T = 1)", auroc),
    ("mean H(pbar)", H.mean()),
    ("mean aleatoric A", A.mean()),
    ("mean wording W = H - A", W.mean()),
    ("mean var_p pi_p(k*) (population)", V.mean()),
    (f"LAC qhat at alpha = 0.1 (rank {rank})", qhat),
    ("LAC set coverage with that qhat", coverage),
    ("LAC mean set size with that qhat", size),
    ("global T minimising the pooled NLL", math.exp(tp.x)),
    ("pooled NLL at T = 1", pooled_nll(0.0)),
    ("pooled NLL at that T", tp.fun),
    ("global T minimising the per-wording NLL", math.exp(tw.x)),
    ("per-wording NLL at T = 1", wording_nll(0.0)),
    ("per-wording NLL at that T", tw.fun),
]
for name, v in rows:
    print(f"| {name} | {v:.6f} |")
first = 0
print("first line:", pbar[first].round(8), "H=%.9f A=%.9f W=%.9f var=%.9f" % (
    H[first], A[first], W[first], pi[first, :, 0].var()))
