//! The arena graph with hash-consing and provenance.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::infer::infer;
use crate::{err, BinaryOp, DType, IrError, Op, ReduceOp, Shape, SliceDim, Tensor, UnaryOp};

/// Index of a node in its graph's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One operation applied to earlier nodes, with its inferred shape and dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Shape,
    pub dtype: DType,
}

impl Node {
    /// Number of elements.
    pub fn size(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A hash-consed DAG. Invariants: `nodes[i].inputs[j] < i`; no two nodes are equal
/// (same op and inputs); `inputs[k]` is the node `Input(k)`.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    /// Hash-consing: the node with each hash of (op, inputs), compared with `nodes` on a
    /// hit (no key is stored or cloned: every simplification pass re-interns every node);
    /// nodes whose hash is taken already go to `memo_more`. (FxHash: SipHash's DoS
    /// resistance buys nothing for keys built from the user's own program.)
    memo: FxHashMap<u64, NodeId>,
    memo_more: FxHashMap<u64, Vec<NodeId>>,
    /// Shared between the graphs derived from one another (simplify rebuilds a graph many
    /// times: a large constant is never copied).
    consts: Vec<Arc<Tensor>>,
    /// `bits_hash` of each constant (so copying one between graphs never rehashes it).
    const_hash: Vec<u64>,
    /// Constants by (dtype, shape, hash of their bits): the candidates, compared bit by bit
    /// (a large constant is hashed once per insertion, never copied into a key).
    const_memo: FxHashMap<(DType, Shape, u64), Vec<u32>>,
    /// The input nodes, in argument order.
    pub inputs: Vec<NodeId>,
    /// The user's name for each input (`x`, `W`, ...).
    pub input_names: Vec<String>,
    /// The results of the graph (set by whoever builds it).
    pub outputs: Vec<NodeId>,
    /// Source location (index into `loc_table`) of the code that created each node.
    locs: Vec<Option<u32>>,
    loc_table: Vec<String>,
    current_loc: Option<u32>,
    /// Variable names the user gave to values (from the bytecode), for printing.
    pub names: HashMap<NodeId, String>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.nodes[id.index()].shape
    }

    pub fn dtype(&self, id: NodeId) -> DType {
        self.nodes[id.index()].dtype
    }

    /// The literal tensors referenced by `Op::Const`.
    pub fn consts(&self) -> &[Arc<Tensor>] {
        &self.consts
    }

    /// The tensor of a `Const` node.
    pub fn const_value(&self, id: NodeId) -> Option<&Tensor> {
        match self.node(id).op {
            Op::Const(c) => Some(&*self.consts[c as usize]),
            _ => None,
        }
    }

    /// The single value of a constant whose elements are all equal, looking through
    /// broadcasts and reshapes.
    pub fn uniform_const(&self, id: NodeId) -> Option<f64> {
        let n = self.node(id);
        match &n.op {
            Op::Const(c) => self.consts[*c as usize].uniform_value(),
            Op::Broadcast(_) | Op::Reshape(_) => self.uniform_const(n.inputs[0]),
            _ => None,
        }
    }

    /// Sets the source location given to nodes created from now on.
    pub fn set_loc(&mut self, loc: Option<&str>) {
        self.current_loc = loc.map(|l| match self.loc_table.iter().position(|x| x == l) {
            Some(i) => i as u32,
            None => {
                self.loc_table.push(l.to_string());
                (self.loc_table.len() - 1) as u32
            }
        });
    }

    /// Where the user's code created this node (`file:line`), if known.
    pub fn loc(&self, id: NodeId) -> Option<&str> {
        self.locs[id.index()].map(|i| self.loc_table[i as usize].as_str())
    }

    /// Adds a graph input with a name, shape and dtype.
    pub fn add_input(&mut self, name: &str, shape: Shape, dtype: DType) -> NodeId {
        let k = self.inputs.len() as u32;
        let id = self.push(Op::Input(k), vec![], shape, dtype);
        self.inputs.push(id);
        self.input_names.push(name.to_string());
        id
    }

