//! Einsum specs: explicit and implicit outputs, as NumPy reads them.

use autodiff_capture::parse_einsum;

fn labels(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn explicit_specs() {
    let (ins, out) = parse_einsum("ij,jk->ik").unwrap();
    assert_eq!(ins, labels(&["ij", "jk"]));
    assert_eq!(out, b"ik");
    let (ins, out) = parse_einsum(" ii -> ").unwrap();
    assert_eq!(ins, labels(&["ii"]));
    assert!(out.is_empty());
    let (ins, out) = parse_einsum("abc,cd,de->eab").unwrap();
    assert_eq!(ins.len(), 3);
    assert_eq!(out, b"eab");
}

#[test]
fn implicit_output_is_the_labels_seen_once_sorted() {
    assert_eq!(parse_einsum("ij,jk").unwrap().1, b"ik");
    assert_eq!(parse_einsum("ba").unwrap().1, b"ab");
    assert_eq!(parse_einsum("ii").unwrap().1, b"");
    assert_eq!(parse_einsum("ij,ij").unwrap().1, b"");
}

#[test]
fn malformed_specs_are_refused() {
    assert!(parse_einsum("...i->i").is_err());
    assert!(parse_einsum("ij->k").is_err());
    assert!(parse_einsum("ij->ii").is_err());
    assert!(parse_einsum("i1->i").is_err());
}
