//! Golden tests of the math text printer (after `simplify_for_print` unless noted).

mod common;
use common::*;

fn unary_case(op: U) -> String {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let y = g.u(op, x);
    g.raw(&[y])
}

#[test]
fn seed_gradient_prints_as_math() {
    let (g, gu) = seed_gradient();
    assert_eq!(g.pretty(&[gu]), "2*(x + 1)");
}

#[test]
fn seed_gradient_with_header() {
    let (g, gu) = seed_gradient();
    let (s, o) = simplify_for_print(&g.0, &[gu]);
    let opts = TextOptions {
        header: Some("∇f(x) =".into()),
        ..TextOptions::default()
    };
    assert_eq!(to_text(&s, &o, &opts), "∇f(x) = 2*(x + 1)");
}

#[test]
fn tanh_layer_gradient() {
    let (g, outs) = tanh_gradient();
    let (s, o) = simplify_for_print(&g.0, &outs);
    let opts = TextOptions {
        labels: vec!["∂/∂W".into(), "∂/∂x".into(), "∂/∂b".into()],
        ..TextOptions::default()
    };
    assert_eq!(
        to_text(&s, &o, &opts),
        "let t1 = 1 - tanh(W @ x + b)**2\n∂/∂W = outer(t1, x)\n∂/∂x = t1 @ W\n∂/∂b = t1"
    );
}

#[test]
fn arithmetic_identities_and_constants() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let (one, two, three, zero) = (g.c(1.0), g.c(2.0), g.c(3.0), g.c(0.0));
    let a = g.b(B::Add, x, one);
    let a = g.b(B::Add, a, one);
    assert_eq!(g.pretty(&[a]), "x + 2");
    let m = g.b(B::Mul, three, x);
    let m = g.b(B::Mul, two, m);
    assert_eq!(g.pretty(&[m]), "6*x");
    let s = g.b(B::Sub, x, two);
    assert_eq!(g.pretty(&[s]), "x - 2");
    let z = g.b(B::Add, x, zero);
    let z = g.b(B::Mul, z, one);
    let z = g.b(B::Div, z, one);
    assert_eq!(g.pretty(&[z]), "x");
    let p = g.b(B::Pow, x, one);
    assert_eq!(g.pretty(&[p]), "x");
    let xx = g.b(B::Add, x, x);
    assert_eq!(g.pretty(&[xx]), "2*x");
    let sq = g.b(B::Mul, x, x);
    assert_eq!(g.pretty(&[sq]), "x**2");
    let n = g.u(U::Neg, x);
    let nn = g.u(U::Neg, n);
    assert_eq!(g.pretty(&[nn]), "x");
    let k = g.b(B::Mul, x, zero);
    assert_eq!(g.pretty(&[k]), "0*x", "x*0 stays unless x is a constant");
}

#[test]
fn like_terms_and_reciprocals() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let y = g.x("y", &[3]);
    let (two, three, one) = (g.c(2.0), g.c(3.0), g.c(1.0));
    let a = g.b(B::Mul, two, x);
    let b = g.b(B::Mul, x, three);
    let s = g.b(B::Add, a, b);
    assert_eq!(g.pretty(&[s]), "5*x");
    let ay = g.b(B::Mul, x, y);
    let by = g.b(B::Mul, two, y);
    let f = g.b(B::Add, ay, by);
    assert_eq!(g.pretty(&[f]), "(x + 2)*y");
    let r = g.b(B::Div, one, y);
    let q = g.b(B::Mul, x, r);
    assert_eq!(g.pretty(&[q]), "x/y");
    let ny = g.u(U::Neg, y);
    let d = g.b(B::Sub, x, ny);
    assert_eq!(g.pretty(&[d]), "x + y");
    let e = g.b(B::Add, x, ny);
    assert_eq!(g.pretty(&[e]), "x - y");
}

#[test]
fn stabilized_forms() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let one = g.c(1.0);
    let a = g.b(B::Add, one, x);
    let l = g.u(U::Log, a);
    assert_eq!(g.pretty(&[l]), "log1p(x)");
    let e = g.u(U::Exp, x);
    let m = g.b(B::Sub, e, one);
    assert_eq!(g.pretty(&[m]), "expm1(x)");
    let nx = g.u(U::Neg, x);
    let en = g.u(U::Exp, nx);
    let den = g.b(B::Add, one, en);
    let s = g.b(B::Div, one, den);
    assert_eq!(g.pretty(&[s]), "σ(x)");
    assert!(
        g.ascii(&[s]).contains("exp(-x)"),
        "the raw graph keeps the division"
    );
}

