"""Train the wording model shipped in the package (``detectors/trained/wording.npz``, read by
``detectors.wording``) from texts in this repository and the TUNING part of the real corpora only:

- the rules' own examples (``detectors/rules/*.yaml``: positive → violation, negative → compliant),
- the pitch lists of ``tests/test_detectors_pitches.py`` (texts written for the rules, never taken
  from the corpora),
- sentences written for the model (``bench/data/wording_authored.txt``: ``<category or -> <text>``
  per line, written by the team in its own words — violations phrased the ways ads now evade
  keywords, lawful near-misses sharing their vocabulary; never copied from a corpus or a page),
- the tuning part of the real corpora (``bench.corpus``; the sealed part never enters),
- the tuning part of real texts the team gathered from other public sources
  (``bench/data/external_tuning.jsonl``: regulators' cases, news quotes, institutions' pages and
  sites kept on GitHub, each with its source; split 60/40 by source like the corpora, and only the
  60 % is in the repository — the 40 % is kept apart to measure on),
- the sentences of the district implementation plan (``../shared/policy``), as compliant prose.

    make wording          # installs scikit-learn (the [train] extra), then runs:
    .venv/bin/python -m bench.train_wording

The threshold is chosen by 5-fold cross-validation on these texts, repeated with four shuffles: the
margin at which 97 % of the held-out compliant margins pass. The file records a digest of the
training texts; a test fails when the texts change and the model was not retrained.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench import corpus
from detectors.engine import Detector
from detectors.model import CATEGORIES
from detectors.wording import BITS, MODEL_PATH, text_grams

ROOT = Path(__file__).resolve().parent.parent
PITCHES = ROOT / "tests" / "test_detectors_pitches.py"
AUTHORED = ROOT / "bench" / "data" / "wording_authored.txt"
EXTERNAL = ROOT / "bench" / "data" / "external_tuning.jsonl"
POLICY = corpus.CORPUS_DIR.parent / "policy" / "district-implementation-plan.txt"
C = 4.0  # inverse regularisation: 1, 4 and 16 give the same cross-validated recall (0.73)
COMPLIANT_PASSED = 0.97  # the threshold lets this share of held-out compliant texts pass
REPEATS = 4  # cross-validation repeats the threshold is calibrated on
# the concepts of the rule lexicon that make a sentence "about training" (the domain gate)
DOMAIN_CONCEPTS = ("subject", "school_subject", "grade", "class", "teacher", "child", "contest", "outcome_metric",
                   "preschool_age", "famous_school", "results_showcase", "long_product", "cover_name", "online",
                   "search_app", "homework")


@lru_cache(maxsize=1)
def _rules() -> Detector:
    """The rule packs as shipped: their examples are training texts, their lexicon the domain words."""
    return Detector()


def _pitches() -> tuple[list[tuple[str, str]], list[str]]:
    spec = importlib.util.spec_from_file_location("pitches", PITCHES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.POSITIVE), list(module.NEGATIVE)


def external_rows(path: Path = EXTERNAL) -> list[tuple[str, int, str]]:
    """The tuning part of the texts gathered from other public sources: ``{"text", "categories",
    "source_url", "source_title", "note"}`` per line (empty ``categories``: compliant)."""
    rows: list[tuple[str, int, str]] = []
    if not path.exists():
        return rows
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        cats = d.get("categories") or []
        if any(c not in CATEGORIES for c in cats):
            raise ValueError(f"{path.name}:{n}: unknown category in {cats}")
        rows.append((d["text"], 1, cats[0]) if cats else (d["text"], 0, ""))
    return rows


def authored_rows(path: Path = AUTHORED) -> list[tuple[str, int, str]]:
    """The sentences written for the model: ``<category> <text>`` (a violation) or ``- <text>``."""
    rows: list[tuple[str, int, str]] = []
    if not path.exists():
        return rows
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        label, _, text = line.partition(" ")
        text = text.strip()
        if label != "-" and label not in CATEGORIES:
            raise ValueError(f"{path.name}:{n}: {label!r} is neither '-' nor one of {CATEGORIES}")
        if text:
            rows.append((text, 0, "") if label == "-" else (text, 1, label))
    return rows


def training_rows() -> list[tuple[str, int, str]]:
    """(text, 1 violation / 0 compliant, main category or "") — a text given both labels is left out."""
    rows: list[tuple[str, int, str]] = []
    for rule in _rules().rules:
        rows += [(t, 1, rule.category) for t in rule.positive]
        rows += [(t, 0, "") for t in rule.negative]
    positive, negative = _pitches()
    rows += [(t, 1, c) for t, c in positive]
    rows += [(t, 0, "") for t in negative]
    rows += authored_rows()
    rows += external_rows()
    for _, vfile, cfile in corpus.SETS:
        rows += [(r.text, 1, r.categories[0]) for r in corpus.tuning(vfile)]
        rows += [(r.text, 0, "") for r in corpus.tuning(cfile)]
    if POLICY.exists():
        for s in re.split(r"[。！？!?；;\n]", POLICY.read_text(encoding="utf-8")):
            if len(re.sub(r"\W", "", s)) >= 8:
                rows.append((s.strip(), 0, ""))
    labels: dict[str, set[int]] = {}
    for t, y, _ in rows:
        labels.setdefault(t, set()).add(y)
    seen: set[str] = set()
    out = []
    for t, y, c in rows:
        if len(labels[t]) == 1 and t not in seen:
            seen.add(t)
            out.append((t, y, c))
    return out


def digest(rows: list[tuple[str, int, str]]) -> str:
    """What the model was trained on, in one hash (order-free)."""
    return hashlib.sha256("\n".join(sorted(f"{y}\t{c}\t{t}" for t, y, c in rows)).encode("utf-8")).hexdigest()


def domain_words() -> tuple[str, ...]:
    vocab = _rules().lexicon.vocab
    return tuple(sorted({w for name in DOMAIN_CONCEPTS for w in vocab.get(name, ())}))


def _matrix(grams: list[np.ndarray], idf: np.ndarray):
    from scipy import sparse

    rows, cols, vals = [], [], []
    for i, b in enumerate(grams):
        if not len(b):
            continue
        u, c = np.unique(b, return_counts=True)
        rows.append(np.full(len(u), i))
        cols.append(u)
        vals.append(c * idf[u] / np.sqrt(len(b)))
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(len(grams), 1 << BITS))


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    rows = training_rows()
    y = np.array([r[1] for r in rows])
    grams = [text_grams(t) for t, _, _ in rows]
    df = np.zeros(1 << BITS)
    for b in grams:
        df[np.unique(b)] += 1
    idf = np.log((1 + len(rows)) / (1 + df)) + 1
    x = _matrix(grams, idf)

    # held-out margins from REPEATS differently shuffled 5-fold splits: one split's luck moved the
    # threshold (and a few texts across it) whenever a handful of training texts changed
    held = np.zeros((REPEATS, len(rows)))
    for r in range(REPEATS):
        for train, test in StratifiedKFold(5, shuffle=True, random_state=r).split(x, y):
            fold = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(x[train], y[train])
            held[r, test] = fold.decision_function(x[test])
    # the threshold is set on the compliant texts not written for the model: sentences written as
    # near-misses are easier to tell from adverts than the texts a scan meets
    authored = {t for t, _, _ in authored_rows()}
    calibration = np.array([y[i] == 0 and rows[i][0] not in authored for i in range(len(rows))])
    compliant = np.sort(held[:, calibration].ravel())
    threshold = float(compliant[int(np.ceil(COMPLIANT_PASSED * len(compliant))) - 1]) + 1e-6
    cv_recall = float(np.mean(held[:, y == 1] >= threshold))
    cv_passed = float(np.mean(held[:, calibration] < threshold))

    model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(x, y)
    weights = (model.coef_[0] * idf).astype(np.float32)
    buckets = np.flatnonzero(weights).astype(np.int32)

    pos = np.flatnonzero(y == 1)
    cats = np.array([rows[i][2] for i in pos])
    by_cat = LogisticRegression(C=C, max_iter=3000).fit(x[pos], cats)
    cw = (by_cat.coef_.T * idf[:, None]).astype(np.float32)
    cbuckets = np.flatnonzero(np.abs(cw).sum(axis=1) > 0).astype(np.int32)

    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        MODEL_PATH, buckets=buckets, weights=weights[buckets], intercept=np.float64(model.intercept_[0]),
        threshold=np.float64(threshold), categories=np.str_("\n".join(by_cat.classes_)),
        category_buckets=cbuckets, category_weights=cw[cbuckets].astype(np.float16),
        category_intercepts=by_cat.intercept_.astype(np.float32), domain=np.str_("\n".join(domain_words())),
        trained_on=np.int64(len(rows)), digest=np.str_(digest(rows)))
    print(f"{len(rows)} texts ({int(y.sum())} violations, {int((y == 0).sum())} compliant); "
          f"{len(buckets)} weighted grams; threshold margin {threshold:.2f} "
          f"(probability {1 / (1 + np.exp(-threshold)):.2f})")
    print(f"5-fold cross-validation at that threshold: violations flagged {cv_recall:.2f}, "
          f"compliant passed {cv_passed:.2f}")
    print(f"wrote {MODEL_PATH.relative_to(ROOT)} ({MODEL_PATH.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
