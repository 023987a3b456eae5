//! Lowering and fast execution of the IR: a graph is compiled once into a [`Program`] (a
//! schedule of kernels over a planned set of buffers) and run many times.
//!
//! What compilation does:
//! - schedules exactly the nodes the outputs need (like the reference);
//! - fuses trees/DAGs of elementwise nodes (`Unary`, `Binary`, `Where`, `Cast`) into one
//!   kernel each, reading their leaves through strided views, so broadcasts, transposes,
//!   slices and reshapes of contiguous data are free (never materialized unless a
//!   non-fused kernel or an output needs them); scalar constants become immediates; a
//!   cheap node (one arithmetic op on leaves) read by several kernels is recomputed in
//!   each instead of stored by a kernel of its own; a kernel may store several values (a
//!   value both needed and reduced; sibling groups of one shape reading a common leaf);
//! - fuses a trailing `Reduce` into the kernel producing its operand (one pass, nothing
//!   materialized) when the reduced axes form one contiguous block (all axes, trailing
//!   axes, leading axes, ...); other axis sets are reduced block by block, like the
//!   reference;
//! - lowers large `Contract`s to GEMM on strided views, with batch dims (the `gemm` crate
//!   for matrix × matrix, its GEMV kernels in shape-fixed tasks for matrix × vector: see
//!   `matmul.rs`), and small ones to a direct loop in the reference's order;
//! - gives every other op a plain kernel (the linear-algebra ops run the reference's code);
//! - compiles a loop node's body into a program of its own, run once per iteration on the
//!   calling thread over buffers taken once per loop execution (see `loops.rs`);
//! - plans buffers: a slot is reused once its last reader has run, and an elementwise
//!   kernel writes in place over an operand that dies there; constants are materialized
//!   once; the buffers (an arena) are pooled and reused across runs;
//! - splits large fused kernels (≥ [`PAR_MIN`] elements) into tasks fixed by the shape
//!   and runs them on the engine's thread pool (`AUTODIFF_NUM_THREADS`, see [`threads`]),
//!   and large products too; the order of summation never depends on the thread count, so
//!   results are the same bits on 1 or many threads. Small kernels run on the calling
//!   thread with no hand-off.
//!
//! Guarantees:
//! - [`Program::run`] has the contract of `autodiff_exec::eval` (same input checks, same
//!   errors on bad values: out-of-range indices, int to a negative power, max of an empty
//!   axis, singular matrices, ...) and returns the same values: bit for bit where the order
//!   of operations is the reference's (every elementwise op, data movement, scans, small
//!   contractions, reductions on one thread), and up to summation order otherwise (GEMM
//!   contractions, reductions split across threads), i.e. within ~1e-12 relative of the
//!   terms' magnitude;
//! - one deliberate difference: `x ** 2` with a constant exponent 2 computes `x * x` (as
//!   NumPy does); libm's `pow`, which the reference calls, can differ in the last bit;
//! - values are f64 with a dtype tag, rounded per node with `DType::round` exactly where
//!   the reference rounds (float32 nodes compute in f64 and round once);
//! - [`Program`] is `Send + Sync`; concurrent runs each take their own arena;
//! - inputs are read in place (never copied, never mutated). Input data is assumed
//!   representable in its dtype (as `Tensor::new` guarantees).

mod contract;
mod fused;
mod fused32;
mod kernels;
mod loops;
mod matmul;
mod view;
pub mod vmath;
pub mod vmath32;

use std::collections::HashMap;
use std::sync::Mutex;

use autodiff_ir::{DType, Graph, NodeId, Op, ReduceOp, Shape, Tensor};

use contract::{classify, merge, perm_of, Contract, Plan, GEMM_MIN};
pub use fused::PAR_MIN;
use fused::{Fused, Ins, InsKind, Leaf, ReduceSpec, SendPtr, Sink};
use kernels::{one_node_graph, split_at_axis, Kernel, Src};
/// The GEMM/GEMV entry point, exposed for `examples/gemm.rs` only (not a stable API).
#[doc(hidden)]
pub use matmul::matmul as __matmul;
use view::{Loc, View};

/// The engine's thread pool: `AUTODIFF_NUM_THREADS` threads when set (a positive integer),
/// else rayon's default (`RAYON_NUM_THREADS`, else one per core). Built on first use.
fn global_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let n = std::env::var("AUTODIFF_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("autodiff-{i}"))
            .build()
            .expect("cannot start the engine's threads")
    })
}

/// Runs `f` on the engine's pool; already on a rayon pool's thread (a caller's own pool,
/// or a nested task), on that pool.
pub(crate) struct Pool;
impl Pool {
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        if rayon::current_thread_index().is_some() {
            f()
        } else {
            global_pool().install(f)
        }
    }
}

pub(crate) fn pool() -> Pool {
    Pool
}

/// Threads large kernels may use (the pool `pool().install` runs on).
pub fn threads() -> usize {
    if rayon::current_thread_index().is_some() {
        rayon::current_num_threads()
    } else {
        global_pool().current_num_threads()
    }
}

/// A slot's buffer. Every kernel writes each element of its output slot before anything
/// reads it; release builds still zero-fill (uninitialized memory may not be exposed as
/// `[f64]` in Rust, whatever the bit patterns), which costs no memset for large buffers:
/// `vec![0.0; n]` is `alloc_zeroed`, fresh zero pages from the OS, first touched by the
/// kernel writing them. Debug builds fill with NaN instead, so a kernel that reads its
/// output before writing it makes the property tests fail.
fn slot_buffer(n: usize) -> Vec<f64> {
    if cfg!(debug_assertions) {
        vec![f64::NAN; n]
    } else {
        vec![0.0; n]
    }
}

/// A compilation or execution failure (bad inputs, or a value an op is undefined on).
#[derive(Debug, Clone, PartialEq)]
pub struct LowerError(pub String);

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LowerError {}

fn fail<T>(msg: impl Into<String>) -> Result<T, LowerError> {
    Err(LowerError(msg.into()))
}

/// Where the buffers of one run live (inputs, constants, arena slots, scratch).
pub(crate) struct Env<'a> {
    inputs: &'a [&'a [f64]],
    consts: &'a [Vec<f64>],
    slots: &'a [SendPtr],
    scratch: SendPtr,
    scratch_len: usize,
}

// SAFETY: the pointers are only dereferenced by kernels that touch disjoint output ranges
// per thread; the scratch is used by the calling thread only.
unsafe impl Sync for Env<'_> {}

impl Env<'_> {
    pub(crate) fn ptr(&self, loc: Loc) -> *const f64 {
        match loc {
            Loc::Input(k) => self.inputs[k as usize].as_ptr(),
            Loc::Const(c) => self.consts[c as usize].as_ptr(),
            Loc::Slot(s) => self.slots[s as usize].0,
        }
    }

    pub(crate) fn mut_ptr(&self, loc: Loc) -> *mut f64 {
        match loc {
            Loc::Slot(s) => self.slots[s as usize].0,
            Loc::Input(_) | Loc::Const(_) => unreachable!("kernels write slots only"),
        }
    }

    /// # Safety
    /// The source must be live and not written while the slice is used.
    pub(crate) unsafe fn slice(&self, s: Src) -> &[f64] {
        std::slice::from_raw_parts(self.ptr(s.loc).add(s.off), s.len)
    }

    /// # Safety
    /// Calling thread only; one user at a time.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn scratch(&self, n: usize) -> &mut [f64] {
        assert!(n <= self.scratch_len, "scratch planned too small");
        std::slice::from_raw_parts_mut(self.scratch.0, n)
    }
}