#[test]
fn reductions() {
    let mut g = G::new();
    let a = g.x("A", &[2, 3]);
    let all = g.0.sum(a, &[0, 1]).unwrap();
    assert_eq!(g.raw(&[all]), "Σ(A)");
    assert_eq!(g.ascii(&[all]), "sum(A)");
    let rows = g.0.sum(a, &[0]).unwrap();
    assert_eq!(g.raw(&[rows]), "sum(A, axis=0)");
    let mx = g.0.reduce(ReduceOp::Max, a, &[1]).unwrap();
    assert_eq!(g.raw(&[mx]), "max(A, axis=1)");
    let am = g.op(Op::ArgMax(1, false), &[a]);
    assert_eq!(g.raw(&[am]), "argmin(A, axis=1)");
    let s = g.x("s", &[]);
    let bs = g.0.broadcast(s, &[4]).unwrap();
    let t = g.0.sum(bs, &[0]).unwrap();
    assert_eq!(g.pretty(&[t]), "4*s");
}

#[test]
fn matrix_products() {
    let mut g = G::new();
    let a = g.x("A", &[2, 3]);
    let b = g.x("B", &[3, 4]);
    let c = g.x("C", &[2, 4]);
    let x = g.x("x", &[3]);
    let y = g.x("y", &[3]);
    let mm = g.0.matmul(a, b).unwrap();
    assert_eq!(g.raw(&[mm]), "A @ B");
    let atc = g.contract("ji,jk->ik", a, c);
    assert_eq!(g.raw(&[atc]), "Aᵀ @ C");
    let cbt = g.contract("ik,jk->ij", c, b);
    assert_eq!(g.raw(&[cbt]), "C @ Bᵀ");
    assert_eq!(g.ascii(&[cbt]), "C @ B.T");
    let mv = g.0.matmul(a, x).unwrap();
    assert_eq!(g.raw(&[mv]), "A @ x");
    let vm = g.contract("ij,i->j", b, x);
    assert_eq!(g.raw(&[vm]), "x @ B");
    let d = g.0.matmul(x, y).unwrap();
    assert_eq!(g.raw(&[d]), "x · y");
    assert_eq!(g.ascii(&[d]), "x @ y");
    let o = g.contract("i,j->ji", x, y);
    assert_eq!(g.raw(&[o]), "outer(y, x)");
    let t = g.x("T", &[2, 3, 4]);
    let e = g.contract("ijk,lk->ijl", t, b);
    assert_eq!(g.raw(&[e]), "einsum(\"ijk,lk->ijl\", T, B)");
    let tr = g.0.transpose(a, &[1, 0]).unwrap();
    assert_eq!(g.raw(&[tr]), "Aᵀ");
    let s1 = g.b(B::Add, a, a);
    let tr2 = g.0.transpose(s1, &[1, 0]).unwrap();
    assert_eq!(g.raw(&[tr2]), "(A + A)ᵀ");
    let tt = g.0.transpose(t, &[2, 0, 1]).unwrap();
    assert_eq!(g.raw(&[tt]), "transpose(T, (2, 0, 1))");
}

#[test]
fn unary_functions() {
    assert_eq!(unary_case(U::Exp), "exp(x)");
    assert_eq!(unary_case(U::Sqrt), "√x");
    assert_eq!(unary_case(U::Abs), "|x|");
    assert_eq!(unary_case(U::Neg), "-x");
    assert_eq!(unary_case(U::Square), "x**2");
    assert_eq!(unary_case(U::Reciprocal), "1/x");
    assert_eq!(unary_case(U::Floor), "⌊x⌋");
    assert_eq!(unary_case(U::Gammaln), "gammaln(x)");
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let one = g.c(1.0);
    let a = g.b(B::Add, x, one);
    let r = g.u(U::Sqrt, a);
    assert_eq!(g.raw(&[r]), "√(x + 1)");
    assert_eq!(g.ascii(&[r]), "sqrt(x + 1)");
}

