//! Element types. Every value in the IR is one of these; float64 is the default.

/// The element type of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Bool,
    I64,
    F32,
    F64,
}

impl DType {
    /// The name used by NumPy and by the s-expression form.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I64 => "int64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Parses a NumPy dtype name (`float64`, `f8`, `int64`, `bool`, ...).
    pub fn from_name(s: &str) -> Option<DType> {
        Some(match s {
            "bool" | "b1" | "?" => DType::Bool,
            "int64" | "i8" | "int" | "int32" | "i4" | "int16" | "int8" | "uint8" | "uint16"
            | "uint32" => DType::I64,
            "float32" | "f4" => DType::F32,
            "float64" | "f8" | "float" | "float16" | "f2" => DType::F64,
            _ => return None,
        })
    }

    /// Floating types carry derivatives; integer and boolean values do not.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// NumPy's promotion for two array operands of these types.
    pub fn promote(a: DType, b: DType) -> DType {
        a.max(b)
    }

    /// Rounds an f64 to what this dtype can hold (the reference representation of every
    /// element is f64). Inlined: kernels call it per element (`round_all` for a slice).
    #[inline(always)]
    pub fn round(self, v: f64) -> f64 {
        match self {
            DType::Bool => (v != 0.0) as u8 as f64,
            DType::I64 => {
                if v.is_finite() {
                    v.trunc()
                } else {
                    0.0
                }
            }
            DType::F32 => v as f32 as f64,
            DType::F64 => v,
        }
    }

    /// [`DType::round`] over a slice, with the dtype matched once (so the loop vectorizes;
    /// inlined, so a kernel compiled for AVX2 or AVX-512 converts 4 or 8 lanes at a time).
    #[inline]
    pub fn round_all(self, s: &mut [f64]) {
        match self {
            DType::Bool => s.iter_mut().for_each(|v| *v = DType::Bool.round(*v)),
            DType::I64 => s.iter_mut().for_each(|v| *v = DType::I64.round(*v)),
            DType::F32 => s.iter_mut().for_each(|v| *v = *v as f32 as f64),
            DType::F64 => {}
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
