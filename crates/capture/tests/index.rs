//! Index handling: basic, advanced and mixed indexing, and writes through them, give the
//! values NumPy gives.

mod common;

const X: &str = "np.arange(24.0).reshape(2, 3, 4) * 0.5 - 3.0";

#[test]
fn reads() {
    common::with_py(|py| {
        for f in [
            "lambda x: x[1]",
            "lambda x: x[-1, 1:3]",
            "lambda x: x[:, ::-2, 1]",
            "lambda x: x[..., 2]",
            "lambda x: x[None, :, 0, None]",
            "lambda x: x[:, [0, 2]]",
            "lambda x: x[[1, 0], :, [3, 1]]",
            "lambda x: x[x > 0]",
            "lambda x: x[np.array([True, False])]",
            "lambda x: x[1, np.array([2, 0, 1])][:, ::3]",
        ] {
            let (got, want) = common::graph_and_numpy(py, f, X);
            common::assert_same(f, &got, &want);
        }
    })
}

#[test]
fn writes() {
    common::with_py(|py| {
        for f in [
            "lambda x: (lambda y: (y.__setitem__((0, 1), 7.0), y)[1])(x.copy())",
            "lambda x: (lambda y: (y.__setitem__((slice(None), [0, 2]), x[:, :2] * 2), y)[1])(x.copy())",
            "lambda x: (lambda y: (y.__setitem__(y < 0, 0.0), y)[1])(x.copy())",
        ] {
            let (got, want) = common::graph_and_numpy(py, f, X);
            common::assert_same(f, &got, &want);
        }
    })
}

#[test]
fn out_of_range_index_raises_numpys_error() {
    common::with_py(|py| {
        let x = common::eval(py, X);
        let e = common::capture(py, "lambda x: x[5]", &x)
            .err()
            .expect("must fail");
        let e = pyo3::PyErr::from(e);
        assert!(
            e.is_instance_of::<pyo3::exceptions::PyIndexError>(py),
            "{e}"
        );
    })
}
