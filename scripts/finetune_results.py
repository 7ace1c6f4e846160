"""Collect `grover finetune` results folders into one Markdown table, next to the paper's MCCs.

    python scripts/finetune_results.py runs/ft/prom300 runs/ft/promscan ... > table.md
"""

import json
import math
import sys
from pathlib import Path

# GROVER (Sanabria et al. 2024) test MCC, in %: GROVER / best other DNA LM / TF-IDF + random forest
# (docs/GROVER_METHOD.md §5).
PAPER_MCC = {"prom300": (99.6, 79, 67), "promscan": (63, 52, 39), "ctcf": (60, 59, 26)}
METRICS = ("accuracy", "f1", "mcc", "auroc", "auprc")


def cell(entry: dict, metric: str) -> str:
    value = entry["test"]["metrics"][metric]
    low, high = entry["test"]["ci"][metric]
    return "–" if math.isnan(value) else f"{value:.3f} [{low:.2f}, {high:.2f}]"


def main(folders: list[str]) -> None:
    print("| run: task (genome) | test n (labels) | model | " + " | ".join(METRICS)
          + " | paper MCC %: GROVER / best other / TF-IDF |")
    print("|---|---|---|" + "---|" * len(METRICS) + "---|")
    for folder in folders:
        results = json.loads((Path(folder) / "results.json").read_text())
        task = results["task"]
        paper = PAPER_MCC.get(task["name"])
        labels = ", ".join(f"{task['class_names'][int(k)]} {v}" for k, v in task["labels"]["test"].items())
        for i, (name, entry) in enumerate(results["models"].items()):
            first = i == 0
            print(f"| {Path(folder).name + ': ' + task['name'] + ' (' + task['source'] + ')' if first else ''} "
                  f"| {str(task['test_examples']) + ' (' + labels + ')' if first else ''} | {name} | "
                  + " | ".join(cell(entry, m) for m in METRICS)
                  + f" | {' / '.join(map(str, paper)) if first and paper else ''} |")


if __name__ == "__main__":
    main(sys.argv[1:])
