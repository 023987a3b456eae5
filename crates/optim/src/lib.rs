//! Native optimizers over a flat `f64` vector, with no Python in them.
//!
//! [`lbfgsb`] is L-BFGS-B (Byrd, Lu, Nocedal, Zhu 1995, with the 2011 Morales–Nocedal
//! projection of the subspace step) driven by a closure that returns the value and fills
//! the gradient. It guarantees: every evaluated point lies inside the bounds; the returned
//! point is the last accepted iterate (never a trial point of a failed line search, never
//! a point where the objective was not finite); the stopping rules are the published
//! algorithm's (`pgtol` on the projected gradient's infinity norm, `factr` on the relative
//! reduction of `f`), so results agree with SciPy's implementation of the same algorithm.
//! [`linesearch`] is the Moré–Thuente (1994) line search it uses (strong Wolfe conditions).

mod dense;
mod lbfgsb;
pub mod linesearch;

pub use lbfgsb::{lbfgsb, Options, Progress, Report, Status};