enum StepKind {
    Fused(Fused),
    Contract(Contract),
    Kernel(Kernel, Loc, usize),
    Loop(Box<loops::LoopStep>),
}

struct Step {
    kind: StepKind,
    /// The graph node (for error messages).
    node: usize,
    head: String,
}

impl Step {
    /// The slots the step reads, and those it writes (its output first).
    fn locs_mut(&mut self) -> (Vec<&mut Loc>, Vec<&mut Loc>) {
        match &mut self.kind {
            StepKind::Fused(f) => (
                f.leaves.iter_mut().map(|l| &mut l.loc).collect(),
                std::iter::once(&mut f.out)
                    .chain(f.stores.iter_mut().map(|(_, l)| l))
                    .collect(),
            ),
            StepKind::Contract(c) => (vec![&mut c.a, &mut c.b], vec![&mut c.out]),
            StepKind::Kernel(k, out, _) => (k.reads(), vec![out]),
            StepKind::Loop(l) => (
                l.args.iter_mut().map(|s| &mut s.loc).collect(),
                vec![&mut l.out],
            ),
        }
    }
}

struct OutSpec {
    /// The output is a whole slot of its own: its buffer is handed to the caller (and the
    /// arena slot reallocated on the next run) instead of copied.
    take: bool,
    loc: Loc,
    offset: isize,
    cshape: Vec<usize>,
    cstrides: Vec<isize>,
    shape: Shape,
    dtype: DType,
}

struct Arena {
    /// Owns the slots `ptrs` point into.
    bufs: Vec<Vec<f64>>,
    ptrs: Vec<SendPtr>,
    scratch: Vec<f64>,
}

/// A graph compiled for fast repeated evaluation. See the crate docs for guarantees.
pub struct Program {
    input_types: Vec<(Shape, DType)>,
    input_names: Vec<String>,
    consts: Vec<Vec<f64>>,
    steps: Vec<Step>,
    slot_sizes: Vec<usize>,
    scratch_len: usize,
    in_place: usize,
    /// Slots handed to the caller as outputs (reallocated before the next run).
    taken: Vec<usize>,
    outputs: Vec<OutSpec>,
    pool: Mutex<Vec<Arena>>,
    stats: String,
}

// SAFETY: the raw pointers inside `Arena`s point into the arena's own buffers and are only
// used by the run that took the arena out of the pool.
unsafe impl Send for Arena {}

/// Fusable ops: the IR's one definition ([`Op::is_elementwise`]).
fn is_elementwise(op: &Op) -> bool {
    op.is_elementwise()
}

/// Multi-output fusion of sibling groups: a store group rooted at `r2` absorbs an earlier
/// store group rooted at `r1` when both have the same shape, they read a leaf in common (so
/// one pass reads it once; in a loop body, one kernel starts instead of two), every leaf of
/// `r2`'s group precedes `r1` (so `r2` cannot depend on `r1`) and every user of `r1` comes
/// after `r2` (so `r1`'s value is stored before anything reads it).
#[allow(clippy::too_many_arguments)]
fn sibling_fusion(
    g: &Graph,
    group: &[usize],
    members: &HashMap<usize, Vec<usize>>,
    users: &[Vec<usize>],
    fused_into: &[usize],
    stores_of: &mut HashMap<usize, Vec<usize>>,
    absorbed: &mut [bool],
) {
    let leaves = |r: usize| -> Vec<usize> {
        let ms = &members[&r];
        let mut ls: Vec<usize> = ms
            .iter()
            .flat_map(|&m| g.nodes()[m].inputs.iter().map(|x| x.index()))
            .filter(|x| group[*x] != r && group[*x] != DUP)
            .collect();
        // a recomputed node counts as the leaves it reads
        for &m in ms {
            if group[m] == DUP {
                ls.extend(g.nodes()[m].inputs.iter().map(|x| x.index()));
            }
        }
        ls.sort_unstable();
        ls.dedup();
        ls
    };
    let roots: Vec<usize> = (0..group.len())
        .filter(|&r| group[r] == r && fused_into[r] == NONE && members.contains_key(&r))
        .collect();
    // candidate r1s and their leaves: the most recent few (linear time on long graphs)
    let mut open: Vec<(usize, Vec<usize>)> = vec![];
    for &r2 in &roots {
        if open.len() > 16 {
            open.remove(0);
        }
        let l2 = leaves(r2);
        let pick = open.iter().position(|(r1, l1)| {
            g.nodes()[*r1].shape == g.nodes()[r2].shape
                && l2.iter().all(|&x| x < *r1)
                && users[*r1].iter().all(|&u| u > r2)
                && l1.iter().any(|x| l2.binary_search(x).is_ok())
                && !stores_of.contains_key(r1) // one level: r1 stores nothing else
        });
        if let Some(k) = pick {
            let (r1, _) = open.remove(k);
            absorbed[r1] = true;
            stores_of.entry(r2).or_default().push(r1);
        } else {
            open.push((r2, l2));
        }
    }
}

/// Maximal runs of consecutive axes, e.g. `[0, 1, 3] -> [[0, 1], [3]]`.
fn axis_blocks(axes: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = vec![];
    for &a in axes {
        match out.last_mut() {
            Some((_, hi)) if *hi == a => *hi = a + 1,
            _ => out.push((a, a + 1)),
        }
    }
    out
}

const NONE: usize = usize::MAX;
/// The group of a cheap elementwise node read by several fused groups: each of them
/// recomputes it (one arithmetic op on leaves) instead of reading it from a buffer that a
/// kernel of its own would write (XLA's duplication of cheap producers).
const DUP: usize = usize::MAX - 1;

/// Whether node `i` is one arithmetic op (no transcendental function, no `pow`) whose
/// operands are all outside any fused group (inputs, constants, views, other kernels'
/// results): recomputing it costs less than storing and reloading it.
fn is_cheap_leaf_op(g: &Graph, i: usize) -> bool {
    use autodiff_ir::{BinaryOp as B, UnaryOp as U};
    let node = &g.nodes()[i];
    let cheap = match &node.op {
        Op::Unary(u) => matches!(u, U::Neg | U::Abs | U::Square | U::Sign | U::Not),
        Op::Binary(b) => matches!(
            b,
            B::Add
                | B::Sub
                | B::Mul
                | B::Div
                | B::Maximum
                | B::Minimum
                | B::Lt
                | B::Le
                | B::Gt
                | B::Ge
                | B::Eq
                | B::Ne
        ),
        Op::Where | Op::Cast(_) => true,
        _ => false,
    };
    cheap && node.inputs.iter().all(|x| !is_elementwise(&g.node(*x).op))
}

struct Planner<'g> {
    g: &'g Graph,
    /// Elementwise node → the root of its fused group.
    group: Vec<usize>,
    members: HashMap<usize, Vec<usize>>,
    /// Group root → the `Reduce` it is fused into.
    fused_into: Vec<usize>,
    /// Group root → the other roots its kernel also computes and stores (multi-output
    /// fusion: a root fused into a reduction that is needed elsewhere too, siblings that
    /// read the same leaves); an absorbed root emits no kernel of its own.
    stores_of: HashMap<usize, Vec<usize>>,
    absorbed: Vec<bool>,
    val: Vec<Option<View>>,
    mat: Vec<Option<View>>,
    consts: Vec<Vec<f64>>,
    const_map: HashMap<u32, u32>,
    slot_sizes: Vec<usize>,
    steps: Vec<Step>,
    node: usize,
}

impl<'g> Planner<'g> {
    fn new_slot(&mut self, n: usize) -> Loc {
        self.slot_sizes.push(n);
        Loc::Slot((self.slot_sizes.len() - 1) as u32)
    }

