//! A SymPy expression of an elementwise graph.
//!
//! Guarantees: for a graph whose every op works element by element (unary, binary, where,
//! float casts, and broadcasts of 0-d values), the result is one Python expression over
//! `sympy` and the input names (bind each name to `sympy.Symbol(name)` to evaluate it);
//! several outputs give a tuple. Anything else (reductions, products, layout, indexing,
//! linear algebra, `round`, integer casts, loops) is an `Err` naming the op.

use autodiff_ir::{BinaryOp, DType, Graph, NodeId, Op, UnaryOp};

use crate::syntax::*;

/// The longest expression text built (each node's text is at most a few times this long).
pub const MAX_CHARS: usize = 1 << 20;

/// A SymPy expression computing the outputs, or why the graph is not elementwise.
pub fn to_sympy(g: &Graph, outputs: &[NodeId]) -> Result<String, String> {
    let b = Bindings::new(g, outputs, &|_| false);
    let mut cache: Vec<Option<Expr>> = vec![None; g.len()];
    for i in (0..g.len()).filter(|&i| b.reach[i]) {
        let e = node(g, NodeId(i as u32), &cache)?;
        // one expression repeats every shared subexpression: a loop of n steps doubles
        // it n times, so stop before the text outgrows memory
        if e.s.len() > MAX_CHARS {
            return Err(format!(
                "to_sympy: the expression would exceed {MAX_CHARS} characters (one SymPy \
                 expression repeats each shared subexpression, and this graph has many, as a \
                 loop makes); use to_text, to_latex or to_source, which name shared values"
            ));
        }
        cache[i] = Some(e);
    }
    let outs: Vec<String> = outputs
        .iter()
        .map(|o| cache[o.index()].clone().unwrap().s)
        .collect();
    Ok(match outs.len() {
        1 => outs[0].clone(),
        _ => format!("({})", outs.join(", ")),
    })
}

fn not_elementwise(what: &str) -> Result<Expr, String> {
    Err(format!(
        "to_sympy: {what} is not elementwise; SymPy output covers elementwise graphs only"
    ))
}

fn number(v: f64) -> Expr {
    num_expr(match v {
        v if v.is_nan() => "sympy.nan".into(),
        v if v == f64::INFINITY => "sympy.oo".into(),
        v if v == f64::NEG_INFINITY => "-sympy.oo".into(),
        v => num(v),
    })
}