    /// Adds (or finds) a literal tensor.
    pub fn constant(&mut self, t: Tensor) -> NodeId {
        let h = t.bits_hash();
        match self.find_const(&t, h) {
            Some(id) => id,
            None => self.push_const(Arc::new(t), h),
        }
    }

    /// Constant `c` of `from`, copied (or found) here: its hash is reused and its data
    /// cloned only when this graph does not hold it yet.
    pub fn copy_constant(&mut self, from: &Graph, c: u32) -> NodeId {
        let (t, h) = (&from.consts[c as usize], from.const_hash[c as usize]);
        match self.find_const(t, h) {
            Some(id) => id,
            None => self.push_const(Arc::clone(t), h),
        }
    }

    fn find_const(&mut self, t: &Tensor, h: u64) -> Option<NodeId> {
        let key = (t.dtype, t.shape.clone(), h);
        let c = self
            .const_memo
            .get(&key)?
            .iter()
            .copied()
            .find(|&c| self.consts[c as usize].same_bits(t))?;
        Some(self.intern(Op::Const(c), vec![], t.shape.clone(), t.dtype))
    }

    fn push_const(&mut self, t: Arc<Tensor>, h: u64) -> NodeId {
        let (shape, dtype) = (t.shape.clone(), t.dtype);
        self.consts.push(t);
        self.const_hash.push(h);
        let c = (self.consts.len() - 1) as u32;
        self.const_memo
            .entry((dtype, shape.clone(), h))
            .or_default()
            .push(c);
        self.intern(Op::Const(c), vec![], shape, dtype)
    }

    /// A 0-d constant.
    pub fn scalar(&mut self, v: f64, dtype: DType) -> NodeId {
        self.constant(Tensor::new(dtype, vec![], vec![v]))
    }

    /// A constant of the given shape with every element `v` (a broadcast 0-d constant).
    pub fn full(&mut self, v: f64, shape: &[usize], dtype: DType) -> NodeId {
        let s = self.scalar(v, dtype);
        self.broadcast(s, shape)
            .expect("a scalar broadcasts to any shape")
    }

    /// Zeros shaped like `id`.
    pub fn zeros_like(&mut self, id: NodeId) -> NodeId {
        let (shape, dtype) = (self.shape(id).clone(), self.dtype(id));
        self.full(0.0, &shape, dtype)
    }

    /// Adds (or finds) `op(inputs)` after checking shapes and dtypes.
    pub fn add(&mut self, op: Op, inputs: Vec<NodeId>) -> Result<NodeId, IrError> {
        if matches!(op, Op::Input(_) | Op::Const(_)) {
            return err("inputs and constants are added with add_input and constant");
        }
        for i in &inputs {
            if i.index() >= self.nodes.len() {
                return err(format!("operand {} does not exist", i.0));
            }
        }
        let ins: Vec<(&Shape, DType)> = inputs
            .iter()
            .map(|i| (&self.nodes[i.index()].shape, self.nodes[i.index()].dtype))
            .collect();
        let (shape, dtype) = infer(&op, &ins, self.consts.len())?;
        Ok(self.intern(op, inputs, shape, dtype))
    }

    fn intern(&mut self, op: Op, inputs: Vec<NodeId>, shape: Shape, dtype: DType) -> NodeId {
        let h = {
            use std::hash::{Hash, Hasher};
            let mut st = rustc_hash::FxHasher::default();
            op.hash(&mut st);
            inputs.hash(&mut st);
            st.finish()
        };
        let same = |n: &Node| n.op == op && n.inputs == inputs;
        let first = self.memo.get(&h).copied();
        if let Some(id) = first {
            if same(&self.nodes[id.index()]) {
                return id;
            }
            if let Some(more) = self.memo_more.get(&h) {
                if let Some(&id) = more.iter().find(|id| same(&self.nodes[id.index()])) {
                    return id;
                }
            }
        }
        let id = self.push(op, inputs, shape, dtype);
        match first {
            None => {
                self.memo.insert(h, id);
            }
            Some(_) => self.memo_more.entry(h).or_default().push(id),
        }
        id
    }

