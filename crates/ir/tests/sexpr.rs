//! The s-expression form: golden round trips over every op, names and numbers, errors.

use autodiff_ir::sexpr::{op_head, parse_graph, parse_term, print_graph, print_term};
use autodiff_ir::verify::verify;
use autodiff_ir::{BinaryOp, DType, Graph, NodeId, Op, UnaryOp};

/// Parses `text`, checks the graph, and checks that printing gives `text` back.
fn golden(text: &str) -> Graph {
    let g = parse_graph(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    verify(&g).unwrap();
    assert_eq!(print_graph(&g), text);
    g
}

/// print(parse(print(g))) == print(g), and the reparsed graph verifies.
fn round_trips(g: &Graph) {
    let text = print_graph(g);
    let g2 = parse_graph(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    verify(&g2).unwrap();
    assert_eq!(print_graph(&g2), text);
}

/// A graph text from items, in the printer's layout.
fn graph(items: &[String]) -> String {
    format!("(graph\n  {})", items.join("\n  "))
}

#[test]
fn every_unary_op() {
    let mut items = vec![
        "(input x float64 (2))".to_string(),
        "(input b bool (2))".to_string(),
    ];
    for u in UnaryOp::ALL {
        let arg = if u == UnaryOp::Not { "b" } else { "x" };
        items.push(format!("(output ({} {arg}))", u.name()));
    }
    golden(&graph(&items));
}

#[test]
fn every_binary_op() {
    let mut items = vec![
        "(input x float64 (2))".to_string(),
        "(input b bool (2))".to_string(),
    ];
    for op in BinaryOp::ALL {
        let arg = if matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
            "b"
        } else {
            "x"
        };
        items.push(format!("(output ({} {arg} {arg}))", op.name()));
    }
    golden(&graph(&items));
}

const SHAPES: &str = r#"(graph
  (input x float64 (2 3))
  (input c bool (2 3))
  (let t0 (exp x))
  (output (where c t0 (neg t0)))
  (output (cast float32 (reshape (3 2) t0)))
  (output (cast int64 (cast bool x)))
  (output (transpose (1 0) x))
  (output (prod (1) (broadcast (4 2 3) x)))
  (output (sum (0 1) x))
  (output (max (0 1) x))
  (output (min () x))
  (output (argmax 1 x))
  (output (argmin 0 x)))"#;

const INDEXING: &str = r#"(graph
  (input x float64 (3 4))
  (input i int64 (2 2))
  (input v float64 (3 2 2))
  (input j int64 (3 4))
  (output (gather 1 x i))
  (output (scatter_add 1 x i v))
  (output (scatter 1 x i v))
  (output (take_along 0 x j))
  (output (scatter_along_add 0 x j x))
  (output (slice ((2 -1 3) (0 2 2)) x))
  (output (slice ((0 1 0) (3 -3 2)) x))
  (output (set_slice ((0 1 1) (3 -3 2)) x (const float64 (1 2) 1.5 -2.0)))
  (output (concat 1 x (slice ((0 1 3) (0 1 1)) x) x))
  (output (cumsum 0 x))
  (output (cumprod 1 x))
  (output (argsort 1 x)))"#;

const LINALG: &str = r#"(graph
  (input A float64 (3 3))
  (input B float64 (3 2))
  (let t0 (cholesky A))
  (output (solve A B))
  (output (trisolve lower t0 B))
  (output (trisolve upper (transpose (1 0) t0) B))
  (output (inv A))
  (output (contract "ij,jk->ik" A B))
  (output (contract "ij,ik->jk" A B))
  (output (contract ",->" (det A) (logabsdet A))))"#;

const CONSTANTS: &str = r#"(graph
  (input x float32 (2))
  (output (add x (const float32 (2) 0.1 -inf)))
  (output (const int64 (2 2) 1 -2 3 9007199254740992))
  (output (const bool (3) true false true))
  (output (const float64 (3) nan -0.0 1e300))
  (output 2.5)
  (output -0.0)
  (output (broadcast (2 2) (const int64 () 7)))
  (output (add (broadcast (2) 1e-300) (broadcast (2) inf))))"#;

