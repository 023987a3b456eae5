#!/usr/bin/env python3
"""The long differential-testing campaign: generates programs (tests/gen), checks each one
(value, gradient vs finite differences and JAX, compiled vs reference evaluator, simplified
vs unsimplified, Hessian-vector products, second calls), shrinks every failure and writes
the failures as JSON lines.

    python scripts/campaign.py --programs 10000 [--start 0] [--out campaign.jsonl]

Prints a summary (programs checked, failures by check) at the end and a progress line
every --every programs. A failure's record holds the seed, the failing check, the message
and the shrunk program (a regression case for tests/gen/regressions.json).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import gen


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=1000)
    ap.add_argument("--start", type=int, default=100000, help="first seed (CI uses seeds below 100000)")
    ap.add_argument("--out", default="campaign.jsonl")
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--jax-every", type=int, default=50, help="compare with JAX (jit) every N programs; autograd otherwise")
    ap.add_argument("--no-oracle", action="store_true", help="no second AD system")
    ap.add_argument("--no-shrink", action="store_true")
    a = ap.parse_args(argv)
    counts = collections.Counter()
    t0 = time.time()
    with open(a.out, "a") as out:
        for k in range(a.programs):
            seed = a.start + k
            p = gen.generate(seed)
            oracle = False if a.no_oracle else (True if a.jax_every and seed % a.jax_every == 0 else "autograd")
            v = gen.check(p, use_jax=oracle)
            counts["ok" if v.ok else v.check] += 1
            if not v.ok:
                small = p if a.no_shrink else gen.shrink(p, v, use_jax=oracle)
                rec = {"seed": seed, "check": v.check, "message": v.message[:2000], "program": small.to_json()}
                rec["source"] = small.source()
                out.write(json.dumps(rec) + "\n")
                out.flush()
                print(f"seed {seed}: {v.check}: {v.message.splitlines()[0][:200]}", flush=True)
            if (k + 1) % a.every == 0:
                print(f"{k + 1} programs, {time.time() - t0:.0f} s: {dict(counts)}", flush=True)
    print(f"done: {a.programs} programs in {time.time() - t0:.0f} s: {dict(counts)}", flush=True)
    return 0 if counts["ok"] == a.programs else 1


if __name__ == "__main__":
    sys.exit(main())