    fn push(&mut self, op: Op, inputs: Vec<NodeId>, shape: Shape, dtype: DType) -> NodeId {
        self.nodes.push(Node {
            op,
            inputs,
            shape,
            dtype,
        });
        self.locs.push(self.current_loc);
        NodeId((self.nodes.len() - 1) as u32)
    }

    // ---- builders: thin conveniences over `add`, no-ops where the op would be identity ----

    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId, IrError> {
        // |b| = b for a bool (NumPy's `np.abs` of a bool array is that array)
        if op == UnaryOp::Abs && self.dtype(x) == DType::Bool {
            return Ok(x);
        }
        self.add(Op::Unary(op), vec![x])
    }

    /// Elementwise binary op with NumPy broadcasting and dtype promotion made explicit.
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        let shape = broadcast_shapes(self.shape(a), self.shape(b))?;
        let mut dt = DType::promote(self.dtype(a), self.dtype(b));
        if matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
            dt = DType::Bool;
        } else if !op.is_predicate() && dt == DType::Bool {
            dt = DType::I64;
        }
        if matches!(op, BinaryOp::Div | BinaryOp::Arctan2 | BinaryOp::LogAddExp) && !dt.is_float() {
            dt = DType::F64;
        }
        let a = self.cast(a, dt)?;
        let b = self.cast(b, dt)?;
        let a = self.broadcast(a, &shape)?;
        let b = self.broadcast(b, &shape)?;
        self.add(Op::Binary(op), vec![a, b])
    }

    pub fn add_(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.binary(BinaryOp::Mul, a, b)
    }

    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.binary(BinaryOp::Sub, a, b)
    }

    pub fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        self.binary(BinaryOp::Div, a, b)
    }

    pub fn neg(&mut self, x: NodeId) -> Result<NodeId, IrError> {
        self.unary(UnaryOp::Neg, x)
    }

    /// `x * c` for a scalar constant `c` of x's dtype.
    pub fn scale(&mut self, x: NodeId, c: f64) -> Result<NodeId, IrError> {
        let s = self.scalar(c, self.dtype(x));
        self.mul(x, s)
    }

    /// Elementwise select with broadcasting of all three operands.
    pub fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        let shape = broadcast_shapes(self.shape(a), self.shape(b))?;
        let shape = broadcast_shapes(&shape, self.shape(c))?;
        let dt = DType::promote(self.dtype(a), self.dtype(b));
        let c = self.cast(c, DType::Bool)?;
        let (a, b) = (self.cast(a, dt)?, self.cast(b, dt)?);
        let c = self.broadcast(c, &shape)?;
        let a = self.broadcast(a, &shape)?;
        let b = self.broadcast(b, &shape)?;
        self.add(Op::Where, vec![c, a, b])
    }

    pub fn cast(&mut self, x: NodeId, dtype: DType) -> Result<NodeId, IrError> {
        if self.dtype(x) == dtype {
            return Ok(x);
        }
        if let Some(t) = self.const_value(x) {
            let t = Tensor::new(dtype, t.shape.clone(), t.data.clone());
            return Ok(self.constant(t));
        }
        self.add(Op::Cast(dtype), vec![x])
    }

    pub fn broadcast(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, IrError> {
        if self.shape(x).as_slice() == shape {
            return Ok(x);
        }
        // Fold broadcast-of-broadcast into one.
        let n = self.node(x);
        if let Op::Broadcast(_) = n.op {
            let inner = n.inputs[0];
            return self.add(Op::Broadcast(shape.to_vec()), vec![inner]);
        }
        self.add(Op::Broadcast(shape.to_vec()), vec![x])
    }

    pub fn reshape(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, IrError> {
        if self.shape(x).as_slice() == shape {
            return Ok(x);
        }
        let n = self.node(x);
        if let Op::Reshape(_) = n.op {
            let inner = n.inputs[0];
            if self.shape(inner).as_slice() == shape {
                return Ok(inner);
            }
            return self.add(Op::Reshape(shape.to_vec()), vec![inner]);
        }
        self.add(Op::Reshape(shape.to_vec()), vec![x])
    }

    pub fn transpose(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId, IrError> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == self.shape(x).len() {
            return Ok(x);
        }
        self.add(Op::Transpose(perm.to_vec()), vec![x])
    }

    /// Reduces over `axes` (any order, may be empty).
    pub fn reduce(&mut self, op: ReduceOp, x: NodeId, axes: &[usize]) -> Result<NodeId, IrError> {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        if axes.is_empty() {
            return Ok(x);
        }
        self.add(Op::Reduce(op, axes), vec![x])
    }

    pub fn sum(&mut self, x: NodeId, axes: &[usize]) -> Result<NodeId, IrError> {
        self.reduce(ReduceOp::Sum, x, axes)
    }

    /// Sums `x` down to `shape`, the inverse of a NumPy broadcast from `shape`
    /// (the adjoint of `Broadcast`).
    pub fn sum_to(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, IrError> {
        let xs = self.shape(x).clone();
        if xs.as_slice() == shape {
            return Ok(x);
        }
        let lead = xs.len() - shape.len();
        let mut axes: Vec<usize> = (0..lead).collect();
        for (i, &d) in shape.iter().enumerate() {
            if d == 1 && xs[lead + i] != 1 {
                axes.push(lead + i);
            }
        }
        let s = self.sum(x, &axes)?;
        self.reshape(s, shape)
    }

    pub fn slice(&mut self, x: NodeId, dims: Vec<SliceDim>) -> Result<NodeId, IrError> {
        let full = dims
            .iter()
            .zip(self.shape(x))
            .all(|(d, &n)| d.start == 0 && d.step == 1 && d.len == n);
        if full {
            return Ok(x);
        }
        self.add(Op::Slice(dims), vec![x])
    }

    /// `a @ b` with NumPy matmul semantics for rank 1 and 2 operands, as a `Contract`.
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        let (ra, rb) = (self.shape(a).len(), self.shape(b).len());
        let spec = match (ra, rb) {
            (1, 1) => "i,i->",
            (2, 1) => "ij,j->i",
            (1, 2) => "j,jk->k",
            (2, 2) => "ij,jk->ik",
            _ => return err(format!("matmul of rank {ra} and {rb} operands")),
        };
        self.contract(spec, a, b)
    }

    pub fn contract(&mut self, spec: &str, a: NodeId, b: NodeId) -> Result<NodeId, IrError> {
        let spec = crate::ContractSpec::parse(spec)
            .ok_or_else(|| IrError(format!("bad contraction spec {spec}")))?;
        let dt = DType::promote(self.dtype(a), self.dtype(b));
        if dt == DType::Bool {
            // NumPy's bool product: an `or` of `and`s, i.e. a count of true pairs, != 0
            let (a, b) = (self.cast(a, DType::I64)?, self.cast(b, DType::I64)?);
            let n = self.add(Op::Contract(spec), vec![a, b])?;
            let zero = self.scalar(0.0, DType::I64);
            let zero = self.broadcast(zero, &self.shape(n).clone())?;
            return self.binary(BinaryOp::Ne, n, zero);
        }
        let a = self.cast(a, dt)?;
        let b = self.cast(b, dt)?;
        self.add(Op::Contract(spec), vec![a, b])
    }
}

/// NumPy's broadcast of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Shape, IrError> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}