#[test]
fn golden_graphs_cover_every_op() {
    let mut heads = std::collections::HashSet::new();
    for text in [SHAPES, INDEXING, LINALG, CONSTANTS, LOOPS] {
        let g = golden(text);
        heads.extend(g.nodes().iter().map(|n| op_head(&n.op)));
    }
    for h in autodiff_ir::sexpr::STRUCTURAL_HEADS {
        assert!(heads.contains(h), "no golden graph uses {h}");
    }
}

#[test]
fn the_design_example() {
    let text = "(graph\n  (input x float64 (3))\n  (input W float64 (2 3))\n  (let t0 (add x (broadcast (3) 1.0)))\n  (output (sum (0) (mul t0 t0))))";
    let g = golden(text);
    let out = g.outputs[0];
    assert_eq!(
        print_term(&g, out),
        "(sum (0) (mul (add x (broadcast (3) 1.0)) (add x (broadcast (3) 1.0))))"
    );
}

#[test]
fn constant_values_are_exact() {
    let g = golden(CONSTANTS);
    let c = |k: usize| g.const_value(g.outputs[k]).unwrap();
    assert_eq!(c(1).data, [1.0, -2.0, 3.0, 9007199254740992.0]);
    let f = c(3);
    assert!(f.data[0].is_nan() && f.data[1].to_bits() == (-0.0f64).to_bits() && f.data[2] == 1e300);
    assert_eq!((c(4).dtype, c(4).data[0]), (DType::F64, 2.5));
    // float32 values are read as float32
    let t = g.node(g.outputs[0]);
    let k = g.const_value(t.inputs[1]).unwrap();
    assert_eq!(k.data, [0.1f32 as f64, f64::NEG_INFINITY]);
    // shortest round-trip forms
    let mut g = Graph::new();
    for v in [0.1, 1.0 / 3.0, 1e-310, f64::MAX, -1e21, 123456789.0] {
        let id = g.scalar(v, DType::F64);
        g.outputs.push(id);
    }
    round_trips(&g);
    let text = print_graph(&g);
    assert!(
        text.contains("(output 0.3333333333333333)") && text.contains("(output 1e-310)"),
        "{text}"
    );
}

#[test]
fn shared_values_get_lets_and_parsing_hash_conses() {
    // the text writes exp(x) twice; the graph holds it once, so the printer names it
    let g = parse_graph(
        "(graph (input x float64 (3)) (output (add (exp x) (exp x))) (output (exp x)))",
    )
    .unwrap();
    assert_eq!(g.len(), 3);
    assert_eq!(
        print_graph(&g),
        "(graph\n  (input x float64 (3))\n  (let t0 (exp x))\n  (output (add t0 t0))\n  (output t0))"
    );
    // the same output twice is shared too; leaves never get lets
    golden("(graph\n  (input x float64 ())\n  (let t0 (sin x))\n  (output (mul x x))\n  (output t0)\n  (output t0))");
    golden(
        "(graph\n  (input x float64 ())\n  (output (mul x (add x 1.0)))\n  (output (mul 1.0 1.0)))",
    );
}

#[test]
fn let_names_and_input_names() {
    // names that are not identifiers are quoted; repeats get suffixes; lets avoid them
    let mut g = Graph::new();
    let a = g.add_input("x[0]", vec![], DType::F64);
    let b = g.add_input("inf", vec![], DType::F64);
    let c = g.add_input("t0", vec![], DType::F64);
    let d = g.add_input("t0", vec![], DType::F64);
    let e = g.add_input("", vec![], DType::F64);
    let s = g.add_(a, b).unwrap();
    let s = g.add_(s, c).unwrap();
    let s = g.add_(s, d).unwrap();
    let s = g.add_(s, e).unwrap();
    let y = g.mul(s, s).unwrap();
    g.outputs.push(y);
    let text = print_graph(&g);
    let want = r#"(graph
  (input "x[0]" float64 ())
  (input "inf" float64 ())
  (input t0 float64 ())
  (input t0_1 float64 ())
  (input "" float64 ())
  (let t1 (add (add (add (add "x[0]" "inf") t0) t0_1) ""))
  (output (mul t1 t1)))"#;
    assert_eq!(text, want);
    golden(want);
    // escapes in quoted names
    golden("(graph\n  (input \"a \\\"q\\\" \\\\ b\" float64 ())\n  (output (neg \"a \\\"q\\\" \\\\ b\")))");
    // hand-written lets may use any name; the printer renames them
    let g = parse_graph(
        "(graph (input x float64 ()) (let y (exp x)) (let z (mul y y)) (output (add z z)))",
    )
    .unwrap();
    assert_eq!(
        print_graph(&g),
        "(graph\n  (input x float64 ())\n  (let t0 (exp x))\n  (let t1 (mul t0 t0))\n  (output (add t1 t1)))"
    );
}

