//! For `scripts/vmath_accuracy.py`: reads `DIR/<func>.in` (raw little-endian f64) for each
//! vector-math function present and writes `DIR/<func>.<isa>.out` for every path this CPU
//! has (`logaddexp.in` holds x then y, two halves).
//!
//! `cargo run --release -p autodiff-lower --example vmath_dump -- DIR`

use autodiff_lower::vmath::{self, Func, Isa};

fn read(p: &std::path::Path) -> Option<Vec<f64>> {
    let b = std::fs::read(p).ok()?;
    Some(
        b.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    )
}

fn write(p: &std::path::Path, v: &[f64]) {
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(p, b).unwrap();
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: vmath_dump DIR"));
    for isa in Isa::all_available() {
        let tag = format!("{isa:?}").to_lowercase();
        for f in Func::ALL {
            let name = format!("{f:?}").to_lowercase();
            if let Some(x) = read(&dir.join(format!("{name}.in"))) {
                let mut d = vec![0.0; x.len()];
                vmath::apply_with(isa, f, &mut d, &x);
                write(&dir.join(format!("{name}.{tag}.out")), &d);
            }
        }
        if let Some(xy) = read(&dir.join("logaddexp.in")) {
            let (x, y) = xy.split_at(xy.len() / 2);
            let mut d = vec![0.0; x.len()];
            vmath::logaddexp_with(isa, &mut d, x, y);
            write(&dir.join(format!("logaddexp.{tag}.out")), &d);
        }
    }
}
