"""Fetch once, on a machine with internet, every model, tokenizer and dataset a suite needs, so its jobs then run
with `HF_HUB_OFFLINE=1` (compute nodes without internet share the Hugging Face cache).

    python -m harp.cli.download --dry-run --config suite=paper        # list it all, fetch nothing
    python -m harp.cli.download --config suite=paper 'models=[qwen2_7b]'

`--config` takes the same keys as `snakemake --config` (workflow/config.yaml). Gated models (Llama-3.1,
Mistral-7B-v0.3, Gemma-2) need their licence accepted on the page printed and `huggingface-cli login` first.
The dry run also prints an estimate of GPU hours and disk per model from the plan (how: harp/estimate.py; not
measured): the weights at their configured dtype (the architecture in conf/model/), each exported checkpoint
again; datasets are listed, not sized (their size is the hub's to say).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from harp import estimate
from harp.errors import HarpError
from harp.eval.tasks import suite_task
from harp.workflow import Pipeline

CONFIG = Path("workflow/config.yaml")
HUB = "https://huggingface.co"
# the text each data source reads (harp.data.calibration): hub dataset, config, splits
TEXT_SOURCES = {"wikitext2": ("wikitext", "wikitext-2-raw-v1"), "c4": ("allenai/c4", "en shards 0")}
LONGBENCH = ("THUDM/LongBench", "data.zip")


@dataclass(frozen=True)
class Item:
    kind: str  # model | dataset | text | archive
    name: str  # what fetches it: a hub id, a data source, a file
    detail: str = ""
    gated: bool = False


def workflow_config(pairs: list[str]) -> dict:
    """workflow/config.yaml with `KEY=VALUE` pairs on top, values read as YAML (as `snakemake --config` does)."""
    wf = yaml.safe_load(CONFIG.read_text())
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise HarpError(f"--config {pair!r} is not KEY=VALUE, e.g. suite=paper.")
        wf[key] = yaml.safe_load(value)
    return wf


def lm_eval_datasets(tasks: list[str]) -> set[tuple[str, str]]:
    """The hub datasets (path, config) lm-eval's definitions of `tasks` read, groups and tags expanded."""
    from lm_eval.tasks import TaskManager

    index = TaskManager().task_index
    found: set[tuple[str, str]] = set()

    def visit(name: str) -> None:
        entry = index.get(name)
        if entry is None or entry.cfg is None:  # a tag: every task carrying it
            for member in [n for n, e in index.items() if name in e.tags]:
                visit(member)
        elif isinstance(entry.cfg.get("task"), list):  # a group
            for member in entry.cfg["task"]:
                visit(member if isinstance(member, str) else member["task"])
        elif entry.cfg.get("dataset_path"):
            found.add((entry.cfg["dataset_path"], entry.cfg.get("dataset_name") or ""))

    for task in tasks:
        visit(task)
    return found


def longbench_dir(configured: str | None) -> Path:
    """Where the LongBench stage reads its raw rows (eval.longbench_data, else its default folder)."""
    from harp.eval.longbench import DEFAULT_DATA

    return Path(configured or DEFAULT_DATA)


def listing(items: list[Item]) -> list[str]:
    """One line per item, a dataset's configs on its line."""
    configs: dict[str, list[str]] = {}
    for item in items:
        if item.kind == "dataset":
            configs.setdefault(item.name, []).append(item.detail)
    lines, shown = [], set()
    for item in items:
        if item.kind == "dataset" and item.name in shown:
            continue
        shown.add(item.name)
        detail = item.detail
        if item.kind == "dataset" and len(configs[item.name]) > 1:
            names = configs[item.name]
            detail = f"{len(names)} configs: {', '.join(names[:3])}" + (", ..." if len(names) > 3 else "")
        gate = f"  GATED: accept the licence at {HUB}/{item.name}, then log in" if item.gated else ""
        lines.append(f"{item.kind:8s} {item.name:38s} {detail}{gate}")
    return lines