#[test]
fn precedence() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let y = g.x("y", &[3]);
    let z = g.x("z", &[3]);
    let three = g.c(3.0);
    let yz = g.b(B::Mul, y, z);
    let d = g.b(B::Div, x, yz);
    assert_eq!(g.raw(&[d]), "x/(y*z)");
    let xy = g.b(B::Sub, x, y);
    let zx = g.b(B::Sub, z, x);
    let s = g.b(B::Sub, xy, zx);
    assert_eq!(g.raw(&[s]), "x - y - (z - x)");
    let p = g.b(B::Pow, xy, three);
    assert_eq!(g.raw(&[p]), "(x - y)**3");
    let nx = g.u(U::Neg, x);
    let np = g.b(B::Pow, nx, three);
    assert_eq!(g.raw(&[np]), "(-x)**3");
    let px = g.b(B::Pow, x, three);
    let n2 = g.u(U::Neg, px);
    assert_eq!(g.raw(&[n2]), "-x**3");
    let pp = g.b(B::Pow, x, px);
    let ppp = g.b(B::Pow, pp, y);
    assert_eq!(g.raw(&[ppp]), "(x**x**3)**y");
}

#[test]
fn comparisons_where_and_logic() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let y = g.x("y", &[3]);
    let zero = g.c(0.0);
    let one = g.c(1.0);
    let pos = g.b(B::Gt, x, zero);
    let w = g.0.select(pos, x, zero).unwrap();
    assert_eq!(g.pretty(&[w]), "where(x > 0, x, 0)");
    let lt = g.b(B::Lt, y, one);
    let both = g.b(B::And, pos, lt);
    assert_eq!(g.raw(&[both]), "(x > 0) & (y < 1)");
    let not = g.u(U::Not, both);
    assert_eq!(g.raw(&[not]), "¬((x > 0) & (y < 1))");
    assert_eq!(g.ascii(&[not]), "~((x > 0) & (y < 1))");
    let c = g.0.cast(pos, DType::F64).unwrap();
    assert_eq!(g.raw(&[c]), "float64(x > 0)");
    let m = g.b(B::Maximum, x, zero);
    assert_eq!(g.raw(&[m]), "maximum(x, 0)");
}

#[test]
fn constants() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let v = g.t(&[3], &[1.0, 2.5, -3.0]);
    let m = g.b(B::Mul, x, v);
    assert_eq!(g.raw(&[m]), "x*[1, 2.5, -3]");
    let m2 = g.t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(g.raw(&[m2]), "[[1, 2], [3, 4]]");
    let big: Vec<f64> = (0..16).map(f64::from).collect();
    let b = g.t(&[4, 4], &big);
    assert_eq!(g.raw(&[b]), "const(4x4)");
    let small = g.c(1e-10);
    let s = g.b(B::Add, x, small);
    assert_eq!(g.raw(&[s]), "x + 1e-10");
    let h = g.c(-0.5);
    let s2 = g.b(B::Add, x, h);
    assert_eq!(g.raw(&[s2]), "x - 0.5");
    let inf = g.c(f64::INFINITY);
    let mn = g.b(B::Minimum, x, inf);
    assert_eq!(g.raw(&[mn]), "minimum(x, ∞)");
}

#[test]
fn shared_subexpressions_become_lets() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let one = g.c(1.0);
    let a = g.b(B::Add, x, one);
    let e = g.u(U::Exp, a);
    let s = g.u(U::Sin, a);
    let p = g.b(B::Mul, e, s);
    assert_eq!(g.pretty(&[p]), "let t1 = x + 1\nexp(t1)*sin(t1)");
    g.0.names.insert(a, "shifted".into());
    assert_eq!(
        g.raw(&[p]),
        "let shifted = x + 1\nexp(shifted)*sin(shifted)"
    );
}

#[test]
fn shapes_and_headers() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let w = g.x("W", &[2, 3]);
    let y = g.0.matmul(w, x).unwrap();
    let e = g.u(U::Exp, y);
    let opts = TextOptions {
        show_shapes: true,
        ..TextOptions::default()
    };
    assert_eq!(
        to_text(&g.0, &[e], &opts),
        "# x: (3,), W: (2, 3)\nexp(W @ x)  # (2,)"
    );
    let opts = TextOptions {
        header: Some("f(x, W) =".into()),
        labels: vec!["y".into(), "e".into()],
        ..TextOptions::default()
    };
    assert_eq!(
        to_text(&g.0, &[y, e], &opts),
        "f(x, W) =\n  let t1 = W @ x\n  y = t1\n  e = exp(t1)"
    );
    assert_eq!(g.raw(&[y, e]), "let t1 = W @ x\nout0 = t1\nout1 = exp(t1)");
}

