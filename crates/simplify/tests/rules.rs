//! One `start ⇒ goal` case per simplification rule, in the s-expression form: the start
//! graph, run through the rule's phase alone (to its fixed point, execution goal), prints
//! as the goal graph, and the named rule is among those that fired. Every rule has a case
//! (`every_rule_has_a_case`), so a new rule comes with its example.

use autodiff_ir::sexpr::{parse_graph, print_graph};
use autodiff_simplify::{all_rule_names, simplify_phase, Goal, Phase};

const C: Phase = Phase::Canonicalize;
const S: Phase = Phase::Stabilize;
const P: Phase = Phase::Specialize;

/// `(rule, phase, inputs, start term, goal term)`; a goal starting with `(let` is the
/// whole rest of the goal graph (lets and output).
#[rustfmt::skip]
const CASES: &[(&str, Phase, &str, &str, &str)] = &[
    ("fold-unary", C, "(input x float64 ())", "(add x (exp 0.0))", "(add x 1.0)"),
    ("fold-binary", C, "(input x float64 ())", "(mul x (add 2.0 3.0))", "(mul x 5.0)"),
    ("hoist-broadcast", C, "(input s float64 ())", "(exp (broadcast (3) s))", "(broadcast (3) (exp s))"),
    ("neg-neg", C, "(input x float64 ())", "(neg (neg x))", "x"),
    ("neg-sub", C, "(input x float64 ()) (input y float64 ())", "(neg (sub x y))", "(sub y x)"),
    ("neg-into-const", C, "(input x float64 ())", "(neg (mul x 3.0))", "(mul x -3.0)"),
    ("abs-abs", C, "(input x float64 ())", "(abs (abs x))", "(abs x)"),
    ("abs-neg", C, "(input x float64 ())", "(abs (neg x))", "(abs x)"),
    ("square-as-pow", C, "(input x float64 ())", "(square x)", "(pow x 2.0)"),
    ("reciprocal-as-div", C, "(input x float64 ())", "(reciprocal x)", "(div 1.0 x)"),
    ("const-right", C, "(input x float64 ())", "(add 2.0 x)", "(add x 2.0)"),
    ("idempotent", C, "(input x float64 ())", "(maximum x x)", "x"),
    ("add-zero", C, "(input x float64 ())", "(add x 0.0)", "x"),
    ("add-neg-right", C, "(input x float64 ()) (input y float64 ())", "(add x (neg y))", "(sub x y)"),
    ("add-neg-left", C, "(input x float64 ()) (input y float64 ())", "(add (neg x) y)", "(sub y x)"),
    ("add-const-const", C, "(input x float64 ())", "(add (add x 1.0) 2.0)", "(add x 3.0)"),
    ("const-sub-add-const", C, "(input x float64 ())", "(add (sub 1.0 x) 2.0)", "(sub 3.0 x)"),
    ("add-const-out-left", C, "(input x float64 ()) (input y float64 ())", "(add (add x 1.0) y)", "(add (add x y) 1.0)"),
    ("add-const-out-right", C, "(input x float64 ()) (input y float64 ())", "(add x (add y 1.0))", "(add (add x y) 1.0)"),
    ("add-like-terms", C, "(input x float64 ())", "(add (mul x 2.0) (mul x 3.0))", "(mul x 5.0)"),
    ("sub-zero", C, "(input x float64 ())", "(sub x 0.0)", "x"),
    ("zero-sub", C, "(input x float64 ())", "(sub 0.0 x)", "(neg x)"),
    ("sub-neg", C, "(input x float64 ()) (input y float64 ())", "(sub x (neg y))", "(add x y)"),
    ("sub-const-as-add", C, "(input x float64 ())", "(sub x 2.0)", "(add x -2.0)"),
    ("const-sub-add", C, "(input x float64 ())", "(sub 5.0 (add x 1.0))", "(sub 4.0 x)"),
    ("const-sub-sub", C, "(input x float64 ())", "(sub 5.0 (sub 1.0 x))", "(add x 4.0)"),
    ("sub-const-out-left", C, "(input x float64 ()) (input y float64 ())", "(sub (add x 1.0) y)", "(add (sub x y) 1.0)"),
    ("sub-const-out-right", C, "(input x float64 ()) (input y float64 ())", "(sub x (add y 1.0))", "(add (sub x y) -1.0)"),
    ("sub-like-terms", C, "(input x float64 ())", "(sub (mul x 5.0) (mul x 2.0))", "(mul x 3.0)"),
    ("mul-one", C, "(input x float64 ())", "(mul x 1.0)", "x"),
    ("mul-minus-one", C, "(input x float64 ())", "(mul x -1.0)", "(neg x)"),
    ("mul-const-const", C, "(input x float64 ())", "(mul (mul x 2.0) 3.0)", "(mul x 6.0)"),
    ("const-div-mul-const", C, "(input x float64 ())", "(mul (div 2.0 x) 3.0)", "(div 6.0 x)"),
    ("scaled-div-mul-const", C, "(input x float64 ()) (input y float64 ())", "(mul (mul (div 2.0 x) y) 3.0)", "(mul (div 6.0 x) y)"),
    ("neg-mul-const", C, "(input x float64 ())", "(mul (neg x) 3.0)", "(mul x -3.0)"),
    ("mul-neg-neg", C, "(input x float64 ()) (input y float64 ())", "(mul (neg x) (neg y))", "(mul x y)"),
    ("mul-neg-left", C, "(input x float64 ()) (input y float64 ())", "(mul (neg x) y)", "(neg (mul x y))"),
    ("mul-neg-right", C, "(input x float64 ()) (input y float64 ())", "(mul x (neg y))", "(neg (mul x y))"),
    ("mul-const-out-left", C, "(input x float64 ()) (input y float64 ())", "(mul (mul x 2.0) y)", "(mul (mul x y) 2.0)"),
    ("mul-const-out-right", C, "(input x float64 ()) (input y float64 ())", "(mul x (mul y 2.0))", "(mul (mul x y) 2.0)"),
    ("mul-reciprocal", C, "(input x float64 ()) (input y float64 ())", "(mul x (div 1.0 y))", "(div x y)"),
    ("mul-powers", C, "(input x float64 ())", "(mul (pow x 2.0) x)", "(pow x 3.0)"),
    ("div-one", C, "(input x float64 ())", "(div x 1.0)", "x"),
    ("const-div-scaled", C, "(input x float64 ())", "(div 6.0 (mul x 2.0))", "(div 3.0 x)"),
    ("div-minus-one", C, "(input x float64 ())", "(div x -1.0)", "(neg x)"),
    ("div-neg-neg", C, "(input x float64 ()) (input y float64 ())", "(div (neg x) (neg y))", "(div x y)"),
    ("pow-one", C, "(input x float64 ())", "(pow x 1.0)", "x"),
    ("pow-zero", C, "(input x float64 ()) (input y float64 ())", "(add y (pow x 0.0))", "(add y 1.0)"),
    ("pow-minus-one", C, "(input x float64 ())", "(pow x -1.0)", "(div 1.0 x)"),
    ("pow-pow", C, "(input x float64 ())", "(pow (pow x 2.0) 3.0)", "(pow x 6.0)"),
    ("where-same", C, "(input c bool ()) (input x float64 ())", "(where c x x)", "x"),
    ("where-const", C, "(input x float64 ()) (input y float64 ())", "(where (const bool () true) x y)", "x"),
    ("where-not", C, "(input c bool ()) (input x float64 ()) (input y float64 ())", "(where (not c) x y)", "(where c y x)"),
    ("cast-round-trip", C, "(input i int64 (3))", "(cast int64 (cast float64 i))", "i"),
    ("cast-same", C, "(input x float64 ())", "(cast float64 x)", "x"),
    ("fold-cast", C, "(input x float64 ())", "(add x (cast float64 (const int64 () 3)))", "(add x 3.0)"),
    ("hoist-broadcast-late", C, "(input c bool ()) (input x float64 ()) (input y float64 ())", "(where (broadcast (3) c) (broadcast (3) x) (broadcast (3) y))", "(broadcast (3) (where c x y))"),
    ("broadcast-same", C, "(input v float64 (3))", "(broadcast (3) v)", "v"),
    ("broadcast-uniform", C, "(input A float64 (2 3))", "(mul A (broadcast (2 3) (const float64 (3) 2 2 2)))", "(mul A (broadcast (2 3) 2.0))"),
    ("broadcast-broadcast", C, "(input x float64 ())", "(broadcast (2 3) (broadcast (3) x))", "(broadcast (2 3) x)"),
    ("broadcast-reshape", C, "(input x float64 ())", "(broadcast (2 3) (reshape (1) x))", "(broadcast (2 3) x)"),
    ("reshape-same", C, "(input v float64 (3))", "(reshape (3) v)", "v"),
    ("reshape-uniform", C, "(input v float64 (3 1))", "(mul v (reshape (3 1) (broadcast (3) 2.0)))", "(mul v (broadcast (3 1) 2.0))"),
    ("reshape-reshape", C, "(input v float64 (3))", "(reshape (3 1) (reshape (1 3) v))", "(reshape (3 1) v)"),
    ("fold-reshape", C, "(input v float64 (3 1))", "(mul v (reshape (3 1) (const float64 (3) 1 2 3)))", "(mul v (const float64 (3 1) 1.0 2.0 3.0))"),
    ("transpose-identity", C, "(input A float64 (2 3))", "(transpose (0 1) A)", "A"),
    ("transpose-uniform", C, "(input A float64 (3 2))", "(mul A (transpose (1 0) (broadcast (2 3) 2.0)))", "(mul A (broadcast (3 2) 2.0))"),
    ("transpose-transpose", C, "(input B float64 (2 3 4))", "(transpose (1 0 2) (transpose (0 2 1) B))", "(transpose (2 0 1) B)"),
    ("slice-full", C, "(input v float64 (3))", "(slice ((0 1 3)) v)", "v"),
    ("slice-broadcast", C, "(input v float64 (3))", "(slice ((0 1 2) (1 1 2)) (broadcast (3 3) v))", "(broadcast (2 2) (slice ((0 1 1) (1 1 2)) (reshape (1 3) v)))"),
    ("slice-slice", C, "(input x float64 (8 3))", "(slice ((1 1 2) (0 1 3)) (slice ((7 -2 4) (0 1 3)) x))", "(slice ((5 -2 2) (0 1 3)) x)"),
    ("slice-empty", C, "(input x float64 (3))", "(slice ((1 1 0)) x)", "(broadcast (0) 0.0)"),
    ("slice-concat", C, "(input x float64 (3)) (input y float64 (2))", "(slice ((4 1 1)) (concat 0 x y))", "(slice ((1 1 1)) y)"),
    ("concat-slices", C, "(input x float64 (5 2))", "(concat 0 (slice ((0 1 2) (0 1 2)) x) (slice ((2 1 1) (0 1 2)) x) (slice ((3 1 2) (0 1 2)) x))", "x"),
    ("slice-uniform", C, "(input v float64 (0))", "(add v (slice ((0 1 0)) (const float64 (1) 2)))", "(add v (broadcast (0) 2.0))"),
    ("reduce-uniform", C, "(input x float64 ())", "(mul x (sum (0) (broadcast (3) 2.0)))", "(mul x 6.0)"),
    ("reduce-reduce", C, "(input A float64 (2 3))", "(sum (0) (sum (1) A))", "(sum (0 1) A)"),
    ("reduce-broadcast", C, "(input v float64 (3))", "(sum (0) (broadcast (2 3) v))", "(mul v (broadcast (3) 2.0))"),
    ("sum-scaled", C, "(input v float64 (3))", "(sum (0) (mul v (broadcast (3) 2.0)))", "(mul (sum (0) v) 2.0)"),
    ("sum-neg", C, "(input v float64 (3))", "(sum (0) (neg v))", "(neg (sum (0) v))"),
    ("sum-set-slice-zeros", C, "(input v float64 (2))", "(sum (0) (set_slice ((1 1 2)) (broadcast (3) 0.0) v))", "(sum (0) v)"),
    ("contract-uniform", C, "(input A float64 (2 3))", "(contract \"ij,j->i\" A (broadcast (3) 2.0))", "(mul (sum (1) A) (broadcast (2) 2.0))"),
    ("loop-zero-trips", C, "(input x float64 (3))", "(sin (loop (0 forward 1 0) (graph (input c float64 (3)) (output (exp c))) x))", "(sin x)"),
    ("loop-one-trip", C, "(input x float64 (3)) (input r float64 (1 3))",
     "(loop (1 reverse 1 1) (graph (input c float64 (3)) (input r float64 (3)) (output (mul c r)) (output (sum (0) c))) x r)",
     "(concat 0 (mul x (reshape (3) r)) (reshape (1) (sum (0) x)))"),
    ("loop-prefix", C, "(input x float64 (3))",
     "(add (loop (3 forward 1 0) (graph (input c float64 (3)) (output (sin c))) x) (slice ((0 1 3)) (loop (3 forward 1 0) (graph (input c float64 (3)) (output (sin c)) (output (sum (0) c))) x)))",
     "(mul (slice ((0 1 3)) (loop (3 forward 1 0) (graph (input c float64 (3)) (output (sin c)) (output (sum (0) c))) x)) (broadcast (3) 2.0))"),
    ("log1p-of-add-one", S, "(input x float64 ())", "(log (add x 1.0))", "(log1p x)"),
    ("log1p-of-one-sub", S, "(input x float64 ())", "(log (sub 1.0 x))", "(log1p (neg x))"),
    ("log-sigmoid", S, "(input x float64 ())", "(log (sigmoid x))", "(neg (logaddexp (neg x) 0.0))"),
    ("logsumexp-shift", S, "(input v float64 (3))", "(log (sum (0) (exp v)))",
     "(let t0 (max (0) v)) (let t1 (where (lt (abs t0) inf) t0 0.0)) (output (add (log (sum (0) (exp (sub v (broadcast (3) t1))))) t1))"),
    ("expm1-of-add", S, "(input x float64 ())", "(add (exp x) -1.0)", "(expm1 x)"),
    ("expm1-of-sub", S, "(input x float64 ())", "(sub (exp x) 1.0)", "(expm1 x)"),
    ("sigmoid-of-neg", S, "(input x float64 ())", "(div 1.0 (add (exp x) 1.0))", "(sigmoid (neg x))"),
    ("sigmoid", S, "(input x float64 ())", "(div (exp x) (add (exp x) 1.0))", "(sigmoid x)"),
    ("add-neg-const-as-sub", P, "(input x float64 ())", "(add x -2.0)", "(sub x 2.0)"),
    ("add-neg-scaled-as-sub", P, "(input x float64 ()) (input y float64 ())", "(add x (mul y -2.0))", "(sub x (mul y 2.0))"),
    ("pow-two-as-square", P, "(input x float64 ())", "(pow x 2.0)", "(square x)"),
];