#[test]
fn deep_chains_are_cut_with_lets() {
    let mut g = Graph::new();
    let mut x = g.add_input("x", vec![2], DType::F64);
    for k in 0..500 {
        x = g
            .unary(
                if k % 2 == 0 {
                    UnaryOp::Sin
                } else {
                    UnaryOp::Cos
                },
                x,
            )
            .unwrap();
    }
    g.outputs.push(x);
    let text = print_graph(&g);
    round_trips(&g);
    let mut depth: i32 = 0;
    let mut max = 0;
    for ch in text.chars() {
        depth += (ch == '(') as i32 - (ch == ')') as i32;
        max = max.max(depth);
    }
    assert!(max <= 2 + 32 + 1, "nesting {max}");
    assert_eq!(text.matches("(let ").count(), 500 / 33);
    // the parser refuses absurd nesting instead of overflowing the stack
    let deep = format!(
        "(graph (input x float64 ()) (output {}x{}))",
        "(neg ".repeat(5000),
        ")".repeat(5000)
    );
    assert!(parse_graph(&deep)
        .unwrap_err()
        .0
        .contains("nested too deeply"));
}

#[test]
fn comments_and_whitespace() {
    let text =
        "; a comment\n(graph ; inline\n\t(input x float64 (2))   (output\n (neg x)))\n; trailing\n";
    let g = parse_graph(text).unwrap();
    assert_eq!(
        print_graph(&g),
        "(graph\n  (input x float64 (2))\n  (output (neg x)))"
    );
    assert_eq!(print_graph(&parse_graph("(graph)").unwrap()), "(graph)");
}

#[test]
fn parse_term_in_an_existing_graph() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F64);
    let y = parse_term(&mut g, "(mul x (exp x))").unwrap();
    let e = g.unary(UnaryOp::Exp, x).unwrap();
    assert_eq!(g.mul(x, e).unwrap(), y);
    assert_eq!(print_term(&g, y), "(mul x (exp x))");
    let err = parse_term(&mut g, "(mul x z)").unwrap_err();
    assert!(err.0.contains("unknown name 'z'"), "{err}");
    assert!(parse_term(&mut g, "x x").is_err());
    assert_eq!(g.inputs, vec![x]); // still intact after errors
}