    fn push(&mut self, kind: StepKind) {
        let head = autodiff_ir::sexpr::op_head(&self.g.node(NodeId(self.node as u32)).op);
        self.steps.push(Step {
            kind,
            node: self.node,
            head: head.to_string(),
        });
    }

    fn view(&self, x: NodeId) -> View {
        self.val[x.index()]
            .clone()
            .expect("operands are planned first")
    }

    /// The value of `x` as a dense row-major operand (copying a strided view once).
    fn contig(&mut self, x: NodeId) -> Src {
        let v = self.view(x);
        let v = if v.is_contiguous() {
            v
        } else if let Some(m) = &self.mat[x.index()] {
            m.clone()
        } else {
            let m = self.materialize(&v);
            self.mat[x.index()] = Some(m.clone());
            m
        };
        Src {
            loc: v.loc,
            off: v.offset as usize,
            len: v.size(),
        }
    }

    /// Copies a strided view into a fresh slot.
    fn materialize(&mut self, v: &View) -> View {
        let n = v.size();
        let out = self.new_slot(n);
        let (shape, strides) = v.collapsed();
        self.push(StepKind::Kernel(
            Kernel::Copy {
                loc: v.loc,
                offset: v.offset,
                shape,
                strides,
                n,
            },
            out,
            n,
        ));
        View::contiguous(out, &v.shape)
    }

    /// A kernel writing a fresh slot of node `i`'s size; the node's value is that slot.
    fn kernel(&mut self, i: usize, k: Kernel) {
        let n = self.g.nodes()[i].size();
        let out = self.new_slot(n);
        self.push(StepKind::Kernel(k, out, n));
        self.val[i] = Some(View::contiguous(out, &self.g.nodes()[i].shape));
    }

    fn leaf(v: &View) -> Leaf {
        let (shape, strides) = v.collapsed();
        Leaf {
            loc: v.loc,
            offset: v.offset,
            shape,
            strides,
        }
    }

    /// Compiles the group rooted at `root` (or, with `root == NONE`, a single load of
    /// `load`) into a fused kernel with the given sink; returns the output slot. The roots
    /// in `stores_of[root]` are computed in the same kernel and stored to slots of their
    /// own (their values set here).
    fn emit_fused(
        &mut self,
        root: usize,
        load: Option<View>,
        n: usize,
        sink: Sink,
        out_n: usize,
        out_round: DType,
    ) -> Loc {
        let extra = match load {
            None => self.stores_of.get(&root).cloned().unwrap_or_default(),
            Some(_) => vec![],
        };
        // SSA instructions: (kind with SSA operands, rounding)
        let mut ssa: Vec<(InsKind, DType)> = vec![];
        // each SSA value's dtype (a leaf's, an immediate's, a node's): all float32 or bool
        // makes a float32 kernel
        let mut dtypes: Vec<DType> = vec![];
        let mut leaves: Vec<Leaf> = vec![];
        let mut value_of: HashMap<usize, fused::Reg> = HashMap::new();
        let mut nodes = vec![];
        // SSA values that are contiguous leaves, read in place (no instruction)
        let mut direct: std::collections::HashSet<usize> = Default::default();
        let result = if let Some(v) = load {
            let leaf = Self::leaf(&v);
            if leaf.shape.len() == 1 && leaf.strides[0] == 1 {
                direct.insert(0);
            }
            leaves.push(leaf);
            ssa.push((InsKind::Load(0), DType::F64));
            dtypes.push(DType::F64); // (a reduction of a leaf: memory-bound, kept in f64)
            0
        } else {
            let mut members = self.members.get(&root).cloned().unwrap_or_default();
            for r in &extra {
                members.extend(self.members.get(r).into_iter().flatten());
            }
            // node order (operands first); a recomputed node shared by two groups once
            members.sort_unstable();
            members.dedup();
            for &m in &members {
                let node = &self.g.nodes()[m];
                let mut ops = vec![];
                for &x in &node.inputs {
                    let xi = x.index();
                    if let Some(&v) = value_of.get(&xi) {
                        ops.push(v);
                        continue;
                    }
                    // a leaf (not in this group)
                    let v = self.view(x);
                    let kind = match v.loc {
                        Loc::Const(c) if v.is_splat() && v.size() > 0 => {
                            InsKind::Imm(self.consts[c as usize][v.offset as usize])
                        }
                        Loc::Const(_) | Loc::Input(_) | Loc::Slot(_) => {
                            let leaf = Self::leaf(&v);
                            let contiguous = (leaf.shape.len() == 1 && leaf.strides[0] == 1)
                                || (leaf.shape.is_empty() && v.size() == 1);
                            leaves.push(leaf);
                            if contiguous {
                                direct.insert(ssa.len());
                            }
                            InsKind::Load(fused::reg(leaves.len() - 1))
                        }
                    };
                    ssa.push((kind, DType::F64));
                    dtypes.push(self.g.nodes()[xi].dtype);
                    let id = fused::reg(ssa.len() - 1);
                    value_of.insert(xi, id);
                    ops.push(id);
                }
                let square = |k: &InsKind| matches!(k, InsKind::Imm(v) if *v == 2.0);
                let kind = match &node.op {
                    Op::Unary(u) => InsKind::Unary(*u, ops[0]),
                    // x ** 2 is x * x (as in NumPy; libm's pow can differ in the last bit)
                    Op::Binary(autodiff_ir::BinaryOp::Pow) if square(&ssa[ops[1] as usize].0) => {
                        InsKind::Unary(autodiff_ir::UnaryOp::Square, ops[0])
                    }
                    Op::Binary(b) => InsKind::Binary(
                        *b,
                        ops[0],
                        ops[1],
                        *b == autodiff_ir::BinaryOp::Pow && node.dtype == DType::I64,
                    ),
                    Op::Where => InsKind::Where(ops[0], ops[1], ops[2]),
                    Op::Cast(_) => InsKind::Mov(ops[0]),
                    other => unreachable!("{other:?} is not elementwise"),
                };
                // a comparison's 0/1 is already a bool: no rounding pass
                let compare = matches!(
                    node.op,
                    Op::Binary(
                        autodiff_ir::BinaryOp::Lt
                            | autodiff_ir::BinaryOp::Le
                            | autodiff_ir::BinaryOp::Gt
                            | autodiff_ir::BinaryOp::Ge
                            | autodiff_ir::BinaryOp::Eq
                            | autodiff_ir::BinaryOp::Ne
                    )
                );
                let round = if compare && node.dtype == DType::Bool {
                    DType::F64
                } else {
                    node.dtype
                };
                ssa.push((kind, round));
                dtypes.push(node.dtype);
                value_of.insert(m, fused::reg(ssa.len() - 1));
                nodes.push(m);
            }
            value_of[&root]
        };
        let f32 = dtypes.iter().all(|&d| fused32::fits(d)) && dtypes.contains(&DType::F32);
        if f32 {
            direct.clear(); // float32 registers load (and narrow) every leaf
        }
        // register allocation: linear scan over SSA values
        let operands = |k: &InsKind| -> Vec<fused::Reg> {
            match *k {
                InsKind::Load(_) | InsKind::Imm(_) => vec![],
                InsKind::Mov(a) | InsKind::Unary(_, a) => vec![a],
                InsKind::Binary(_, a, b, _) => vec![a, b],
                InsKind::Where(c, a, b) => vec![c, a, b],
            }
        };
        let mut last = vec![0usize; ssa.len()];
        for (t, (k, _)) in ssa.iter().enumerate() {
            for a in operands(k) {
                last[a as usize] = t;
            }
        }
        last[result as usize] = usize::MAX;
        let extra_ssa: Vec<usize> = extra.iter().map(|r| value_of[r] as usize).collect();
        for &v in &extra_ssa {
            last[v] = usize::MAX; // kept to the end of the chunk, then stored
        }
        let mut reg_of: Vec<fused::Reg> = vec![0; ssa.len()];
        let mut free: Vec<fused::Reg> = vec![];
        let mut is_free: Vec<bool> = vec![];
        let mut n_regs = 0usize;
        let mut code = Vec::with_capacity(ssa.len());
        // immediates (other than the result) get registers of their own, filled once per
        // sweep instead of once per chunk
        let mut imms: Vec<(fused::Reg, f64)> = vec![];
        for (t, (k, _)) in ssa.iter().enumerate() {
            if let (InsKind::Imm(v), false) = (k, t == result as usize) {
                n_regs += 1;
                is_free.push(false);
                reg_of[t] = fused::reg(n_regs - 1);
                imms.push((reg_of[t], *v));
            }
        }
        for (t, (k, round)) in ssa.iter().enumerate() {
            if let (true, InsKind::Load(l)) = (direct.contains(&t), k) {
                reg_of[t] = fused::DIRECT | *l;
                continue;
            }
            if matches!(k, InsKind::Imm(_)) && t != result as usize {
                continue;
            }
            let dst = match free.pop() {
                Some(r) => {
                    is_free[r as usize] = false;
                    r
                }
                None => {
                    n_regs += 1;
                    is_free.push(false);
                    fused::reg(n_regs - 1)
                }
            };
            reg_of[t] = dst;
            let r = |a: fused::Reg| reg_of[a as usize];
            let kind = match *k {
                InsKind::Load(l) => InsKind::Load(l),
                InsKind::Imm(v) => InsKind::Imm(v),
                InsKind::Mov(a) => InsKind::Mov(r(a)),
                InsKind::Unary(u, a) => InsKind::Unary(u, r(a)),
                InsKind::Binary(b, x, y, ip) => InsKind::Binary(b, r(x), r(y), ip),
                InsKind::Where(c, x, y) => InsKind::Where(r(c), r(x), r(y)),
            };
            code.push(Ins {
                dst,
                kind,
                round: *round,
            });
            let mut ops = operands(k);
            ops.dedup();
            for a in ops {
                let r = reg_of[a as usize];
                let pinned = matches!(ssa[a as usize].0, InsKind::Imm(_));
                if last[a as usize] == t
                    && r & fused::DIRECT == 0
                    && !pinned
                    && !is_free[r as usize]
                {
                    is_free[r as usize] = true;
                    free.push(r);
                }
            }
        }
        let out = self.new_slot(out_n);
        let result = reg_of[result as usize];
        let direct_store = matches!(sink, Sink::Store) && result & fused::DIRECT == 0;
        let mut stores = vec![];
        for (&r, &v) in extra.iter().zip(&extra_ssa) {
            let shape = self.g.nodes()[r].shape.clone();
            let slot = self.new_slot(self.g.nodes()[r].size());
            stores.push((reg_of[v], slot));
            self.val[r] = Some(View::contiguous(slot, &shape));
        }
        let f = Fused {
            f32,
            stores,
            direct_store,
            n,
            imms,
            code,
            leaves,
            n_regs,
            result,
            sink,
            out,
            out_round,
            nodes,
        };
        self.push(StepKind::Fused(f));
        out
    }

