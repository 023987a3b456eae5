//! The NumPy table: entries called positionally and by keyword give NumPy's values, and
//! wrong calls raise Python's own TypeError (never a panic).

mod common;

use pyo3::prelude::*;

const X: &str = "np.linspace(-1.5, 2.0, 12).reshape(3, 4)";

#[test]
fn keyword_forms() {
    common::with_py(|py| {
        for f in [
            "lambda x: np.sum(a=x)",
            "lambda x: np.sum(x, axis=1, keepdims=True)",
            "lambda x: np.transpose(a=x)",
            "lambda x: np.cumsum(a=x, axis=0)",
            "lambda x: np.clip(a=x, a_min=-0.5, a_max=0.5)",
            "lambda x: np.mean(a=x, axis=0)",
            "lambda x: np.reshape(x, shape=(4, 3))",
            "lambda x: np.where(x > 0, x, 0.0)",
            "lambda x: np.einsum('ij,kj->ik', x, x)",
            "lambda x: np.fmax(x, np.where(x > 0, np.nan, -x))",
            "lambda x: np.fmin(np.where(x > 1, np.nan, x), 0.25)",
        ] {
            let (got, want) = common::graph_and_numpy(py, f, X);
            common::assert_same(f, &got, &want);
        }
    })
}

#[test]
fn wrong_calls_raise_type_error() {
    common::with_py(|py| {
        let x = common::eval(py, X);
        for f in [
            "lambda x: pow(x)",
            "lambda x: getattr(x)",
            "lambda x: np.sum(x, bogus=1)",
            "lambda x: np.transpose()",
            "lambda x: np.clip(x, 0.0, 1.0, a=x)",
            "lambda x: abs(x, x)",
            "lambda x: np.cumsum(x, 0, None, None, 5)",
        ] {
            let e = match common::capture(py, f, &x) {
                Ok(_) => panic!("{f} must fail"),
                Err(e) => PyErr::from(e),
            };
            assert!(
                e.is_instance_of::<pyo3::exceptions::PyTypeError>(py),
                "{f}: {e}"
            );
        }
    })
}