fn node(g: &Graph, id: NodeId, cache: &[Option<Expr>]) -> Result<Expr, String> {
    let n = g.node(id);
    let e = |i: NodeId| cache[i.index()].clone().expect("operands render first");
    let call = |f: &str, args: &[&Expr]| {
        let args: Vec<&str> = args.iter().map(|a| a.s.as_str()).collect();
        Expr::atom(format!("sympy.{f}({})", args.join(", ")))
    };
    let x = || e(n.inputs[0]);
    Ok(match &n.op {
        Op::Input(k) => Expr::atom(g.input_names[*k as usize].clone()),
        Op::Const(_) => match g.uniform_const(id) {
            Some(v) if n.dtype == DType::Bool => {
                Expr::atom(if v != 0.0 { "True" } else { "False" })
            }
            Some(v) => number(v),
            None => return not_elementwise("a non-uniform array constant"),
        },
        Op::Unary(u) => {
            let x = x();
            let infix_form = |s: String, p: u8| Expr::new(s, p);
            match u {
                UnaryOp::Neg => infix_form(format!("-{}", paren(&x, P_POW)), P_NEG),
                UnaryOp::StopGradient => x,
                UnaryOp::Not => infix_form(format!("~{}", paren(&x, P_POW)), P_NEG),
                UnaryOp::Abs => call("Abs", &[&x]),
                UnaryOp::Sign => call("sign", &[&x]),
                UnaryOp::Exp => call("exp", &[&x]),
                UnaryOp::Expm1 => infix_form(format!("{} - 1", call("exp", &[&x]).s), P_ADD),
                UnaryOp::Log => call("log", &[&x]),
                UnaryOp::Log1p => Expr::atom(format!("sympy.log(1 + {})", paren(&x, P_ADD))),
                UnaryOp::Log2 => Expr::atom(format!("sympy.log({}, 2)", x.s)),
                UnaryOp::Log10 => Expr::atom(format!("sympy.log({}, 10)", x.s)),
                UnaryOp::Sqrt => call("sqrt", &[&x]),
                UnaryOp::Square => infix_form(format!("{}**2", paren(&x, P_POW + 1)), P_POW),
                UnaryOp::Reciprocal => infix_form(format!("1/{}", paren(&x, P_MUL + 1)), P_MUL),
                UnaryOp::Sin => call("sin", &[&x]),
                UnaryOp::Cos => call("cos", &[&x]),
                UnaryOp::Tan => call("tan", &[&x]),
                UnaryOp::Arcsin => call("asin", &[&x]),
                UnaryOp::Arccos => call("acos", &[&x]),
                UnaryOp::Arctan => call("atan", &[&x]),
                UnaryOp::Sinh => call("sinh", &[&x]),
                UnaryOp::Cosh => call("cosh", &[&x]),
                UnaryOp::Tanh => call("tanh", &[&x]),
                UnaryOp::Arcsinh => call("asinh", &[&x]),
                UnaryOp::Arccosh => call("acosh", &[&x]),
                UnaryOp::Arctanh => call("atanh", &[&x]),
                UnaryOp::Floor => call("floor", &[&x]),
                UnaryOp::Ceil => call("ceiling", &[&x]),
                UnaryOp::Round => return not_elementwise("round (half to even)"),
                UnaryOp::Sigmoid => {
                    infix_form(format!("1/(1 + sympy.exp(-{}))", paren(&x, P_POW)), P_MUL)
                }
                UnaryOp::Erf => call("erf", &[&x]),
                UnaryOp::Gammaln => call("loggamma", &[&x]),
                UnaryOp::Digamma => call("digamma", &[&x]),
                UnaryOp::Trigamma => call("polygamma", &[&Expr::atom("1".to_string()), &x]),
            }
        }
        Op::Binary(b) => {
            let (a, c) = display_order(g, *b, n.inputs[0], n.inputs[1]);
            let (a, c) = (e(a), e(c));
            match (b, infix(*b)) {
                (BinaryOp::Eq, _) => call("Eq", &[&a, &c]),
                (BinaryOp::Ne, _) => call("Ne", &[&a, &c]),
                (BinaryOp::FloorDiv, _) => Expr::atom(format!(
                    "sympy.floor({}/{})",
                    paren(&a, P_MUL),
                    paren(&c, P_MUL + 1)
                )),
                (BinaryOp::Mod, _) => call("Mod", &[&a, &c]),
                (_, Some(op)) => {
                    let (l, r) = operand_prec(*b, op.prec, false);
                    Expr::new(
                        format!("{}{}{}", paren(&a, l), op.py, paren(&c, r)),
                        op.prec,
                    )
                }
                (BinaryOp::Maximum, None) => call("Max", &[&a, &c]),
                (BinaryOp::Minimum, None) => call("Min", &[&a, &c]),
                (BinaryOp::Arctan2, None) => call("atan2", &[&a, &c]),
                // LogAddExp, the one call-form op left
                (_, None) => Expr::atom(format!(
                    "sympy.log({} + {})",
                    call("exp", &[&a]).s,
                    call("exp", &[&c]).s
                )),
            }
        }
        Op::Where => {
            let (c, a, b) = (e(n.inputs[0]), e(n.inputs[1]), e(n.inputs[2]));
            Expr::atom(format!(
                "sympy.Piecewise(({}, {}), ({}, True))",
                a.s, c.s, b.s
            ))
        }
        Op::Cast(dt) if dt.is_float() && g.dtype(n.inputs[0]) == DType::Bool => {
            Expr::atom(format!("sympy.Piecewise((1, {}), (0, True))", x().s))
        }
        Op::Cast(dt) if dt.is_float() => x(),
        Op::Cast(dt) => return not_elementwise(&format!("a cast to {dt}")),
        Op::Broadcast(_) if g.shape(n.inputs[0]).is_empty() => x(),
        Op::Broadcast(_) => return not_elementwise("a broadcast of an array"),
        Op::Reshape(_) => return not_elementwise("reshape"),
        Op::Transpose(_) => return not_elementwise("transpose"),
        Op::Reduce(r, _) => return not_elementwise(r.name()),
        Op::ArgMax(..) => return not_elementwise("argmax"),
        Op::Contract(_) => return not_elementwise("a contraction (matmul/dot/einsum)"),
        Op::Slice(_) | Op::SetSlice(_) => return not_elementwise("slicing"),
        Op::Gather(_) | Op::Scatter(_) | Op::ScatterAdd(_) => return not_elementwise("indexing"),
        Op::TakeAlong(_) | Op::ScatterAlongAdd(_) => return not_elementwise("indexing"),
        Op::Concat(_) => return not_elementwise("concatenate"),
        Op::Cumsum(_) | Op::Cumprod(_) => return not_elementwise("a cumulative op"),
        Op::ArgSort(_) => return not_elementwise("argsort"),
        Op::Solve | Op::TriSolve(_) | Op::Cholesky | Op::Inv | Op::Det | Op::LogAbsDet => {
            return not_elementwise("linear algebra")
        }
        // (unrolling small loops waits for `autodiff_ir::loops::unroll`)
        Op::Loop(spec) => {
            return Err(format!(
                "to_sympy: a loop ({} iterations of a body graph) has no SymPy form; SymPy \
                 output covers elementwise graphs only (str() shows the loop's recurrence, \
                 to_source() a function that runs it)",
                spec.trips
            ))
        }
    })
}