#[test]
fn broadcasts_show_only_when_they_matter() {
    let mut g = G::new();
    let a = g.x("A", &[2, 3]);
    let b = g.x("b", &[3]);
    let s = g.b(B::Add, a, b);
    assert_eq!(g.raw(&[s]), "A + b");
    let bb = g.0.broadcast(b, &[2, 3]).unwrap();
    assert_eq!(g.raw(&[bb]), "broadcast(b, (2, 3))");
    let two = g.b(B::Mul, bb, bb);
    assert_eq!(g.raw(&[two]), "broadcast(b, (2, 3))*broadcast(b, (2, 3))");
    let one = g.c(1.0);
    let full = g.0.broadcast(one, &[2, 3]).unwrap();
    assert_eq!(g.raw(&[full]), "1");
    let r = g.0.reshape(b, &[3, 1]).unwrap();
    assert_eq!(g.raw(&[r]), "reshape(b, (3, 1))");
}

#[test]
fn indexing_and_updates() {
    let mut g = G::new();
    let x = g.x("x", &[6]);
    let a = g.x("A", &[4, 5]);
    let i = g.0.add_input("i", vec![2], DType::I64);
    let v = g.x("v", &[2]);
    let sl = |start, step, len| SliceDim { start, step, len };
    let s = g.op(Op::Slice(vec![sl(1, 1, 2)]), &[x]);
    assert_eq!(g.raw(&[s]), "x[1:3]");
    let s = g.op(Op::Slice(vec![sl(0, 2, 3)]), &[x]);
    assert_eq!(g.raw(&[s]), "x[::2]");
    let s = g.op(Op::Slice(vec![sl(5, -1, 6)]), &[x]);
    assert_eq!(g.raw(&[s]), "x[::-1]");
    let s = g.op(Op::Slice(vec![sl(4, -2, 2)]), &[x]);
    assert_eq!(g.raw(&[s]), "x[4:1:-2]");
    let s = g.op(Op::Slice(vec![sl(0, 1, 4), sl(2, 1, 3)]), &[a]);
    assert_eq!(g.raw(&[s]), "A[:, 2:]");
    let gx = g.op(Op::Gather(0), &[x, i]);
    assert_eq!(g.raw(&[gx]), "x[i]");
    let ga = g.op(Op::Gather(1), &[a, i]);
    assert_eq!(g.raw(&[ga]), "A[:, i]");
    let sa = g.op(Op::ScatterAdd(0), &[x, i, v]);
    assert_eq!(g.raw(&[sa]), "x.at[i].add(v)");
    let ss = g.op(Op::SetSlice(vec![sl(1, 1, 2)]), &[x, v]);
    assert_eq!(g.raw(&[ss]), "x.at[1:3].set(v)");
}

#[test]
fn structural_ops() {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let y = g.x("y", &[2]);
    let c = g.op(Op::Concat(0), &[x, y]);
    assert_eq!(g.raw(&[c]), "concat([x, y], axis=0)");
    let cs = g.op(Op::Cumsum(0), &[x]);
    assert_eq!(g.raw(&[cs]), "cumsum(x, axis=0)");
    let srt = g.op(Op::ArgSort(0), &[x]);
    assert_eq!(g.raw(&[srt]), "argsort(x, axis=0)");
}

#[test]
fn linear_algebra() {
    let mut g = G::new();
    let a = g.x("A", &[3, 3]);
    let b = g.x("B", &[3, 2]);
    let s = g.op(Op::Solve, &[a, b]);
    assert_eq!(g.raw(&[s]), "solve(A, B)");
    let t = g.op(Op::TriSolve(true), &[a, b]);
    assert_eq!(g.raw(&[t]), "solve_triangular(A, B, lower=True)");
    let i = g.op(Op::Inv, &[a]);
    assert_eq!(g.raw(&[i]), "A⁻¹");
    assert_eq!(g.ascii(&[i]), "inv(A)");
    let d = g.op(Op::Det, &[a]);
    assert_eq!(g.raw(&[d]), "det(A)");
    let l = g.op(Op::LogAbsDet, &[a]);
    assert_eq!(g.raw(&[l]), "log|det(A)|");
    let c = g.op(Op::Cholesky, &[a]);
    assert_eq!(g.raw(&[c]), "cholesky(A)");
}
