//! Printers of the IR: math text, LaTeX, runnable NumPy source, SymPy, Graphviz DOT.
//!
//! Every printer matches `Op` exhaustively, so a new op cannot be forgotten. The infix
//! targets (text, LaTeX, NumPy, SymPy) share one precedence table and one reading of
//! contractions as matrix products ([`syntax`]); shared subexpressions become names
//! (`let t1 = ...` in text, `t1 = ...` statements in source). Printers print what they are
//! given: run `autodiff_simplify::simplify_for_print` first for the most readable result.

mod dot;
mod numpy;
mod sympy;
pub mod syntax;
mod text;

pub use dot::to_dot;
pub use numpy::{to_numpy_source, to_source, Target};
pub use sympy::to_sympy;
pub use text::{to_latex, to_text, TextOptions};
