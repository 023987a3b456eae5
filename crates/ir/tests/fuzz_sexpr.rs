//! Fuzzing the s-expression parser (untrusted text): random token soup and random edits of
//! valid graphs never panic; whatever parses verifies and round-trips through the printer.
//!
//! `PROPTEST_CASES=<n> cargo test -p autodiff-ir --test fuzz_sexpr --release` runs a long
//! campaign (the default is sized for CI).

use autodiff_ir::sexpr::{parse_graph, parse_term, print_graph};
use autodiff_ir::verify::verify;
use autodiff_ir::Graph;
use proptest::prelude::*;

/// Valid graphs covering the syntax: inputs of every dtype, constants, attributes (axes,
/// slices, specs, shapes), names that need quoting.
const SEEDS: [&str; 6] = [
    "(graph\n  (input x float64 (2 3))\n  (input y float64 (3))\n  (output (sum (0) (mul x (broadcast (2 3) y)))))",
    "(graph\n  (input x float64 (2))\n  (input b bool (2))\n  (output (where b (exp x) (neg x))))",
    "(graph\n  (input a float64 (2 3))\n  (input b float64 (3 4))\n  (output (contract \"ij,jk->ik\" a b)))",
    "(graph\n  (input x float32 (4))\n  (output (cast float64 (sqrt (abs x)))))",
    "(graph\n  (input x float64 ())\n  (let t (add x 1.0))\n  (output (mul t t))\n  (output (log t)))",
    "(graph\n  (input \"a b\" float64 (3))\n  (input i int64 (2))\n  (output (gather 0 \"a b\" i))\n  (output (slice ((0 2 2)) \"a b\")))",
];

const TOKENS: [&str; 40] = [
    "(",
    ")",
    "(",
    ")",
    " ",
    "\n",
    "graph",
    "input",
    "output",
    "let",
    "x",
    "y",
    "float64",
    "float32",
    "int64",
    "bool",
    "(2 3)",
    "()",
    "(0)",
    "add",
    "mul",
    "sum",
    "exp",
    "contract",
    "\"ij,jk->ik\"",
    "\"",
    "gather",
    "slice",
    "reshape",
    "broadcast",
    "const",
    "-1",
    "1e308",
    "nan",
    "-inf",
    "18446744073709551616",
    "0.5",
    "keepdims",
    "\\",
    "é",
];

/// Whatever parses must verify and print back to text that parses to the same print.
fn parses_soundly(text: &str) {
    let Ok(g) = parse_graph(text) else { return };
    let printed = print_graph(&g);
    verify(&g).unwrap_or_else(|e| panic!("parsed but does not verify: {e}\n{text}"));
    let g2 = parse_graph(&printed)
        .unwrap_or_else(|e| panic!("printed form does not parse: {e}\n{printed}"));
    assert_eq!(print_graph(&g2), printed);
    // a term parsed into the same graph does not panic either
    let mut g3: Graph = g2;
    let _ = parse_term(&mut g3, text);
}

/// One edit of a text: delete, duplicate or insert a token at a position.
fn edit(text: &str, (kind, at, tok): (u8, usize, usize)) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return TOKENS[tok % TOKENS.len()].to_string();
    }
    let i = at % chars.len();
    let j = (i + 1 + tok % 8).min(chars.len());
    let mut out: String = chars[..i].iter().collect();
    match kind % 4 {
        0 => {} // delete chars[i..j]
        1 => {
            out.extend(&chars[i..j]);
            out.extend(&chars[i..j]);
        }
        2 => {
            out.push_str(TOKENS[tok % TOKENS.len()]);
            out.extend(&chars[i..j]);
        }
        _ => {
            out.push_str(TOKENS[tok % TOKENS.len()]);
        }
    }
    out.extend(&chars[j..]);
    out
}

#[test]
fn seeds_are_valid() {
    for s in SEEDS {
        let g = parse_graph(s).unwrap_or_else(|e| panic!("{e}\n{s}"));
        verify(&g).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(toks in proptest::collection::vec(0usize..TOKENS.len(), 0..60)) {
        let text: String = toks.iter().map(|&k| TOKENS[k]).collect::<Vec<_>>().join(" ");
        parses_soundly(&text);
    }

    #[test]
    fn edited_graphs_never_panic(
        seed in 0usize..SEEDS.len(),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..6),
    ) {
        let mut text = SEEDS[seed].to_string();
        for e in edits {
            text = edit(&text, e);
        }
        parses_soundly(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        parses_soundly(&text);
    }

    #[test]
    fn deep_nesting_never_overflows(depth in 0usize..5000) {
        let text = format!("(graph (input x float64 ()) (output {}x{}))", "(neg ".repeat(depth), ")".repeat(depth));
        parses_soundly(&text);
    }
}