/// The goal graph's text for a case.
fn goal_text(inputs: &str, goal: &str) -> String {
    if goal.starts_with("(let") {
        format!("(graph {inputs} {goal})")
    } else {
        format!("(graph {inputs} (output {goal}))")
    }
}

fn run(
    rule: &str,
    phase: Phase,
    inputs: &str,
    start: &str,
    goal: Goal,
) -> (String, Vec<&'static str>) {
    let g = parse_graph(&format!("(graph {inputs} (output {start}))"))
        .unwrap_or_else(|e| panic!("{rule}: start does not parse: {e}"));
    let (s, _, fired) = simplify_phase(&g, &g.outputs, phase, goal);
    autodiff_ir::verify::verify(&s).unwrap();
    (print_graph(&s), fired)
}

#[test]
fn each_rule_rewrites_its_start_to_its_goal() {
    let mut failures = vec![];
    for &(rule, phase, inputs, start, goal) in CASES {
        let want = parse_graph(&goal_text(inputs, goal))
            .unwrap_or_else(|e| panic!("{rule}: goal does not parse: {e}"));
        let (got, fired) = run(rule, phase, inputs, start, Goal::Execute);
        if !fired.contains(&rule) {
            failures.push(format!(
                "{rule}: did not fire on {start} (fired: {fired:?})"
            ));
        } else if got != print_graph(&want) {
            failures.push(format!(
                "{rule}: {start} ⇒\n{got}\nwant\n{}",
                print_graph(&want)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_rule_has_a_case() {
    let names = all_rule_names();
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        assert!(seen.insert(*n), "rule name {n} is used twice");
        let kebab = n.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
        assert!(kebab, "rule name {n} is not kebab-case");
        assert!(
            CASES.iter().any(|c| c.0 == *n),
            "rule {n} has no start ⇒ goal case"
        );
    }
    for c in CASES {
        assert!(names.contains(&c.0), "case for unknown rule {}", c.0);
    }
}

/// Rules limited to the execution goal leave the printed form alone.
#[test]
fn execute_only_rules_do_not_fire_for_print() {
    for rule in ["log-sigmoid", "logsumexp-shift", "pow-two-as-square"] {
        let &(_, phase, inputs, start, _) = CASES.iter().find(|c| c.0 == rule).unwrap();
        let (got, fired) = run(rule, phase, inputs, start, Goal::Print);
        assert!(!fired.contains(&rule), "{rule} fired for print: {got}");
    }
}
