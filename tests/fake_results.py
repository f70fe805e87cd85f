"""Fake finished runs with stored results (no training), for the headline and publish tests."""

from __future__ import annotations

import io
import json

import pandas as pd

from hierstudy import runs
from hierstudy.datasets import catalog
from hierstudy.evaluation.results import save_dataset_result, save_run_result

DATASETS = {catalog.title(name): name for name in ("hiershapes", *catalog.NAMES)}
RETRIEVAL_CSV = """\
method,run,protocol,K,seed,mahp,balanced_accuracy,map,recall@1,mistake_severity
CE (classification features),ce,closed set,250,0,0.5,0.6,0.4,0.7,2.0
CE (classification features),ce,closed set,250,1,0.7,0.8,0.4,0.9,2.5
KFR (α=10),kfr-alpha10,closed set,250,0,0.3,0.25,0.2,0.1,1.5
PA + HIER,hier,zero-shot,250,0,0.45,,0.35,0.55,
"""
WSOL_ROWS = [  # notebook 07's per-seed rows at the Grad-CAM layer it reports
    {"model": "CE (baseline)", "run": "ce", "seed": 0, "test_acc": 0.6, "maxboxacc_v2": 0.2},
    {"model": "CE (baseline)", "run": "ce", "seed": 1, "test_acc": 0.8, "maxboxacc_v2": 0.4},
    {"model": "centre Gaussian (no model)", "seed": "-", "test_acc": None, "maxboxacc_v2": 0.56},
]


def fake_run(cfg, run: str, seed: int, dataset: str = "hiershapes", zero_shot: bool = False):
    """The finished run ``run`` (``ce``, ``kfr-alpha10``, ``barz/ce``…) of ``dataset``: a
    result.json and a metrics.csv, nothing trained."""
    paper, _, name = run.rpartition("/")
    folder = cfg.runs_dir / dataset / paper / name / f"seed{seed}"
    if not (folder / "result.json").is_file():
        folder.mkdir(parents=True)
        result = {
            "name": name,
            "method": name.split("-")[0],
            "seed": seed,
            "dataset": dataset,
            "paper": paper or None,
            "knobs": {},
            "zero_shot": zero_shot,
            "metric": "cosine",
            "retrieval": "features",
            "test_acc": None,
            "val_acc_last5": None,
            "train_classes": 2,
            "setup": {},
            "recipe": {
                "backbone": "tiny_cnn",
                "head": "linear",
                "num_classes": 2,
                "embed_dim": 8,
                "terms": [["ce", 1.0, "logits", 0]],
            },
        }
        record = runs.RunRecord.from_json(json.dumps(result), dataset)
        result["source_hash"] = runs.source_hash_of(cfg, record)  # made by this code
        (folder / "result.json").write_text(json.dumps(result))
        (folder / "metrics.csv").write_text("epoch\n1\n")
    return next(r for r in runs.finished_runs(cfg, dataset) if r.run_dir == folder)


def store_retrieval(cfg, csv: str) -> None:
    """Each (dataset, run, seed)'s rows of a per-seed central table, stored as that run's
    ``retrieval`` result (``dataset`` defaults to HierShapes)."""
    table = pd.read_csv(io.StringIO(csv))
    if "dataset" not in table:
        table.insert(0, "dataset", "HierShapes")
    ks = [int(c.split("@")[1]) for c in table if c.startswith("recall@")]
    for (title, name, seed), rows in table.groupby(["dataset", "run", "seed"], sort=False):
        zero_shot = bool((rows.protocol == "zero-shot").all())
        run = fake_run(cfg, name, int(seed), DATASETS[title], zero_shot)
        parameters = {"K": 250, "recall_ks": ks, "hdist_k": 5}
        save_run_result(run, "retrieval", {"parameters": parameters, "rows": records(rows)})


def store_localisation(cfg, rows: list[dict], dataset: str = "hiershapes") -> None:
    """Notebook 07's per-seed rows: each stored as its run's ``localisation`` result, those
    without a run (seed "-") as the dataset's references."""
    references = [r for r in rows if r["seed"] == "-"]
    for row in rows:
        if row["seed"] != "-":
            record = {k: v for k, v in row.items() if k not in ("run", "seed")}
            save_run_result(fake_run(cfg, row["run"], row["seed"], dataset), "localisation", record)
    if references:
        save_dataset_result(cfg, dataset, "localisation", {"references": references})


def records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
