//! The specialize phase: the canonical forms become the cheaper or more familiar ones
//! (`x + -c` is printed and run as `x - c`; `x**2` runs as `square(x)`). Only these rules
//! run in this phase.

use autodiff_ir::{BinaryOp as B, UnaryOp as U};

use super::{rule, rule_for, On, Rule};
use crate::Goal;

/// The specialize rules, in the order they are tried.
pub(crate) const RULES: &[Rule] = &[
    // x + (-c) = x - c
    rule("add-neg-const-as-sub", On::Binary(B::Add), |rw, _, x| {
        let c = rw.uc(x[1]).filter(|c| *c < 0.0)?;
        let k = rw.full_like(-c, x[1]);
        Some(rw.b(B::Sub, x[0], k))
    }),
    // x + y·(-c) = x - y·c
    rule("add-neg-scaled-as-sub", On::Binary(B::Add), |rw, _, x| {
        let (y, c) = rw.with_const(x[1], B::Mul)?;
        let c = rw.uc(c).filter(|c| *c < 0.0)?;
        let k = rw.full_like(-c, y);
        let t = rw.b(B::Mul, y, k);
        Some(rw.b(B::Sub, x[0], t))
    }),
    // x**2 = square(x) (one multiply, for execution)
    rule_for(
        Goal::Execute,
        "pow-two-as-square",
        On::Binary(B::Pow),
        |rw, _, x| rw.is(x[1], 2.0).then(|| rw.u(U::Square, x[0])),
    ),
];