    fn plan_node(&mut self, i: usize) -> Result<(), LowerError> {
        self.node = i;
        let g = self.g;
        let node = &g.nodes()[i];
        let x = node.inputs.first().copied().unwrap_or(NodeId(0));
        let shape = node.shape.clone();
        match &node.op {
            Op::Input(k) => {
                self.val[i] = Some(View::contiguous(Loc::Input(*k), &shape));
            }
            Op::Const(c) => {
                let next = self.consts.len() as u32;
                let id = *self.const_map.entry(*c).or_insert(next);
                if id == next {
                    self.consts.push(g.consts()[*c as usize].data.clone());
                }
                self.val[i] = Some(View::contiguous(Loc::Const(id), &shape));
            }
            Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast(_) => {
                if self.group[i] == i && self.fused_into[i] == NONE && !self.absorbed[i] {
                    let n = node.size();
                    let out = self.emit_fused(i, None, n, Sink::Store, n, DType::F64);
                    self.val[i] = Some(View::contiguous(out, &shape));
                }
            }
            Op::Broadcast(to) => self.val[i] = Some(self.view(x).broadcast(to)),
            Op::Transpose(perm) => self.val[i] = Some(self.view(x).transpose(perm)),
            Op::Slice(dims) => self.val[i] = Some(self.view(x).slice(dims)),
            Op::Reshape(to) => {
                let v = self.view(x);
                let v = match v.reshape(to) {
                    Some(r) => r,
                    None => {
                        let s = self.contig(x);
                        View {
                            loc: s.loc,
                            offset: s.off as isize,
                            shape: to.clone(),
                            strides: view::std_strides(to),
                        }
                    }
                };
                self.val[i] = Some(v);
            }
            Op::Reduce(r, axes) => self.plan_reduce(i, *r, axes, x),
            Op::ArgMax(axis, is_max) => {
                let xs = self.contig(x);
                let pnq = split_at_axis(g.shape(x), *axis);
                self.kernel(
                    i,
                    Kernel::ArgMax {
                        x: xs,
                        pnq,
                        is_max: *is_max,
                    },
                );
            }
            Op::Contract(spec) => self.plan_contract(i, spec),
            // the body compiled into a program of its own, run once per iteration
            Op::Loop(spec) => self.plan_loop(i, spec)?,
            Op::SetSlice(dims) => {
                let xs = self.contig(x);
                let vs = self.contig(node.inputs[1]);
                let sv = View::contiguous(Loc::Slot(0), g.shape(x)).slice(dims);
                self.kernel(
                    i,
                    Kernel::SetSlice {
                        x: xs,
                        v: vs,
                        offset: sv.offset,
                        shape: sv.shape,
                        strides: sv.strides,
                    },
                );
            }
            Op::Gather(axis) => {
                let xs = self.contig(x);
                let idx = self.contig(node.inputs[1]);
                let pnq = split_at_axis(g.shape(x), *axis);
                self.kernel(i, Kernel::Gather { x: xs, idx, pnq });
            }
            Op::ScatterAdd(axis) | Op::Scatter(axis) => {
                let xs = self.contig(x);
                let idx = self.contig(node.inputs[1]);
                let v = self.contig(node.inputs[2]);
                let pnq = split_at_axis(g.shape(x), *axis);
                let add = matches!(node.op, Op::ScatterAdd(_));
                self.kernel(
                    i,
                    Kernel::Scatter {
                        x: xs,
                        idx,
                        v,
                        pnq,
                        add,
                        round: node.dtype,
                    },
                );
            }
            Op::TakeAlong(axis) => {
                let xs = self.contig(x);
                let idx = self.contig(node.inputs[1]);
                let pnq = split_at_axis(g.shape(x), *axis);
                let k = g.shape(node.inputs[1])[*axis];
                self.kernel(i, Kernel::TakeAlong { x: xs, idx, pnq, k });
            }
            Op::ScatterAlongAdd(axis) => {
                let xs = self.contig(x);
                let idx = self.contig(node.inputs[1]);
                let v = self.contig(node.inputs[2]);
                let pnq = split_at_axis(g.shape(x), *axis);
                let k = g.shape(node.inputs[1])[*axis];
                self.kernel(
                    i,
                    Kernel::ScatterAlongAdd {
                        x: xs,
                        idx,
                        v,
                        pnq,
                        k,
                        round: node.dtype,
                    },
                );
            }
            Op::Concat(axis) => {
                let (p, _, q) = split_at_axis(&shape, *axis);
                let mut parts = vec![];
                for &y in &node.inputs {
                    let s = self.contig(y);
                    parts.push((s, g.shape(y)[*axis]));
                }
                self.kernel(i, Kernel::Concat { parts, p, q });
            }
            Op::Cumsum(axis) | Op::Cumprod(axis) => {
                let xs = self.contig(x);
                let pnq = split_at_axis(g.shape(x), *axis);
                let prod = matches!(node.op, Op::Cumprod(_));
                self.kernel(
                    i,
                    Kernel::Cum {
                        x: xs,
                        pnq,
                        prod,
                        round: node.dtype,
                    },
                );
            }
            Op::ArgSort(axis) => {
                let xs = self.contig(x);
                let pnq = split_at_axis(g.shape(x), *axis);
                self.kernel(i, Kernel::ArgSort { x: xs, pnq });
            }
            Op::Solve | Op::TriSolve(_) | Op::Cholesky | Op::Inv | Op::Det | Op::LogAbsDet => {
                let types: Vec<(Vec<usize>, DType)> = node
                    .inputs
                    .iter()
                    .map(|&y| (g.shape(y).clone(), g.dtype(y)))
                    .collect();
                let (graph, id) = one_node_graph(&node.op, &types).map_err(LowerError)?;
                let args = node.inputs.iter().map(|&y| self.contig(y)).collect();
                self.kernel(
                    i,
                    Kernel::Reference {
                        graph: Box::new(graph),
                        node: id,
                        args,
                    },
                );
            }
        }
        Ok(())
    }

