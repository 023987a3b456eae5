"""Matrix products: pyautodiff's compiled products against NumPy's BLAS in one process.

`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benches/gemm.py [--threads N]`

Two tables, float64:
- kernels: `autodiff.Function` of one product (`A @ B`, `A.T @ B`, ...) against the same
  expression in NumPy, on the shapes of the two end-to-end workloads below (logistic
  regression X 20000x200: X @ w and the gradient's X.T @ r; MLP 784-256-10, batch 512: the
  forward products and the gradient's transposed ones);
- end to end: `autodiff.Gradient` of the logistic-regression loss and of the MLP (tanh +
  softmax cross-entropy) against hand-written NumPy gradients.

`ours/numpy` is our time over NumPy's: **below 1 means pyautodiff is faster**. Every result is
checked against NumPy's before timing. OpenBLAS and our rayon pool use all cores unless
told otherwise (`--threads N` sets RAYON_NUM_THREADS, OPENBLAS_NUM_THREADS and
MATMUL_NUM_THREADS before the engines load). Timing is the round-robin harness of
`common.py` (best loop; the median is printed beside it).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--threads" in sys.argv:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _v in ("RAYON_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MATMUL_NUM_THREADS"):
        os.environ[_v] = _n

import autodiff
import numpy
from bench_gradients import hand_logistic, make_logistic
from common import check, fmt_us, time_round_robin

rng = numpy.random.default_rng(0)


def product_rows():
    """(name, our function, numpy function, args) for each product."""
    X = rng.standard_normal((20000, 200))
    w = rng.standard_normal(200)
    r = rng.standard_normal(20000)
    Xb = rng.standard_normal((512, 784))
    W1 = rng.standard_normal((784, 256))
    h = rng.standard_normal((512, 256))
    W2 = rng.standard_normal((256, 10))
    d2 = rng.standard_normal((512, 10))
    d1 = rng.standard_normal((512, 256))

    def mm(A, B):
        return A @ B

    def tn(A, B):  # A.T @ B
        return A.T @ B

    def nt(A, B):  # A @ B.T
        return A @ B.T

    return [
        ("X @ w  (20000x200 @ 200)", mm, (X, w)),
        ("X.T @ r  (200x20000 @ 20000)", tn, (X, r)),
        ("(512x784) @ (784x256)", mm, (Xb, W1)),
        ("(512x256) @ (256x10)", mm, (h, W2)),
        ("X.T @ d1  (784x512) @ (512x256)", tn, (Xb, d1)),
        ("h.T @ d2  (256x512) @ (512x10)", tn, (h, d2)),
        ("d2 @ W2.T  (512x10) @ (10x256)", nt, (d2, W2)),
    ]


def make_mlp_ce(np):
    def mlp_ce(params, X, Y):
        W1, b1, W2, b2 = params
        h = np.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        z = z - np.max(z, axis=1, keepdims=True)
        logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
        return -np.sum(Y * logp) / X.shape[0]

    return mlp_ce


def hand_mlp_ce(params, X, Y):
    W1, b1, W2, b2 = params
    h = numpy.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    e = numpy.exp(z - z.max(axis=1, keepdims=True))
    d = (e / e.sum(axis=1, keepdims=True) - Y) / X.shape[0]
    dh = (d @ W2.T) * (1 - h**2)
    return [X.T @ dh, dh.sum(0), h.T @ d, d.sum(0)]


def end_to_end_rows():
    X = rng.standard_normal((20000, 200))
    y = numpy.sign(rng.standard_normal(20000))
    w = rng.standard_normal(200) * 0.1
    params = [
        rng.standard_normal((784, 256)) * 0.05,
        numpy.zeros(256),
        rng.standard_normal((256, 10)) * 0.05,
        numpy.zeros(10),
    ]
    Xb = rng.standard_normal((512, 784))
    Y = numpy.eye(10)[rng.integers(0, 10, 512)]
    return [
        ("grad logistic regression, X 20000x200", make_logistic(numpy), hand_logistic, (w, X, y)),
        ("grad MLP 784-256-10 tanh+softmax CE, batch 512", make_mlp_ce(numpy), hand_mlp_ce, (params, Xb, Y)),
    ]


def table(rows) -> str:
    lines = ["| workload | pyautodiff | numpy | ours/numpy |", "|---|---|---|---|"]
    for name, ours, theirs in rows:
        lines.append(
            f"| {name} | {fmt_us(ours[0])} (median {fmt_us(ours[1])}) "
            f"| {fmt_us(theirs[0])} (median {fmt_us(theirs[1])}) | {ours[0] / theirs[0]:.2f} |"
        )
    return "\n".join(lines)


def run():
    kernels = []
    for name, fn, args in product_rows():
        print(f"  {name} ...", file=sys.stderr, flush=True)
        ours = autodiff.Function(fn)
        check(name, "numpy", fn(*args), ours(*args), rtol=1e-10, atol=1e-10)
        t = time_round_robin({"ours": (ours, args), "numpy": (fn, args)})
        kernels.append((name, t["ours"], t["numpy"]))
    e2e = []
    for name, make, hand, args in end_to_end_rows():
        print(f"  {name} ...", file=sys.stderr, flush=True)
        ours = autodiff.Gradient(make, wrt=0)
        check(name, "numpy (hand)", hand(*args), ours(*args), rtol=1e-9, atol=1e-12)
        t = time_round_robin({"ours": (ours, args), "numpy": (hand, args)})
        e2e.append((name, t["ours"], t["numpy"]))
    return kernels, e2e


def main():
    blas = {k: os.environ[k] for k in os.environ if k.startswith(("OPENBLAS", "RAYON", "MATMUL"))}
    print(f"NumPy {numpy.__version__}; thread/BLAS env: {blas or 'none set'}; {os.cpu_count()} cores")
    kernels, e2e = run()
    print("\n## Products (float64)\n")
    print(table(kernels))
    print("\n## Gradients end to end (float64)\n")
    print(table(e2e))


if __name__ == "__main__":
    main()