/// (text, where, what) for texts that must not parse.
#[rustfmt::skip]
const BAD: [(&str, &str, &str); 24] = [
    ("", "", "empty text"),
    ("(graph", "line 1, column 1", "unclosed '('"),
    ("(graph))", "line 1, column 8", "unbalanced ')'"),
    ("(graph) (graph)", "line 1, column 9", "text after the graph"),
    ("(grph)", "line 1, column 1", "expected (graph ...)"),
    ("(graph (input x float64 (3))\n  (output (foo x)))", "line 2, column 12", "unknown op 'foo'"),
    ("(graph (output y))", "line 1, column 16", "unknown name 'y'"),
    ("(graph (input x float64 (3)) (input x float64 (3)))", "line 1, column 30", "'x' is already defined"),
    ("(graph (input x float65 (3)))", "line 1, column 17", "unknown dtype 'float65'"),
    ("(graph (input x float64 (-3)))", "line 1, column 26", "expected extents, found '-3'"),
    ("(graph (input x float64))", "line 1, column 8", "malformed input"),
    ("(graph (let 1.0 2.0))", "line 1, column 13", "expected a name"),
    ("(graph (output))", "line 1, column 8", "malformed output"),
    ("(graph (outptu 1.0))", "line 1, column 8", "expected (input ...), (let ...) or (output ...)"),
    ("(graph (output ()))", "line 1, column 16", "empty term"),
    ("(graph (output (input x)))", "line 1, column 17", "unknown op 'input'"),
    ("(graph (input x float64 (3)) (output (cumsum x)))", "line 1, column 46", "expected an axis, found 'x'"),
    ("(graph (input x float64 (3)) (output (sum x)))", "line 1, column 43", "expected a list of axes"),
    ("(graph (input x float64 (3)) (output (trisolve middle x x)))", "line 1, column 48", "expected lower or upper"),
    ("(graph (input x float64 (3)) (output (contract \"ij\" x x)))", "line 1, column 48", "contraction spec"),
    ("(graph (output (const int64 (2) 1)))", "line 1, column 16", "needs 2 values, got 1"),
    ("(graph (output (const int64 () x)))", "line 1, column 32", "expected an int64 value, found 'x'"),
    ("(graph (input x float64 (3)) (output (slice ((0 1)) x)))", "line 1, column 46", "expected (start step len)"),
    ("(graph (output \"x))", "line 1, column 16", "unterminated string"),
];

#[test]
fn parse_errors_say_what_and_where() {
    for (text, at, what) in BAD {
        let e = parse_graph(text).expect_err(text).0;
        assert!(
            e.starts_with(at) && e.contains(what),
            "{text:?}\n  gave {e:?}\n  want {at}: ...{what}..."
        );
    }
}

#[test]
fn type_errors_point_at_the_term() {
    let e = parse_graph("(graph\n  (input x float64 (3))\n  (output (add x (broadcast (2) 1.0))))")
        .unwrap_err()
        .0;
    assert_eq!(
        e,
        "line 3, column 11: (add ...): add: operand shapes differ: [3] vs [2]"
    );
    let e = parse_graph("(graph (input x float64 (3)) (output (exp x x)))")
        .unwrap_err()
        .0;
    assert!(e.contains("takes 1 operands, got 2"), "{e}");
}

#[test]
fn all_heads_are_distinct_and_match_op_head() {
    use autodiff_ir::sexpr::{all_heads, op_head};
    use autodiff_ir::{BinaryOp, Op, UnaryOp};
    let all = all_heads();
    let set: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(set.len(), all.len(), "an op head is listed twice");
    for u in UnaryOp::ALL {
        assert_eq!(op_head(&Op::Unary(u)), u.name());
    }
    for b in BinaryOp::ALL {
        assert_eq!(op_head(&Op::Binary(b)), b.name());
    }
}

const LOOPS: &str = r#"(graph
  (input y float64 (3))
  (input k float64 ())
  (input xs float64 (4 3))
  (let t0 (loop (4 forward 1 1) (graph (input c float64 (3)) (input r float64 (3)) (input k float64 ()) (output (add (mul c (broadcast (3) k)) r)) (output (sum (0) c))) y xs k))
  (output (reshape (3) (slice ((0 1 3)) t0)))
  (output (reshape (4) (slice ((3 1 4)) t0))))"#;

#[test]
fn loops_print_and_parse() {
    let g = golden(LOOPS);
    let Op::Loop(spec) = &g.node(NodeId(3)).op else {
        panic!("node 3 is the loop")
    };
    assert_eq!(
        (spec.n_carry, spec.n_xs, spec.n_inv(), spec.n_ys()),
        (1, 1, 1, 1)
    );
    assert_eq!(spec.offsets(), (vec![0, 3], 7));
    // a loop over the wrong operand types is refused when parsed
    let bad = LOOPS.replace("(input xs float64 (4 3))", "(input xs float64 (5 3))");
    assert!(parse_graph(&bad).is_err());
}