def plan(p: Pipeline) -> list[Item]:
    """What the suite reads from outside: models, texts, task datasets."""
    items = []
    for model in p.models:
        cfg = p.model_config(model)
        m = cfg.model
        if m.build:
            items.append(Item("model", m.source, f"built here by harp.cli.build_{m.build}, nothing to fetch"))
        elif Path(m.source).expanduser().exists():
            items.append(Item("model", m.source, "a local folder, nothing to fetch"))
        else:
            size = estimate.weights(m)[1] if m.architecture else 0
            items.append(Item("model", m.source, f"{size / 1e9:.1f} GB at {m.dtype}", m.gated))
    sources = set()
    for v in p.variants.values():
        sources.add(v.cfg.calibration_set().source)
        sources.add(v.cfg.text_source(v.cfg.eval.perplexity.source))
    items += [Item("text", s, " ".join(TEXT_SOURCES[s])) for s in sorted(sources & set(TEXT_SOURCES))]
    rows = [suite_task(t) for t in p.tasks]
    first = next(iter(p.variants.values())).cfg
    if first.eval.fixtures:
        items.append(Item("dataset", "fixtures", "built here (offline fixtures), nothing to fetch"))
    else:
        plain = [r.name for r in rows if r.category != "longbench" and not r.bigbench]
        items += [Item("dataset", path, name) for path, name in sorted(lm_eval_datasets(plain))]
        if any(r.category == "longbench" for r in rows):
            items.append(
                Item(
                    "archive",
                    f"{LONGBENCH[0]}/{LONGBENCH[1]}",
                    f"unzipped into {longbench_dir(first.eval.longbench_data)}",
                )
            )
    if any(r.bigbench for r in rows):
        items.append(Item("archive", "bigbench==1.0.0 (PyPI sdist)", "make data"))
    return items


def fetch(item: Item, p: Pipeline) -> None:
    """Put one item in the Hugging Face cache (or its folder)."""
    if item.kind == "model" and "nothing to fetch" not in item.detail:
        from huggingface_hub import snapshot_download

        snapshot_download(item.name, allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.jinja"])
    elif item.kind == "text":
        from harp.data.calibration import source_texts

        for split in ("train", "test"):
            source_texts(item.name, split)
    elif item.kind == "dataset" and "nothing to fetch" not in item.detail:
        import datasets

        datasets.load_dataset(item.name, item.detail or None)
    elif item.kind == "archive" and item.name.startswith(LONGBENCH[0]):
        import zipfile

        from huggingface_hub import hf_hub_download

        target = longbench_dir(next(iter(p.variants.values())).cfg.eval.longbench_data)
        archive = hf_hub_download(LONGBENCH[0], LONGBENCH[1], repo_type="dataset")
        with zipfile.ZipFile(archive) as z:
            target.mkdir(parents=True, exist_ok=True)
            for member in (n for n in z.namelist() if n.endswith(".jsonl")):
                (target / Path(member).name).write_bytes(z.read(member))
    elif item.kind == "archive":
        from harp.data.bigbench import download

        download()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dry-run", "-n", action="store_true", help="list what would be fetched, fetch nothing")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="as snakemake --config")
    args = parser.parse_args(argv)
    try:
        p = Pipeline(workflow_config(args.config), conf_dir="conf")
        items = plan(p)
        methods = {v.method for v in p.variants.values()}
        print(f"suite {p.models} x {len(methods)} methods: {len(p.variants)} model variants, {len(p.tasks)} tasks")
        print("\n".join(listing(items)))
        print("\n".join(estimate.lines(p)))
        if args.dry_run:
            return
        for item in items:
            print(f"fetching {item.kind} {item.name} ...", flush=True)
            fetch(item, p)
        print("done: run the suite with HF_HUB_OFFLINE=1 (and HF_DATASETS_OFFLINE=1).")
    except HarpError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