    fn plan_loop(&mut self, i: usize, spec: &autodiff_ir::LoopSpec) -> Result<(), LowerError> {
        let node = &self.g.nodes()[i];
        let args = node.inputs.iter().map(|&y| self.contig(y)).collect();
        let n = node.size();
        let out = self.new_slot(n);
        let step = loops::LoopStep::new(spec, args, out)?;
        self.push(StepKind::Loop(Box::new(step)));
        self.val[i] = Some(View::contiguous(out, &node.shape));
        Ok(())
    }

    fn plan_reduce(&mut self, i: usize, r: ReduceOp, axes: &[usize], x: NodeId) {
        let g = self.g;
        let node = &g.nodes()[i];
        let xshape = g.shape(x).clone();
        if matches!(r, ReduceOp::Max | ReduceOp::Min) && axes.iter().any(|&a| xshape[a] == 0) {
            let msg = format!("{} of an empty axis (no identity)", r.name());
            self.kernel(i, Kernel::Fail(msg));
            return;
        }
        if axes.is_empty() {
            // the identity (a bool sum's values are already its int64 values)
            self.val[i] = Some(self.view(x));
            return;
        }
        let blocks = axis_blocks(axes);
        let mut cur = xshape.clone();
        let mut src: Option<View> = None;
        for (bi, &(lo, hi)) in blocks.iter().enumerate().rev() {
            let n: usize = cur.iter().product();
            let spec = ReduceSpec {
                op: r,
                p: cur[..lo].iter().product(),
                dims: cur[lo..hi].to_vec(),
                q: cur[hi..].iter().product(),
            };
            let out_n = spec.p * spec.q;
            let last = bi == 0;
            let round = if last { node.dtype } else { DType::F64 };
            let out = match src.take() {
                None if self.fused_into[x.index()] == i => {
                    self.emit_fused(x.index(), None, n, Sink::Reduce(spec), out_n, round)
                }
                None => {
                    let v = self.view(x);
                    self.emit_fused(NONE, Some(v), n, Sink::Reduce(spec), out_n, round)
                }
                Some(v) => self.emit_fused(NONE, Some(v), n, Sink::Reduce(spec), out_n, round),
            };
            cur.drain(lo..hi);
            src = Some(View::contiguous(out, &cur));
        }
        self.val[i] = src;
    }

    fn plan_contract(&mut self, i: usize, spec: &autodiff_ir::ContractSpec) {
        let g = self.g;
        let node = &g.nodes()[i];
        let (xa, xb) = (node.inputs[0], node.inputs[1]);
        let (va, vb) = (self.view(xa), self.view(xb));
        let l = classify(spec);
        let ext = |c: u8| match spec.a.iter().position(|&x| x == c) {
            Some(p) => va.shape[p],
            None => vb.shape[spec.b.iter().position(|&x| x == c).expect("label")],
        };
        let prod = |ls: &[u8]| ls.iter().map(|&c| ext(c)).product::<usize>();
        let (m, n, k) = (prod(&l.m), prod(&l.n), prod(&l.k));
        let strides_in = |v: &View, labels: &[u8], ls: &[u8]| -> Vec<isize> {
            ls.iter()
                .map(|c| match labels.iter().position(|x| x == c) {
                    Some(p) => v.strides[p],
                    None => 0,
                })
                .collect()
        };
        let size = node.size();
        if (m == 1 && n == 1) || m * n * k < GEMM_MIN {
            let out = self.new_slot(size);
            let plan = Plan::Direct {
                out_ext: spec.out.iter().map(|&c| ext(c)).collect(),
                a_out: strides_in(&va, &spec.a, &spec.out),
                b_out: strides_in(&vb, &spec.b, &spec.out),
                k_ext: l.k.iter().map(|&c| ext(c)).collect(),
                a_k: strides_in(&va, &spec.a, &l.k),
                b_k: strides_in(&vb, &spec.b, &l.k),
            };
            self.push(StepKind::Contract(Contract {
                a: va.loc,
                a_off: va.offset,
                b: vb.loc,
                b_off: vb.offset,
                out,
                size,
                round: node.dtype,
                plan,
            }));
            self.val[i] = Some(View::contiguous(out, &node.shape));
            return;
        }
        let (nb, nm) = (l.batch.len(), l.m.len());
        // A as [batch, m, k]
        let order_a: Vec<u8> = [&l.batch[..], &l.m[..], &l.k[..]].concat();
        let mut pa = va.transpose(&perm_of(&spec.a, &order_a));
        let ok_a = |v: &View| {
            merge(&v.shape[nb..nb + nm], &v.strides[nb..nb + nm]).is_some()
                && merge(&v.shape[nb + nm..], &v.strides[nb + nm..]).is_some()
        };
        if !ok_a(&pa) {
            pa = self.materialize(&pa);
        }
        // B as [batch, k, n]
        let nk = l.k.len();
        let order_b: Vec<u8> = [&l.batch[..], &l.k[..], &l.n[..]].concat();
        let mut pb = vb.transpose(&perm_of(&spec.b, &order_b));
        let ok_b = |v: &View| {
            merge(&v.shape[nb..nb + nk], &v.strides[nb..nb + nk]).is_some()
                && merge(&v.shape[nb + nk..], &v.strides[nb + nk..]).is_some()
        };
        if !ok_b(&pb) {
            pb = self.materialize(&pb);
        }
        let (_, rsa) = merge(&pa.shape[nb..nb + nm], &pa.strides[nb..nb + nm]).expect("merged");
        let (_, csa) = merge(&pa.shape[nb + nm..], &pa.strides[nb + nm..]).expect("merged");
        let (_, rsb) = merge(&pb.shape[nb..nb + nk], &pb.strides[nb..nb + nk]).expect("merged");
        let (_, csb) = merge(&pb.shape[nb + nk..], &pb.strides[nb + nk..]).expect("merged");
        let out = self.new_slot(size);
        let plan = Plan::Gemm {
            batch_ext: pa.shape[..nb].to_vec(),
            a_batch: pa.strides[..nb].to_vec(),
            b_batch: pb.strides[..nb].to_vec(),
            m,
            n,
            k,
            rsa,
            csa,
            rsb,
            csb,
        };
        self.push(StepKind::Contract(Contract {
            a: pa.loc,
            a_off: pa.offset,
            b: pb.loc,
            b_off: pb.offset,
            out,
            size,
            round: node.dtype,
            plan,
        }));
        // the slot holds [batch, m, n]; the node is its transpose to the output order
        let order_c: Vec<u8> = [&l.batch[..], &l.m[..], &l.n[..]].concat();
        let cshape: Vec<usize> = order_c.iter().map(|&c| ext(c)).collect();
        let v = View::contiguous(out, &cshape).transpose(&perm_of(&order_c, &spec.out));
        self.val[i] = Some(v);
    }
}

