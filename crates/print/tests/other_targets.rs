//! Golden tests of LaTeX, SymPy and DOT output.

mod common;
use common::*;

#[test]
fn latex_seed_gradient() {
    let (g, gu) = seed_gradient();
    let (s, o) = simplify_for_print(&g.0, &[gu]);
    assert_eq!(to_latex(&s, &o, &[]), "2 \\left(x + 1\\right)");
}

#[test]
fn latex_tanh_gradient_is_aligned() {
    let (g, outs) = tanh_gradient();
    let (s, o) = simplify_for_print(&g.0, &outs);
    let labels = [
        "\\frac{\\partial f}{\\partial W}",
        "\\frac{\\partial f}{\\partial x}",
        "\\frac{\\partial f}{\\partial b}",
    ];
    assert_eq!(
        to_latex(&s, &o, &labels),
        "\\begin{aligned}\nt_{1} &= 1 - \\tanh\\left(W x + b\\right)^{2} \\\\\n\
         \\frac{\\partial f}{\\partial W} &= t_{1} x^\\top \\\\\n\
         \\frac{\\partial f}{\\partial x} &= t_{1} W \\\\\n\
         \\frac{\\partial f}{\\partial b} &= t_{1}\n\\end{aligned}"
    );
}

#[test]
fn latex_forms() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let y = g.x("y", &[3]);
    let a = g.x("A", &[3, 3]);
    let mu = g.x("mu", &[3]);
    let one = g.c(1.0);
    let xp = g.b(B::Add, x, one);
    let d = g.b(B::Div, xp, y);
    assert_eq!(g.latex(&[d]), "\\frac{x + 1}{y}");
    let r = g.u(U::Sqrt, xp);
    assert_eq!(g.latex(&[r]), "\\sqrt{x + 1}");
    let e = g.u(U::Exp, x);
    assert_eq!(g.latex(&[e]), "e^{x}");
    let three = g.c(3.0);
    let p = g.b(B::Pow, xp, three);
    assert_eq!(g.latex(&[p]), "\\left(x + 1\\right)^{3}");
    let s = g.0.sum(x, &[0]).unwrap();
    assert_eq!(g.latex(&[s]), "\\sum\\left(x\\right)");
    let t = g.0.transpose(a, &[1, 0]).unwrap();
    assert_eq!(g.latex(&[t]), "A^\\top");
    let dt = g.0.matmul(x, y).unwrap();
    assert_eq!(g.latex(&[dt]), "x \\cdot y");
    let m = g.b(B::Mul, x, mu);
    assert_eq!(g.latex(&[m]), "x \\cdot \\mathit{mu}");
    let v = g.t(&[3], &[1.0, 2.0, 3.0]);
    assert_eq!(g.latex(&[v]), "\\begin{bmatrix}1 & 2 & 3\\end{bmatrix}");
    let ab = g.u(U::Abs, x);
    assert_eq!(g.latex(&[ab]), "\\left|x\\right|");
    let er = g.u(U::Erf, x);
    assert_eq!(g.latex(&[er]), "\\operatorname{erf}\\left(x\\right)");
    let le = g.b(B::Le, x, y);
    assert_eq!(g.latex(&[le]), "x \\le y");
    let inv = g.op(Op::Inv, &[a]);
    assert_eq!(g.latex(&[inv]), "A^{-1}");
}

#[test]
fn sympy_elementwise() {
    let (g, gu) = seed_gradient();
    let (s, o) = simplify_for_print(&g.0, &[gu]);
    assert_eq!(to_sympy(&s, &o).unwrap(), "2*(x + 1)");
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let y = g.x("y", &[3]);
    let zero = g.c(0.0);
    let e = g.u(U::Exp, x);
    let sg = g.u(U::Sigmoid, y);
    let l1 = g.u(U::Log1p, e);
    let f = g.b(B::Mul, l1, sg);
    assert_eq!(
        to_sympy(&g.0, &[f]).unwrap(),
        "sympy.log(1 + sympy.exp(x))*1/(1 + sympy.exp(-y))"
    );
    let pos = g.b(B::Gt, x, zero);
    let w = g.0.select(pos, x, zero).unwrap();
    let eq = g.b(B::Eq, x, y);
    let m = g.b(B::Maximum, x, y);
    assert_eq!(
        to_sympy(&g.0, &[w, eq, m]).unwrap(),
        "(sympy.Piecewise((x, x > 0), (0, True)), sympy.Eq(x, y), sympy.Max(x, y))"
    );
    let s0 = g.x("s", &[]);
    let sb = g.b(B::Add, s0, x);
    assert_eq!(to_sympy(&g.0, &[sb]).unwrap(), "s + x");
}

#[test]
fn sympy_refuses_an_expression_that_would_outgrow_memory() {
    // regression: y ← y·sin(y) repeated 60 times doubles the text each step (y appears
    // twice); the printer ran out of memory and aborted the process
    let mut g = G::new();
    let x = g.x("x", &[4]);
    let mut y = x;
    for _ in 0..60 {
        let s = g.u(U::Sin, y);
        y = g.b(B::Mul, y, s);
    }
    let err = to_sympy(&g.0, &[y]).unwrap_err();
    assert!(
        err.contains("would exceed") && err.contains("to_text"),
        "{err}"
    );
    // a few steps still print
    let mut y = x;
    for _ in 0..3 {
        let s = g.u(U::Sin, y);
        y = g.b(B::Mul, y, s);
    }
    assert!(to_sympy(&g.0, &[y]).unwrap().starts_with("x*sympy.sin(x)"));
}

#[test]
fn sympy_refuses_non_elementwise() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let s = g.0.sum(x, &[0]).unwrap();
    let err = to_sympy(&g.0, &[s]).unwrap_err();
    assert!(err.contains("sum is not elementwise"), "{err}");
    let a = g.x("A", &[2, 3]);
    let mv = g.0.matmul(a, x).unwrap();
    assert!(to_sympy(&g.0, &[mv]).unwrap_err().contains("contraction"));
    let bx = g.b(B::Add, a, x);
    assert!(to_sympy(&g.0, &[bx])
        .unwrap_err()
        .contains("broadcast of an array"));
}

#[test]
fn dot_drawing() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let two = g.c(2.0);
    let m = g.b(B::Mul, x, two);
    let s = g.0.sum(m, &[0]).unwrap();
    assert_eq!(
        to_dot(&g.0, &[s]),
        "digraph autodiff {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n\
         \x20 n0 [label=\"x\\n(3,)\", shape=ellipse];\n\
         \x20 n1 [label=\"2\\n()\", shape=plaintext];\n\
         \x20 n2 [label=\"broadcast\\n(3,)\"];\n  n1 -> n2;\n\
         \x20 n3 [label=\"mul\\n(3,)\"];\n  n0 -> n3 [label=\"0\"];\n  n2 -> n3 [label=\"1\"];\n\
         \x20 n4 [label=\"sum axis=0\\n()\"];\n  n3 -> n4;\n\
         \x20 out0 [label=\"out0\", shape=plaintext];\n  n4 -> out0;\n}\n"
    );
}
