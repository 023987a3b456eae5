//! A plain dense tensor: the currency of constants and of the evaluators' inputs/outputs.

use crate::{DType, Shape};

/// Row-major data of any dtype, stored as f64 (exact for bool, i64 up to 2^53, f32).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: DType,
    pub shape: Shape,
    pub data: Vec<f64>,
}

impl Tensor {
    /// Builds a tensor; `data.len()` must equal the product of `shape`.
    pub fn new(dtype: DType, shape: Shape, data: Vec<f64>) -> Tensor {
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "tensor data does not match its shape"
        );
        let data = data.into_iter().map(|v| dtype.round(v)).collect();
        Tensor { dtype, shape, data }
    }

    /// A 0-d float64 tensor.
    pub fn scalar(v: f64) -> Tensor {
        Tensor::new(DType::F64, vec![], vec![v])
    }

    /// A tensor of one repeated value.
    pub fn full(dtype: DType, shape: Shape, v: f64) -> Tensor {
        let n = shape.iter().product();
        Tensor::new(dtype, shape, vec![v; n])
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// The value if every element is the same (used by printers and rewrites).
    pub fn uniform_value(&self) -> Option<f64> {
        let first = *self.data.first()?;
        self.data
            .iter()
            .all(|&v| v.to_bits() == first.to_bits())
            .then_some(first)
    }

    /// A hash of the bits of the data (no allocation; equal tensors hash equal).
    pub fn bits_hash(&self) -> u64 {
        self.data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
            (h.rotate_left(5) ^ v.to_bits()).wrapping_mul(0x517c_c1b7_2722_0a95)
        })
    }

    /// Bit-exact equality (NaN payloads and the sign of zero included).
    pub fn same_bits(&self, other: &Tensor) -> bool {
        self.dtype == other.dtype
            && self.shape == other.shape
            && self.data.len() == other.data.len()
            && self
                .data
                .iter()
                .zip(&other.data)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}
