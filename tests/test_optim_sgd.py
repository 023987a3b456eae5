"""fmin_sgd / fmin_adam over streams of minibatches: they reach the L-BFGS-B optimum of a
logistic regression, back off from too-large steps, and keep to their budgets."""

import autodiff
import numpy as np
import pytest


def make_data(n=1200, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w_true = np.linspace(-1.5, 2.0, d)
    p = 1.0 / (1.0 + np.exp(-(X @ w_true + 0.3)))
    sign = np.where(rng.random(n) < p, 1.0, -1.0)
    return X, sign


def loss(w, b, X, sign):
    return np.mean(np.log1p(np.exp(-sign * (X @ w + b))))


X, SIGN = make_data()


def batches(size=60, seed=0):
    """A generator of shuffled minibatches (one pass)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(X))
    for k in range(0, len(X), size):
        j = idx[k : k + size]
        yield X[j], SIGN[j]


def epochs():
    """A stream factory: a fresh shuffled pass each call."""
    epochs.count += 1
    return batches(seed=epochs.count)


epochs.count = 0


@pytest.fixture(scope="module")
def optimum():
    w, b = autodiff.fmin_l_bfgs_b(lambda w, b: loss(w, b, X, SIGN), [np.zeros(4), np.zeros(())], pgtol=1e-9)
    return float(loss(w, b, X, SIGN))


def full_loss(res):
    w, b = res.x
    return float(loss(w, b, X, SIGN))


def test_sgd_with_momentum_reaches_the_lbfgs_optimum(optimum):
    res = autodiff.fmin_sgd(
        loss, [np.zeros(4), np.zeros(())], epochs, stepsize=0.2, momentum=0.9, max_epochs=25, check_every=20
    )
    assert res.success and res.x[0].shape == (4,) and res.x[1].shape == ()
    assert full_loss(res) <= optimum * 1.01, (full_loss(res), optimum)
    assert res.nit == res.nfev == 25 * 20
    assert len(res.history["loss"]) == res.nit // 20


def test_adam_with_per_argument_rates(optimum):
    res = autodiff.fmin_adam(loss, [np.zeros(4), np.zeros(())], epochs, stepsize=[0.05, 0.02], max_epochs=25)
    assert full_loss(res) <= optimum * 1.01, (full_loss(res), optimum)


def test_too_large_a_step_backs_off_and_converges_without_nan(optimum):
    res = autodiff.fmin_sgd(
        loss, [np.zeros(4), np.zeros(())], epochs, stepsize=200.0, momentum=0.9, max_epochs=40, check_every=20
    )
    # the step size reported is the one in use: the start's, halved per back-off
    assert res.backoffs > 0 and res.stepsize == pytest.approx(200.0 * 0.5**res.backoffs)
    assert res.history["stepsize"][0] <= 200.0
    assert all(np.all(np.isfinite(a)) for a in res.x) and np.isfinite(res.fun)
    assert full_loss(res) <= optimum * 1.01, (full_loss(res), optimum, res.backoffs)


def test_non_finite_loss_restores_the_last_good_point():
    # the loss is NaN for x > 1: every step that lands there is undone and the step shrinks
    def f(x, target):
        return np.sum((x - target) ** 2) + np.sqrt(1.0 - x[0])

    stream = [(np.array([3.0, 0.5]),)] * 400
    res = autodiff.fmin_sgd(f, [np.zeros(2)], stream, stepsize=0.6, check_every=10)
    assert res.backoffs > 0 and np.all(np.isfinite(res.x[0])) and res.x[0][0] < 1.0
    assert np.isfinite(res.fun)


def test_generator_is_one_pass_and_max_steps_is_a_budget():
    res = autodiff.fmin_sgd(loss, [np.zeros(4), np.zeros(())], batches(), stepsize=0.1, max_epochs=5)
    assert res.nit == len(X) // 60  # a generator gives a single epoch
    res = autodiff.fmin_sgd(loss, [np.zeros(4), np.zeros(())], epochs, stepsize=0.1, max_epochs=5, max_steps=7)
    assert res.nit == 7 and "steps" in res.message
    with pytest.raises(ValueError, match="one rate per parameter"):
        autodiff.fmin_sgd(loss, [np.zeros(4), np.zeros(())], epochs, stepsize=[0.1])