impl Program {
    /// Compiles the nodes `outputs` of `g` (and what they need).
    pub fn compile(g: &Graph, outputs: &[NodeId]) -> Result<Program, LowerError> {
        let len = g.len();
        let mut needed = vec![false; len];
        let mut is_out = vec![false; len];
        for o in outputs {
            match needed.get_mut(o.index()) {
                Some(b) => *b = true,
                None => return fail(format!("output node {} does not exist", o.0)),
            }
            is_out[o.index()] = true;
        }
        for i in (0..len).rev() {
            if needed[i] {
                for x in &g.nodes()[i].inputs {
                    needed[x.index()] = true;
                }
            }
        }
        let mut users: Vec<Vec<usize>> = vec![vec![]; len];
        for (i, node) in g.nodes().iter().enumerate() {
            if needed[i] {
                for x in &node.inputs {
                    users[x.index()].push(i);
                }
            }
        }
        // fused groups, assigned from the users down: an elementwise node joins its users'
        // group when all of its users are elementwise nodes of one group
        let mut group = vec![NONE; len];
        for i in (0..len).rev() {
            if !needed[i] || !is_elementwise(&g.nodes()[i].op) {
                continue;
            }
            let us = &users[i];
            let g0 = us.first().map_or(NONE, |&u| group[u]);
            let elementwise_users = !us.is_empty()
                && us
                    .iter()
                    .all(|&u| is_elementwise(&g.nodes()[u].op) && group[u] != NONE);
            let join = !is_out[i] && elementwise_users && us.iter().all(|&u| group[u] == g0);
            group[i] = if join {
                g0
            } else if !is_out[i] && elementwise_users && is_cheap_leaf_op(g, i) {
                DUP
            } else {
                i
            };
        }
        let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, &r) in group.iter().enumerate() {
            if r == DUP {
                // recomputed in each group that reads it (in node order: before its users)
                let mut roots: Vec<usize> = users[i].iter().map(|&u| group[u]).collect();
                roots.sort_unstable();
                roots.dedup();
                for r in roots {
                    members.entry(r).or_default().push(i);
                }
            } else if r != NONE {
                members.entry(r).or_default().push(i);
            }
        }
        // trailing reductions fused into the group computing their operand; when the
        // operand is needed elsewhere too (an output, other users all planned after the
        // reduction), the kernel also stores it
        let mut fused_into = vec![NONE; len];
        let mut stores_of: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut absorbed = vec![false; len];
        for (i, node) in g.nodes().iter().enumerate() {
            if let (true, Op::Reduce(_, axes)) = (needed[i], &node.op) {
                if axes.is_empty() {
                    continue;
                }
                let x = node.inputs[0].index();
                if group[x] != x || fused_into[x] != NONE {
                    continue;
                }
                if !is_out[x] && users[x] == [i] {
                    fused_into[x] = i;
                } else if users[x].iter().all(|&u| u >= i) && g.nodes()[x].size() > 0 {
                    // (not when empty: a max over an empty axis is a failing kernel that
                    // would leave x unstored)
                    fused_into[x] = i;
                    stores_of.entry(x).or_default().push(x);
                }
            }
        }
        // sibling groups (same shape, a leaf in common, neither reading the other) become
        // one kernel with two stores, emitted at the later root
        sibling_fusion(
            g,
            &group,
            &members,
            &users,
            &fused_into,
            &mut stores_of,
            &mut absorbed,
        );
        let mut p = Planner {
            g,
            group,
            members,
            fused_into,
            stores_of,
            absorbed,
            val: vec![None; len],
            mat: vec![None; len],
            consts: vec![],
            const_map: HashMap::new(),
            slot_sizes: vec![],
            steps: vec![],
            node: 0,
        };
        for (i, &need) in needed.iter().enumerate() {
            if need {
                p.plan_node(i)?;
            }
        }
        let mut outs = vec![];
        for o in outputs {
            let v = p.val[o.index()].clone().expect("outputs are planned");
            let (cshape, cstrides) = v.collapsed();
            outs.push(OutSpec {
                take: false,
                loc: v.loc,
                offset: v.offset,
                cshape,
                cstrides,
                shape: g.shape(*o).clone(),
                dtype: g.dtype(*o),
            });
        }
        let mut prog = Program {
            input_types: g
                .inputs
                .iter()
                .map(|&id| (g.shape(id).clone(), g.dtype(id)))
                .collect(),
            input_names: g.input_names.clone(),
            consts: p.consts,
            steps: p.steps,
            slot_sizes: vec![],
            scratch_len: 0,
            in_place: 0,
            taken: vec![],
            outputs: outs,
            pool: Mutex::new(vec![]),
            stats: String::new(),
        };
        prog.plan_buffers(&p.slot_sizes);
        // Everything one run holds: the buffers, the kernels' scratch and the copies of
        // the outputs; over the machine's memory it is a clear error, never an abort.
        let mut total = prog.scratch_len;
        for &n in &prog.slot_sizes {
            total = total.saturating_add(n);
        }
        for o in &prog.outputs {
            let n = o.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d));
            total = total.saturating_add(n);
        }
        autodiff_ir::mem::check_elements(total, "the buffers of this program")
            .map_err(LowerError)?;
        prog.stats = prog.make_stats();
        Ok(prog)
    }

    /// Maps virtual slots (one per materialized value) to physical slots: a slot is reused
    /// once the last step reading it has run; an elementwise kernel whose contiguous operand
    /// dies there writes over it (in place). Output slots are never reused.
    fn plan_buffers(&mut self, virt_sizes: &[usize]) {
        let nv = virt_sizes.len();
        let mut last: Vec<Option<usize>> = vec![None; nv];
        for (si, st) in self.steps.iter_mut().enumerate() {
            for r in st.locs_mut().0 {
                if let Loc::Slot(s) = *r {
                    last[s as usize] = Some(si);
                }
            }
        }
        let mut keep = vec![false; nv];
        for o in &self.outputs {
            if let Loc::Slot(s) = o.loc {
                keep[s as usize] = true;
            }
        }
        let mut phys = vec![NONE; nv];
        let mut sizes: Vec<usize> = vec![];
        let mut free: Vec<usize> = vec![];
        let mut scratch = 0;
        for si in 0..self.steps.len() {
            let mut inplace = None;
            if let StepKind::Fused(f) = &self.steps[si].kind {
                scratch = scratch.max(f.regs_len());
                if let (Sink::Store, true) = (&f.sink, f.n > 0 && f.stores.is_empty()) {
                    let full = |l: &Leaf| {
                        l.offset == 0
                            && ((l.shape.len() == 1 && l.strides[0] == 1 && l.shape[0] == f.n)
                                || (f.n == 1 && l.shape.is_empty()))
                    };
                    inplace = f.leaves.iter().find_map(|l| match l.loc {
                        Loc::Slot(s)
                            if last[s as usize] == Some(si)
                                && !keep[s as usize]
                                && f.leaves.iter().filter(|m| m.loc == l.loc).all(full) =>
                        {
                            Some(s as usize)
                        }
                        _ => None,
                    });
                }
            }
            if let (Some(_), StepKind::Fused(f)) = (inplace, &mut self.steps[si].kind) {
                // the operand is read in place: the result goes through a register first
                f.direct_store = false;
            }
            let (reads, writes) = self.steps[si].locs_mut();
            let mut written: Vec<(usize, usize)> = vec![]; // (virtual, physical)
            for (k, w) in writes.iter().enumerate() {
                let Loc::Slot(wv) = **w else {
                    unreachable!("kernels write slots")
                };
                let wv = wv as usize;
                let need = virt_sizes[wv];
                let p = match inplace {
                    Some(s) if k == 0 => {
                        self.in_place += 1;
                        phys[s]
                    }
                    _ => {
                        // best fit among the free slots, else grow the largest, else a new one
                        let fit = free
                            .iter()
                            .enumerate()
                            .filter(|(_, &p)| sizes[p] >= need)
                            .min_by_key(|(_, &p)| sizes[p])
                            .map(|(k, _)| k);
                        let pick = fit.or_else(|| {
                            free.iter()
                                .enumerate()
                                .max_by_key(|(_, &p)| sizes[p])
                                .map(|(k, _)| k)
                        });
                        match pick {
                            Some(k) => {
                                let p = free.swap_remove(k);
                                sizes[p] = sizes[p].max(need);
                                p
                            }
                            None => {
                                sizes.push(need);
                                sizes.len() - 1
                            }
                        }
                    }
                };
                phys[wv] = p;
                written.push((wv, p));
            }
            let mut dying = vec![];
            for r in reads {
                if let Loc::Slot(s) = *r {
                    let s = s as usize;
                    if last[s] == Some(si) && !keep[s] && Some(s) != inplace && !dying.contains(&s)
                    {
                        dying.push(s);
                    }
                    *r = Loc::Slot(phys[s] as u32);
                }
            }
            for (w, &(wv, p)) in writes.into_iter().zip(&written) {
                *w = Loc::Slot(p as u32);
                if last[wv].is_none() && !keep[wv] {
                    free.push(p);
                }
            }
            free.extend(dying.iter().map(|&s| phys[s]));
        }
        for o in &mut self.outputs {
            if let Loc::Slot(s) = o.loc {
                o.loc = Loc::Slot(phys[s as usize] as u32);
            }
        }
        // outputs that own a whole slot are handed over instead of copied
        for k in 0..self.outputs.len() {
            let o = &self.outputs[k];
            let n: usize = o.shape.iter().product();
            let whole = o.offset == 0
                && n > 0
                && o.cshape.len() == 1
                && o.cstrides[0] == 1
                && matches!(o.loc, Loc::Slot(s) if sizes[s as usize] == n);
            let shared = self.outputs.iter().filter(|p| p.loc == o.loc).count() > 1;
            if whole && !shared {
                if let Loc::Slot(s) = o.loc {
                    self.taken.push(s as usize);
                }
                self.outputs[k].take = true;
            }
        }
        self.slot_sizes = sizes;
        self.scratch_len = scratch;
    }

    fn make_stats(&self) -> String {
        let (mut fused, mut fused_nodes, mut fused_red, mut gemm, mut direct) = (0, 0, 0, 0, 0);
        let (mut par, mut f32) = (0, 0);
        let mut kernels: Vec<(&str, usize)> = vec![];
        for s in &self.steps {
            match &s.kind {
                StepKind::Fused(f) => {
                    fused += 1;
                    fused_nodes += f.nodes.len();
                    par += (f.n >= PAR_MIN) as usize;
                    f32 += f.f32 as usize;
                    if let Sink::Reduce(_) = f.sink {
                        fused_red += 1;
                    }
                }
                StepKind::Contract(c) => match c.plan {
                    Plan::Gemm { .. } => gemm += 1,
                    Plan::Direct { .. } => direct += 1,
                },
                StepKind::Kernel(..) | StepKind::Loop(_) => {
                    let name = match &s.kind {
                        StepKind::Kernel(k, _, _) => k.name(),
                        _ => "loop",
                    };
                    match kernels.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, c)) => *c += 1,
                        None => kernels.push((name, 1)),
                    }
                }
            }
        }
        let bytes: usize = self.slot_sizes.iter().sum::<usize>() * 8;
        let cbytes: usize = self.consts.iter().map(|c| c.len()).sum::<usize>() * 8;
        let ks: Vec<String> = kernels.iter().map(|(n, c)| format!("{n}: {c}")).collect();
        let mut s = format!(
            "kernels: {} (fused: {fused} covering {fused_nodes} nodes, {fused_red} with a \
             reduction, {par} multithreaded, {f32} float32; gemm: {gemm}; direct contractions: {direct}; other: {{{}}}); \
             buffers: {} slots, {bytes} bytes, {} kernels in place; constants: {cbytes} bytes",
            self.steps.len(),
            ks.join(", "),
            self.slot_sizes.len(),
            self.in_place,
        );
        // each loop's body, indented under it (run once per iteration)
        for st in &self.steps {
            if let StepKind::Loop(l) = &st.kind {
                let body = l.body.make_stats().replace('\n', "\n  ");
                s.push_str(&format!("\n  loop body ({} trips): {body}", l.trips()));
            }
        }
        s
    }

    /// Kernels, fused groups and buffer bytes, for reports.
    pub fn stats(&self) -> String {
        self.stats.clone()
    }

    /// Number of kernels (steps) in the schedule.
    pub fn num_kernels(&self) -> usize {
        self.steps.len()
    }

    /// Number of fused elementwise kernels, and how many of them end in a reduction.
    pub fn num_fused(&self) -> (usize, usize) {
        let mut n = (0, 0);
        for s in &self.steps {
            if let StepKind::Fused(f) = &s.kind {
                n.0 += 1;
                if let Sink::Reduce(_) = f.sink {
                    n.1 += 1;
                }
            }
        }
        n
    }

    /// Number of kernels that write in place over a dying operand.
    pub fn num_in_place(&self) -> usize {
        self.in_place
    }

    /// Number of physical buffers (arena slots) and their total size in elements.
    pub fn buffer_plan(&self) -> (usize, usize) {
        (self.slot_sizes.len(), self.slot_sizes.iter().sum())
    }

    fn new_arena(&self) -> Arena {
        let mut bufs: Vec<Vec<f64>> = self.slot_sizes.iter().map(|&n| slot_buffer(n)).collect();
        let ptrs = bufs.iter_mut().map(|b| SendPtr(b.as_mut_ptr())).collect();
        Arena {
            bufs,
            ptrs,
            scratch: vec![0.0; self.scratch_len],
        }
    }

    /// Checks the inputs against the graph's and takes an arena from the pool (a new one
    /// when it is empty), with the slots handed over as outputs by an earlier run renewed.
    fn begin_run(&self, inputs: &[&[f64]]) -> Result<Arena, LowerError> {
        if inputs.len() != self.input_types.len() {
            return fail(format!(
                "expected {} inputs, got {}",
                self.input_types.len(),
                inputs.len()
            ));
        }
        for (k, (x, (shape, dtype))) in inputs.iter().zip(&self.input_types).enumerate() {
            let n: usize = shape.iter().product();
            if x.len() != n {
                return fail(format!(
                    "input {k} ({}): expected {dtype} {shape:?} ({n} elements), got {} elements",
                    self.input_names.get(k).map_or("?", |s| s.as_str()),
                    x.len()
                ));
            }
        }
        Ok(self.take_arena())
    }

    /// An arena from the pool (a new one when it is empty), with the slots handed over as
    /// outputs by an earlier run renewed.
    fn take_arena(&self) -> Arena {
        let arena = self.pool.lock().map(|mut p| p.pop()).unwrap_or(None);
        let mut arena = arena.unwrap_or_else(|| self.new_arena());
        for &s in &self.taken {
            if arena.bufs[s].len() != self.slot_sizes[s] {
                arena.bufs[s] = slot_buffer(self.slot_sizes[s]);
                arena.ptrs[s] = SendPtr(arena.bufs[s].as_mut_ptr());
            }
        }
        arena
    }

    /// Returns an arena to the pool.
    fn recycle(&self, arena: Arena) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(arena);
        }
    }

    /// Evaluates the outputs on row-major f64 inputs (one slice per graph input, in order,
    /// with the graph's shapes); inputs are read in place.
    pub fn run_f64(&self, inputs: &[&[f64]]) -> Result<Vec<Vec<f64>>, LowerError> {
        let mut arena = self.begin_run(inputs)?;
        let env = Env {
            inputs,
            consts: &self.consts,
            slots: &arena.ptrs,
            scratch: SendPtr(arena.scratch.as_mut_ptr()),
            scratch_len: arena.scratch.len(),
        };
        let res = self.execute(&env);
        let mut outs: Vec<Vec<f64>> = vec![];
        if res.is_ok() {
            for o in &self.outputs {
                if o.take {
                    continue;
                }
                let n: usize = o.shape.iter().product();
                let mut v = vec![0.0; n];
                // SAFETY: the output's buffer is live (its slot is never reused).
                unsafe {
                    view::gather_strided(
                        env.ptr(o.loc),
                        o.offset,
                        &o.cshape,
                        &o.cstrides,
                        0,
                        &mut v,
                    )
                };
                outs.push(v);
            }
            // hand over the slots that are whole outputs
            let mut copied = outs.into_iter();
            outs = self
                .outputs
                .iter()
                .map(|o| match (o.take, o.loc) {
                    (true, Loc::Slot(s)) => std::mem::take(&mut arena.bufs[s as usize]),
                    _ => copied.next().expect("one copy per output not taken"),
                })
                .collect();
        }
        if let Ok(mut p) = self.pool.lock() {
            p.push(arena);
        }
        res.map(|()| outs)
    }

    /// Evaluates the outputs like `run_f64`, writing output `k` into `dst[k]` when given
    /// (exactly the output's size, row-major): an output that owns a whole slot is written
    /// there by its kernel directly (the slot points at `dst[k]` for this run: no copy, no
    /// pooled buffer touched), any other is gathered into it. Outputs without a destination
    /// are handed to `visit` (in order) as row-major slices instead of being allocated:
    /// whole slots are read in place, views gathered into one reused scratch vector.
    ///
    /// # Panics
    /// If `dst` does not have one entry per output, or a destination's length differs from
    /// its output's size.
    pub fn run_f64_into(
        &self,
        inputs: &[&[f64]],
        dst: &mut [Option<&mut [f64]>],
        visit: &mut dyn FnMut(usize, &[f64]),
    ) -> Result<(), LowerError> {
        assert_eq!(dst.len(), self.outputs.len(), "one destination per output");
        let mut arena = self.begin_run(inputs)?;
        let mut ptrs = arena.ptrs.clone();
        for (o, d) in self.outputs.iter().zip(dst.iter_mut()) {
            let n: usize = o.shape.iter().product();
            if let Some(d) = d {
                assert_eq!(d.len(), n, "destination of the wrong size");
                if let (true, Loc::Slot(s)) = (o.take, o.loc) {
                    ptrs[s as usize] = SendPtr(d.as_mut_ptr());
                }
            }
        }
        let env = Env {
            inputs,
            consts: &self.consts,
            slots: &ptrs,
            scratch: SendPtr(arena.scratch.as_mut_ptr()),
            scratch_len: arena.scratch.len(),
        };
        let res = self.execute(&env);
        if res.is_ok() {
            let mut tmp: Vec<f64> = vec![];
            for (k, (o, d)) in self.outputs.iter().zip(dst.iter_mut()).enumerate() {
                let n: usize = o.shape.iter().product();
                match (d, o.take, o.loc) {
                    (Some(_), true, Loc::Slot(_)) => {}
                    (None, true, Loc::Slot(s)) => visit(k, &arena.bufs[s as usize][..n]),
                    (d, _, _) => {
                        let gather = |buf: &mut [f64]| {
                            // SAFETY: the output's buffer is live (its slot is never reused).
                            unsafe {
                                view::gather_strided(
                                    env.ptr(o.loc),
                                    o.offset,
                                    &o.cshape,
                                    &o.cstrides,
                                    0,
                                    buf,
                                )
                            }
                        };
                        match d {
                            Some(d) => gather(d),
                            None => {
                                tmp.clear();
                                tmp.resize(n, 0.0);
                                gather(&mut tmp);
                                visit(k, &tmp);
                            }
                        }
                    }
                }
            }
        }
        if let Ok(mut p) = self.pool.lock() {
            p.push(arena);
        }
        res
    }

    fn execute(&self, env: &Env) -> Result<(), LowerError> {
        for st in &self.steps {
            // SAFETY: the planner guarantees each step's operands are live slots (or inputs
            // and constants) covering their views, and that outputs do not alias operands
            // except for in-place elementwise kernels.
            let r = unsafe {
                match &st.kind {
                    StepKind::Fused(f) => f.run(env),
                    StepKind::Contract(c) => {
                        c.run(env);
                        Ok(())
                    }
                    StepKind::Kernel(k, out, n) => {
                        let o = std::slice::from_raw_parts_mut(env.mut_ptr(*out), *n);
                        k.run(env, o)
                    }
                    StepKind::Loop(l) => {
                        let o = std::slice::from_raw_parts_mut(env.mut_ptr(l.out), l.n);
                        l.run(env, o)
                    }
                }
            };
            if let Err(e) = r {
                return fail(format!("node {} ({}): {e}", st.node, st.head));
            }
        }
        Ok(())
    }

    /// Evaluates the outputs: the contract of `autodiff_exec::eval` (one tensor per graph
    /// input, checked for count, shape, dtype and size).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, LowerError> {
        if inputs.len() != self.input_types.len() {
            return fail(format!(
                "expected {} inputs, got {}",
                self.input_types.len(),
                inputs.len()
            ));
        }
        for (k, (t, (shape, dtype))) in inputs.iter().zip(&self.input_types).enumerate() {
            if &t.shape != shape || t.dtype != *dtype {
                return fail(format!(
                    "input {k} ({}): expected {} {:?}, got {} {:?}",
                    self.input_names.get(k).map_or("?", |s| s.as_str()),
                    dtype,
                    shape,
                    t.dtype,
                    t.shape
                ));
            }
            if t.data.len() != shape.iter().product::<usize>() {
                return fail(format!("input {k}: data does not match its shape"));
            }
        }
        let slices: Vec<&[f64]> = inputs.iter().map(|t| t.data.as_slice()).collect();
        let outs = self.run_f64(&slices)?;
        Ok(outs
            .into_iter()
            .zip(&self.outputs)
            .map(|(data, o)| Tensor {
                dtype: o.dtype,
                shape: o.shape.clone(),
                data,
            })
            .collect())
    }
}
