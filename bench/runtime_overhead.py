"""What the runtime monitor costs: a small training loop timed with the monitor on and off.

    python bench/runtime_overhead.py [--runs 7] [--steps 200] [--threads 1]

Each configuration trains an MLP for ``--steps`` steps (forward, cross-entropy, backward, Adam
step, running loss taken with ``.item()``) with an evaluation pass under ``torch.no_grad()``
every 50 steps, once unwatched and once inside ``torchgradlint.runtime.watch()``; the two are
interleaved ``--runs`` times after one warm-up of each. The figure is the process CPU time
(``time.process_time``: user + sys of all threads), median of the runs; wall time is printed
too but is only indicative on a busy machine. The loop is clean: the monitored runs must report
no finding (the script says so if they do). Nothing is asserted.

Configurations: ``small`` (64-128-128-10, batch 64: per-operation Python overhead dominates,
the worst case for the monitor) and ``wide`` (256-1024-1024-10, batch 128: compute dominates).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import torch
from torch import nn

from torchgradlint.runtime import watch

CONFIGS = {
    "small": dict(sizes=(64, 128, 128, 10), batch=64),
    "wide": dict(sizes=(256, 1024, 1024, 10), batch=128),
}


def make_model(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.ReLU(), nn.Dropout(0.1)]
    return nn.Sequential(*layers)


def train(sizes, batch, steps, seed=0):
    """The measured loop; returns the final running loss (a float)."""
    torch.manual_seed(seed)
    model = make_model(sizes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = [(torch.randn(batch, sizes[0]), torch.randint(0, sizes[-1], (batch,)))
            for _ in range(8)]
    running = 0.0
    for step in range(steps):
        x, y = data[step % len(data)]
        model.train()
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        running = 0.9 * running + 0.1 * loss.item()
        if (step + 1) % 50 == 0:
            model.eval()
            with torch.no_grad():
                correct = sum(int((model(vx).argmax(1) == vy).sum()) for vx, vy in data[:4])
            assert correct >= 0
    return running


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def measure(name, steps, runs):
    config = CONFIGS[name]
    off_runs, on_runs = [], []
    findings = []

    def off():
        train(config["sizes"], config["batch"], steps)

    def on():
        with watch() as report:
            train(config["sizes"], config["batch"], steps)
        findings.extend(report.findings)

    off(), on()  # warm-up (lazy imports, allocator)
    findings.clear()
    for _ in range(runs):
        off_runs.append(timed(off))
        on_runs.append(timed(on))
    return off_runs, on_runs, findings


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--configs", default="small,wide")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# runtime monitor overhead, {datetime.date.today().isoformat()}")
    print(f"# {cpu_model()}, nproc={os.cpu_count()}, load average {load:.1f}; "
          f"Python {platform.python_version()}, torch {torch.__version__}, "
          f"torch threads {args.threads}; {args.steps} steps, median of {args.runs} runs")
    print(f"{'config':8} {'off CPU s':>10} {'on CPU s':>10} {'ratio':>7} {'+ms/step':>9} "
          f"{'off wall s':>11} {'on wall s':>10}")
    for name in args.configs.split(","):
        off_runs, on_runs, findings = measure(name, args.steps, args.runs)
        off_cpu = statistics.median(c for c, _ in off_runs)
        on_cpu = statistics.median(c for c, _ in on_runs)
        off_wall = statistics.median(w for _, w in off_runs)
        on_wall = statistics.median(w for _, w in on_runs)
        extra = (on_cpu - off_cpu) / args.steps * 1000
        print(f"{name:8} {off_cpu:10.3f} {on_cpu:10.3f} {on_cpu / off_cpu:6.2f}x {extra:9.2f} "
              f"{off_wall:11.3f} {on_wall:10.3f}")
        if findings:
            print(f"  (unexpected findings: {sorted({f.code for f in findings})})",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
