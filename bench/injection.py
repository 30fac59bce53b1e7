"""The injection guards on a corpus of known attacks and of benign texts that look like them.

    python bench/injection.py [--repeat 200]

Reads `bench/injection_corpus.jsonl` (built by bench/injection_corpus.py, kept in the
repository) and prints, for the built-in rule classifier:

- the detection rate: the share of attacks with a finding at or over the threshold, per family
  and in all;
- the false-positive rate: the share of benign texts with one, per family and in all;
- what the neutralizer changed in the attacks and in the benign texts;
- the cost per KB of the neutralizer and of the classifier, against ``json.dumps`` of the same
  texts measured in the same run (an escaping pass over every character: the baseline).

Writes bench/results/injection.json. These rules lower the risk of an injection; they do not
remove it: the figures say how often they miss and how often they cry wolf.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orchestration.guards.detect import RuleClassifier  # noqa: E402
from orchestration.guards.neutralize import neutralize  # noqa: E402

CORPUS = ROOT / "bench" / "injection_corpus.jsonl"
RESULTS = ROOT / "bench" / "results"


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeat", type=int, default=200, help="passes over the corpus for the costs")
    p.add_argument("--output", type=Path, default=RESULTS / "injection.json")
    return p.parse_args()


def _us_per_kb(fn: Callable[[str], Any], texts: list[str], repeat: int) -> float:
    size_kb = sum(len(t.encode()) for t in texts) / 1024
    started = time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            fn(text)
    return (time.perf_counter() - started) * 1e6 / (size_kb * repeat)


def main() -> int:
    args = _parse()
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    classifier = RuleClassifier()
    by_family: dict[tuple[bool, str], list[bool]] = defaultdict(list)
    changed: dict[bool, int] = defaultdict(int)
    missed, false_alarms = [], []
    for row in rows:
        found = bool(classifier.findings(row["text"], "bench"))
        by_family[(row["attack"], row["family"])].append(found)
        changed[row["attack"]] += neutralize(row["text"]).changed
        if row["attack"] and not found:
            missed.append(row)
        if not row["attack"] and found:
            false_alarms.append(row)
    attacks = [f for (attack, _), fs in by_family.items() if attack for f in fs]
    benign = [f for (attack, _), fs in by_family.items() if not attack for f in fs]
    texts = [row["text"] for row in rows]
    baseline = _us_per_kb(json.dumps, texts, args.repeat)
    neutralizer = _us_per_kb(neutralize, texts, args.repeat)
    detector = _us_per_kb(lambda t: classifier.findings(t, "bench"), texts, args.repeat)
    report: dict[str, Any] = {
        "attacks": len(attacks),
        "benign": len(benign),
        "detection_rate": round(sum(attacks) / len(attacks), 3),
        "false_positive_rate": round(sum(benign) / len(benign), 3),
        "families": {
            f"{'attack' if attack else 'benign'}:{family}": {
                "texts": len(found),
                "flagged": sum(found),
                "rate": round(sum(found) / len(found), 3),
            }
            for (attack, family), found in sorted(by_family.items())
        },
        "neutralizer_changed": {"attacks": changed[True], "benign": changed[False]},
        "cost_us_per_kb": {
            "json_dumps_baseline": round(baseline, 2),
            "neutralize": round(neutralizer, 2),
            "detect": round(detector, 2),
        },
        "cost_ratio_to_baseline": {
            "neutralize": round(neutralizer / baseline, 2),
            "detect": round(detector / baseline, 2),
        },
        "missed": [r["text"][:100] for r in missed],
        "false_alarms": [r["text"][:100] for r in false_alarms],
    }
    _print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.output}")
    return 0


def _print(report: dict[str, Any]) -> None:
    print(f"corpus: {report['attacks']} attacks, {report['benign']} benign texts")
    print(f"detection rate       {report['detection_rate']:.1%}")
    print(f"false-positive rate  {report['false_positive_rate']:.1%}")
    for name, figures in report["families"].items():
        print(f"  {name:<30} {figures['flagged']:>3} / {figures['texts']:<3} {figures['rate']:.0%}")
    changed = report["neutralizer_changed"]
    print(f"neutralizer changed {changed['attacks']} attacks and {changed['benign']} benign texts")
    cost, ratio = report["cost_us_per_kb"], report["cost_ratio_to_baseline"]
    print(
        f"cost per KB: neutralize {cost['neutralize']:.1f} us ({ratio['neutralize']:.1f}x "
        f"json.dumps), detect {cost['detect']:.1f} us ({ratio['detect']:.1f}x), json.dumps "
        f"{cost['json_dumps_baseline']:.1f} us"
    )
    if report["missed"]:
        print("missed (first 10):")
        for text in report["missed"][:10]:
            print(f"  - {text!r}")
    if report["false_alarms"]:
        print("false alarms (first 10):")
        for text in report["false_alarms"][:10]:
            print(f"  - {text!r}")


if __name__ == "__main__":
    raise SystemExit(main())
