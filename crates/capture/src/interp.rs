//! The frame loop: one arm per opcode, each executing the instruction on the real objects.

use std::rc::Rc;

use pyo3::exceptions::{PyNameError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PySet, PyString, PyTuple};

use super::code::{
    Code, Opc, CO_ASYNC_GENERATOR, CO_COROUTINE, CO_GENERATOR, CO_VARARGS, CO_VARKEYWORDS,
};
use super::{unsupported, Err, Res, TracedGen, Tracer, Val};

/// The running CPython's minor version (11, 12 or 13): stack layouts differ.
pub fn minor(py: Python<'_>) -> u8 {
    // (asked once: `version_info` formats and parses the version string each time)
    static MINOR: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *MINOR.get_or_init(|| py.version_info().minor)
}

/// One activation of a user function.
pub struct Frame<'py> {
    pub code: Rc<Code<'py>>,
    pub locals: Vec<Option<Val<'py>>>,
    pub stack: Vec<Val<'py>>,
    pub pc: usize,
    pub globals: Bound<'py, PyDict>,
    pub func: Bound<'py, PyAny>,
    kw_names: Option<Bound<'py, PyTuple>>,
    exc_info: Vec<Bound<'py, PyAny>>,
    line: u32,
    /// Snapshots at each loop header (by instruction index), for loop rolling.
    pub watches: super::Watches,
    /// Loop headers whose Python float accumulators were made traced values (rolling's
    /// `promote_floats`, tried once per loop).
    pub promoted: std::collections::HashSet<usize>,
}

/// Instructions between two checks of pending signals and of the trace's size.
const CHECK_EVERY: u64 = 4096;

pub enum Outcome<'py> {
    Return(Val<'py>),
    Yield(Val<'py>),
}

impl<'py> Tracer<'py> {
    /// Calls a Python function by interpreting its bytecode (inlining it into the trace).
    pub fn call_function(
        &mut self,
        func: &Bound<'py, PyAny>,
        args: Vec<Val<'py>>,
        kwargs: Vec<(String, Val<'py>)>,
    ) -> Res<Val<'py>> {
        if self.depth > 150 {
            return unsupported("recursion deeper than 150 calls in traced code");
        }
        let mut frame = self.make_frame(func, args, kwargs)?;
        if frame.code.flags & (CO_COROUTINE | CO_ASYNC_GENERATOR) != 0 {
            return unsupported("coroutines and async generators cannot be traced");
        }
        if frame.code.flags & CO_GENERATOR != 0 {
            self.generators.push(Some(frame));
            let g = Bound::new(
                self.py,
                TracedGen {
                    idx: self.generators.len() - 1,
                },
            )?;
            return Ok(Val::new(g.into_any()));
        }
        self.depth += 1;
        let out = self.run(&mut frame);
        self.depth -= 1;
        // PEP 479: a StopIteration leaving a generator is a RuntimeError (3.12+ compile that
        // into the generator's code; 3.11 does it in the generator object)
        if let Err(super::Err::Py(e)) = &out {
            if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(self.py) {
                let r = PyRuntimeError::new_err("generator raised StopIteration");
                r.set_cause(self.py, Some(e.clone_ref(self.py)));
                return Err(r.into());
            }
        }
        match out? {
            Outcome::Return(v) => Ok(v),
            Outcome::Yield(_) => unsupported("yield outside a generator"),
        }
    }

    /// Resumes a traced generator; `None` when it is exhausted.
    pub fn resume(&mut self, idx: usize) -> Res<Option<Val<'py>>> {
        let Some(mut frame) = self.generators[idx].take() else {
            return Ok(None);
        };
        self.depth += 1;
        let out = self.run(&mut frame);
        self.depth -= 1;
        match out? {
            Outcome::Yield(v) => {
                frame
                    .stack
                    .push(Val::new(self.py.None().into_bound(self.py)));
                self.generators[idx] = Some(frame);
                Ok(Some(v))
            }
            Outcome::Return(_) => Ok(None),
        }
    }

    /// Whether iterating `o` gives views the engine must know: an untraced array of two
    /// or more axes made by the traced code (not one read from outside), writable.
    pub(crate) fn rows_are_views(&self, o: &Bound<'py, PyAny>) -> Res<bool> {
        if !o.is_exact_instance(&self.r.ndarray) || self.is_foreign(o) {
            return Ok(false);
        }
        let ndim: usize = o.getattr("ndim")?.extract()?;
        Ok(ndim >= 2 && o.getattr("flags")?.getattr("writeable")?.is_truthy()?)
    }

    /// Runs traced generators in `v` to completion, giving a list, and drains the finite
    /// builtin iterators (`map`, `zip`, `enumerate`, `filter`, `reversed`, list/tuple/dict
    /// iterators) and dicts' value views (`d.values()`) into lists, so the traced values they carry are visible to the table.
    /// Other values pass unchanged.
    pub fn materialize(&mut self, v: Val<'py>) -> Res<Val<'py>> {
        const FINITE: [&str; 11] = [
            "dict_values",
            "map",
            "zip",
            "enumerate",
            "filter",
            "reversed",
            "list_iterator",
            "tuple_iterator",
            "list_reverseiterator",
            "dict_valueiterator",
            "dict_itemiterator",
        ];
        if let Some(o) = v.obj.as_ref() {
            if FINITE.contains(&super::type_name(o).as_str()) {
                let items: Vec<Bound<'py, PyAny>> = o.try_iter()?.collect::<PyResult<_>>()?;
                return Ok(Val::new(PyList::new(self.py, items)?.into_any()));
            }
        }
        let Some(idx) = v
            .obj
            .as_ref()
            .and_then(|o| o.downcast::<TracedGen>().ok())
            .map(|g| g.get().idx)
        else {
            return Ok(v);
        };
        let list = PyList::empty(self.py);
        while let Some(x) = self.resume(idx)? {
            // (a traced bool is tracked by its stack slot: boxed, it keeps its node)
            list.append(self.escape(&x)?)?;
        }
        Ok(Val::new(list.into_any()))
    }

    fn make_frame(
        &mut self,
        func: &Bound<'py, PyAny>,
        args: Vec<Val<'py>>,
        kwargs: Vec<(String, Val<'py>)>,
    ) -> Res<Frame<'py>> {
        let code = self.code(&func.getattr("__code__")?)?;
        let globals = func
            .getattr("__globals__")?
            .downcast_into::<PyDict>()
            .map_err(PyErr::from)?;
        let fname: String = func.getattr("__qualname__")?.extract()?;
        let mut locals: Vec<Option<Val<'py>>> = vec![None; code.nslots()];
        let (n, kwonly) = (code.argcount, code.kwonly);
        let mut extra = vec![];
        for (i, a) in args.into_iter().enumerate() {
            if i < n {
                locals[i] = Some(a);
            } else {
                extra.push(a);
            }
        }
        let mut slot = n + kwonly;
        if code.flags & CO_VARARGS != 0 {
            let t = PyTuple::new(self.py, self.escape_all(&extra)?)?;
            locals[slot] = Some(Val::new(t.into_any()));
            slot += 1;
        } else if !extra.is_empty() {
            return Err(PyTypeError::new_err(format!(
                "{fname}() takes {n} positional arguments but {} were given",
                n + extra.len()
            ))
            .into());
        }
        let varkw = (code.flags & CO_VARKEYWORDS != 0).then(|| PyDict::new(self.py));
        for (k, v) in kwargs {
            match code.slots[code.posonly..n + kwonly]
                .iter()
                .position(|s| *s == k)
            {
                Some(p) if locals[p + code.posonly].is_some() => {
                    return Err(PyTypeError::new_err(format!(
                        "{fname}() got multiple values for argument '{k}'"
                    ))
                    .into())
                }
                Some(p) => locals[p + code.posonly] = Some(v),
                None => match &varkw {
                    Some(d) => d.set_item(&k, self.escape(&v)?)?,
                    None => {
                        return Err(PyTypeError::new_err(format!(
                            "{fname}() got an unexpected keyword argument '{k}'"
                        ))
                        .into())
                    }
                },
            }
        }
        if let Some(d) = varkw {
            locals[slot] = Some(Val::new(d.into_any()));
        }
        // Defaults of a function not made during the trace are read from outside: checked
        // on each call (`f.__defaults__ = ...` or a mutated default re-traces).
        let foreign_fn = !self.is_owned(func);
        let defaults = func.getattr("__defaults__")?;
        if !defaults.is_none() {
            let d = defaults.downcast::<PyTuple>().map_err(PyErr::from)?;
            let first = n - d.len();
            let mut used = false;
            for (j, v) in d.iter().enumerate() {
                if locals[first + j].is_none() {
                    if foreign_fn {
                        self.mark_foreign(&v);
                    }
                    locals[first + j] = Some(Val::new(v));
                    used = true;
                }
            }
            if used && foreign_fn {
                self.note_source("attr", func, "__defaults__", &defaults)?;
            }
        }
        let kwdefaults = func.getattr("__kwdefaults__")?;
        let mut used = false;
        for (slot, name) in locals[n..n + kwonly].iter_mut().zip(&code.slots[n..]) {
            if slot.is_none() && !kwdefaults.is_none() {
                if let Ok(v) = kwdefaults.get_item(name) {
                    *slot = Some(Val::new(v));
                    used = true;
                }
            }
        }
        if used && foreign_fn {
            self.note_source("attr", func, "__kwdefaults__", &kwdefaults)?;
        }
        for (i, l) in locals.iter().enumerate().take(n + kwonly) {
            if l.is_none() {
                return Err(PyTypeError::new_err(format!(
                    "{fname}() missing required argument: '{}'",
                    code.slots[i]
                ))
                .into());
            }
        }
        Ok(Frame {
            code,
            locals,
            stack: Vec::with_capacity(16),
            pc: 0,
            globals,
            func: func.clone(),
            kw_names: None,
            exc_info: vec![],
            line: 0,
            watches: Default::default(),
            promoted: Default::default(),
        })
    }

    /// Counts the instruction if it is a side effect (see `Tracer::effects`); writes into
    /// traced arrays are not (they are functionalized into the graph).
    fn note_effect(&mut self, f: &Frame<'py>, op: Opc) {
        let container = |back: usize| f.stack.len().checked_sub(back).map(|i| &f.stack[i]);
        let effect = match op {
            Opc::StoreGlobal
            | Opc::StoreDeref
            | Opc::StoreAttr
            | Opc::DeleteAttr
            | Opc::DeleteSubscr
            | Opc::YieldValue
            | Opc::RaiseVarargs
            | Opc::Reraise
            | Opc::Send => true,
            Opc::StoreSubscr => container(2).is_none_or(|c| self.sym(c).is_none()),
            Opc::StoreSlice => container(3).is_none_or(|c| self.sym(c).is_none()),
            _ => false,
        };
        if effect {
            self.effects += 1;
        }
    }

    /// Runs a frame until it returns or yields.
    pub fn run(&mut self, f: &mut Frame<'py>) -> Res<Outcome<'py>> {
        let code = f.code.clone();
        self.where_.push(String::new());
        let out = loop {
            let i = f.pc;
            let Some(ins) = code.instrs.get(i) else {
                break unsupported("fell off the end of the bytecode");
            };
            if ins.line != f.line || self.where_.last().is_some_and(|w| w.is_empty()) {
                f.line = ins.line;
                let loc = format!("{}:{} in {}", code.filename, ins.line, code.name);
                self.g
                    .set_loc(Some(&format!("{}:{}", code.filename, ins.line)));
                *self.where_.last_mut().unwrap() = loc;
            }
            f.pc += 1;
            self.ticks += 1;
            self.note_effect(f, ins.op);
            if self.ticks.is_multiple_of(CHECK_EVERY) {
                if let Err(e) = self.check_limits(&code, i) {
                    break Err(e);
                }
            }
            match self.step(f, &code, i) {
                Ok(None) if f.pc <= i => {
                    // a backward jump: `f.pc` is a loop header
                    if let Err(e) = self.at_back_edge(f, &code, i) {
                        // Ctrl-C while rolling: no `try` nor a real call takes over
                        if matches!(&e, Err::Py(p) if p.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(self.py))
                        {
                            self.interrupted = true;
                        }
                        break Err(e);
                    }
                }
                Ok(None) => {}
                Ok(Some(o)) => break Ok(o),
                // Ctrl-C: no `try` of the traced code catches it (the trace stops).
                // (Python code the engine calls may have run the signal handler itself.)
                Err(Err::Py(e))
                    if self.interrupted
                        || e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(self.py) =>
                {
                    self.interrupted = true;
                    break Err(Err::Py(e));
                }
                Err(Err::Py(e)) => match code.handler(i) {
                    Some(_)
                        if e.value(self.py)
                            .hasattr(super::table::TRACED_RAISE)
                            .unwrap_or(false) =>
                    {
                        let what: String = e
                            .value(self.py)
                            .getattr(super::table::TRACED_RAISE)
                            .and_then(|w| w.extract())
                            .unwrap_or_default();
                        break unsupported(format!(
                            "{} raised by `{what}` on traced values is caught by try/except here: \
                             which branch runs depends on the values, and an exception cannot be \
                             guarded. Test the condition explicitly instead (e.g. with an `if`)",
                            super::type_name(e.value(self.py).as_any())
                        ));
                    }
                    Some(h) => {
                        self.effects += 1;
                        self.err_trail = None;
                        f.stack.truncate(h.depth);
                        if h.lasti {
                            f.stack.push(Val::new(
                                code.instrs[i].offset.into_pyobject(self.py)?.into_any(),
                            ));
                        }
                        f.stack.push(Val::new(
                            e.into_value(self.py).into_bound(self.py).into_any(),
                        ));
                        f.pc = h.target;
                    }
                    None => break Err(Err::Py(e)),
                },
                Err(u) => break Err(u),
            }
        };
        if out.is_err() && self.err_trail.is_none() {
            self.err_trail = Some(self.where_.clone());
        }
        self.where_.pop();
        out
    }

    /// Every `CHECK_EVERY` instructions: pending signals (Ctrl-C stops the trace with
    /// KeyboardInterrupt) and the size of the trace (a loop unrolled without end is a
    /// TraceError naming the loop, not a trace that never finishes).
    fn check_limits(&mut self, code: &Code<'py>, i: usize) -> Res<()> {
        // Let other Python threads run for a moment: the engine otherwise holds the GIL
        // for the whole trace, starving them (a timer thread sending the interrupt too).
        if let Err(e) = super::poll_others(self.py) {
            self.interrupted = true;
            return Err(Err::Py(e));
        }
        if self.g.len() <= self.max_nodes {
            return Ok(());
        }
        // The innermost loop of this frame around the current instruction: a backward
        // jump from at or after it to at or before it.
        let lp = code
            .instrs
            .iter()
            .enumerate()
            .filter(|(j, ins)| {
                ins.opname.starts_with("JUMP_BACKWARD") && ins.target <= i && i <= *j
            })
            .min_by_key(|(j, ins)| j - ins.target)
            .map(|(j, ins)| {
                code.instrs[ins.target..=j]
                    .iter()
                    .map(|x| x.line)
                    .filter(|&l| l > 0)
                    .min()
                    .unwrap_or(ins.line)
            });
        let what = match lp {
            Some(line) => format!("the loop at {}:{line}", code.filename),
            None => "a loop".to_string(),
        };
        unsupported(format!(
            "the trace grew past {} graph nodes: {what} runs on the real values and every \
             iteration is recorded (unrolled), so a loop that runs very many times makes a \
             trace that never finishes. Vectorize the loop (whole-array NumPy operations), \
             move it out of the traced function (call the traced function inside it), or raise \
             the limit with the environment variable AUTODIFF_MAX_TRACE_NODES",
            self.max_nodes
        ))
    }

    fn pop(f: &mut Frame<'py>) -> Res<Val<'py>> {
        f.stack
            .pop()
            .map_or_else(|| unsupported("internal: stack underflow"), Ok)
    }

    fn popn(f: &mut Frame<'py>, n: usize) -> Res<Vec<Val<'py>>> {
        if f.stack.len() < n {
            return unsupported("internal: stack underflow");
        }
        Ok(f.stack.split_off(f.stack.len() - n))
    }

    fn local(f: &Frame<'py>, code: &Code<'py>, slot: usize) -> Res<Val<'py>> {
        match f.locals.get(slot).cloned().flatten() {
            Some(v) => Ok(v),
            None => Err(pyo3::exceptions::PyUnboundLocalError::new_err(format!(
                "local variable '{}' referenced before assignment",
                code.slots.get(slot).map_or("?", |s| s.as_str())
            ))
            .into()),
        }
    }

    fn global(&self, f: &Frame<'py>, name: &str) -> Res<Bound<'py, PyAny>> {
        if let Some(v) = f.globals.get_item(name)? {
            return Ok(v);
        }
        let b = match f.globals.get_item("__builtins__")? {
            Some(b) => b,
            None => self.r.builtins.clone().into_any(),
        };
        let found = match b.downcast::<PyDict>() {
            Ok(d) => d.get_item(name)?,
            Err(_) => b.getattr(name).ok(),
        };
        found.ok_or_else(|| PyNameError::new_err(format!("name '{name}' is not defined")).into())
    }

    fn obj(&self, o: Bound<'py, PyAny>) -> Val<'py> {
        Val::new(o)
    }

    /// Pushes a (callable, self-or-null) pair in this version's order.
    fn push_method(&self, f: &mut Frame<'py>, attr: Val<'py>) {
        if minor(self.py) >= 13 {
            f.stack.push(attr);
            f.stack.push(Val::null());
        } else {
            f.stack.push(Val::null());
            f.stack.push(attr);
        }
    }

    // Long: one arm per opcode of CPython 3.11-3.13; the arms are short and read as the
    // opcode reference, and a single match keeps the interpreter's dispatch in one place.
    fn step(
        &mut self,
        f: &mut Frame<'py>,
        code: &Code<'py>,
        i: usize,
    ) -> Res<Option<Outcome<'py>>> {
        let py = self.py;
        let ins = &code.instrs[i];
        let arg = ins.arg as usize;
        let v13 = minor(py) >= 13;
        match ins.op {
            Opc::Nop | Opc::Resume | Opc::Cache | Opc::ExtendedArg | Opc::Precall => {}
            Opc::PopTop => {
                Self::pop(f)?;
            }
            Opc::PushNull => f.stack.push(Val::null()),
            Opc::EndFor => {
                Self::popn(f, if v13 { 1 } else { 2 })?;
            }
            Opc::EndSend => {
                let v = Self::pop(f)?;
                Self::pop(f)?;
                f.stack.push(v);
            }
            Opc::Copy => {
                let v = f.stack[f.stack.len() - arg].clone();
                f.stack.push(v);
            }
            Opc::Swap => {
                let n = f.stack.len();
                f.stack.swap(n - 1, n - arg);
            }
            Opc::LoadConst => f.stack.push(self.obj(code.consts.get_item(arg)?)),
            Opc::ReturnConst => {
                return Ok(Some(Outcome::Return(self.obj(code.consts.get_item(arg)?))))
            }
            Opc::LoadFast | Opc::LoadFastCheck => f.stack.push(Self::local(f, code, arg)?),
            Opc::LoadFastAndClear => {
                f.stack.push(f.locals[arg].take().unwrap_or_else(Val::null));
            }
            Opc::LoadFastLoadFast => {
                f.stack.push(Self::local(f, code, arg >> 4)?);
                f.stack.push(Self::local(f, code, arg & 15)?);
            }
            Opc::StoreFast => {
                let v = Self::pop(f)?;
                self.name_value(&v, &code.slots[arg]);
                f.locals[arg] = Some(v).filter(|v| v.obj.is_some());
            }
            Opc::StoreFastLoadFast => {
                f.locals[arg >> 4] = Some(Self::pop(f)?);
                f.stack.push(Self::local(f, code, arg & 15)?);
            }
            Opc::StoreFastStoreFast => {
                let v1 = Self::pop(f)?;
                let v2 = Self::pop(f)?;
                f.locals[arg >> 4] = Some(v1);
                f.locals[arg & 15] = Some(v2);
            }
            Opc::DeleteFast => f.locals[arg] = None,
            Opc::LoadGlobal | Opc::LoadName => {
                let name: String = ins.argval.extract()?;
                let v = self.obj(self.global(f, &name)?);
                if f.globals.contains(&name)? {
                    self.note_source("global", f.globals.as_any(), &name, v.obj())?;
                }
                let null = ins.op == Opc::LoadGlobal && arg & 1 == 1;
                if null && !v13 {
                    f.stack.push(Val::null());
                }
                f.stack.push(v);
                if null && v13 {
                    f.stack.push(Val::null());
                }
            }
            Opc::StoreGlobal => {
                let name: String = ins.argval.extract()?;
                let v = Self::pop(f)?;
                let same = f
                    .globals
                    .get_item(&name)?
                    .is_some_and(|old| v.obj.as_ref().is_some_and(|o| o.is(&old)));
                if self.in_library() {
                    f.globals.set_item(&name, self.escape(&v)?)?;
                } else if !same {
                    return unsupported(format!(
                        "assigning the global variable '{name}' inside a traced function is a \
                         side effect: it would happen once, at trace time, and not on later \
                         calls. Return the new value and assign it outside the traced function"
                    ));
                }
            }
            Opc::LoadDeref => {
                let cell = Self::local(f, code, arg)?;
                match cell.obj().getattr("cell_contents") {
                    Ok(v) => {
                        if !self.is_owned(cell.obj()) {
                            self.note_source("cell", cell.obj(), &code.slots[arg], &v)?;
                        }
                        f.stack.push(self.obj(v))
                    }
                    Err(_) => {
                        return Err(PyNameError::new_err(format!(
                            "free variable '{}' referenced before assignment",
                            code.slots[arg]
                        ))
                        .into())
                    }
                }
            }
            Opc::StoreDeref => {
                let v = Self::pop(f)?;
                let cell = Self::local(f, code, arg)?;
                if !self.is_owned(cell.obj()) && !self.in_library() {
                    return unsupported(format!(
                        "assigning the variable '{}' of an enclosing function (nonlocal) that \
                         was defined outside the traced function is a side effect: it would \
                         happen once, at trace time, and not on later calls. Return the new \
                         value instead",
                        code.slots[arg]
                    ));
                }
                cell.obj().setattr("cell_contents", self.escape(&v)?)?;
            }
            Opc::LoadClosure => f.stack.push(Self::local(f, code, arg)?),
            Opc::MakeCell => {
                let cell = match f.locals[arg].clone() {
                    Some(v) => {
                        let contents = self.escape(&v)?;
                        self.r.cell_type.call1((contents,))?
                    }
                    None => self.r.cell_type.call0()?,
                };
                self.note_owned(&cell);
                f.locals[arg] = Some(self.obj(cell));
            }
            Opc::CopyFreeVars => {
                let closure = f.func.getattr("__closure__")?;
                let base = code.nslots() - arg;
                for j in 0..arg {
                    f.locals[base + j] = Some(self.obj(closure.get_item(j)?));
                }
            }
            Opc::LoadAttr | Opc::LoadMethod => {
                let name: String = ins.argval.extract()?;
                let o = Self::pop(f)?;
                let attr = self.getattr(&o, &name)?;
                let method = ins.op == Opc::LoadMethod || (minor(py) >= 12 && arg & 1 == 1);
                if method {
                    self.push_method(f, attr);
                } else {
                    f.stack.push(attr);
                }
            }
            Opc::LoadSuperAttr => {
                let name: String = ins.argval.extract()?;
                let slf = Self::pop(f)?;
                let cls = Self::pop(f)?;
                let sup = Self::pop(f)?;
                let s = sup.obj().call1((cls.obj(), slf.obj()))?;
                let attr = self.obj(s.getattr(name)?);
                if arg & 1 == 1 {
                    self.push_method(f, attr);
                } else {
                    f.stack.push(attr);
                }
            }
            Opc::StoreAttr => {
                let name: String = ins.argval.extract()?;
                let o = Self::pop(f)?;
                let v = Self::pop(f)?;
                match self.sym(&o) {
                    // `x.shape = ...` on a traced array: the same values, reshaped.
                    Some(n) if name == "shape" && o.obj().is_instance(&self.r.ndarray)? => {
                        self.concretize(&v, "a shape")?;
                        o.obj().setattr(name, v.obj())?;
                        let shape: Vec<usize> = o.obj().getattr("shape")?.extract()?;
                        let r = self.g.reshape(n, &shape)?;
                        self.ids.insert(o.obj().as_ptr() as usize, r);
                    }
                    _ => {
                        self.check_owned(o.obj(), &format!("`.{name} = ...`"))?;
                        o.obj().setattr(name, self.escape(&v)?)?
                    }
                }
            }
            Opc::DeleteAttr => {
                let name: String = ins.argval.extract()?;
                let o = Self::pop(f)?;
                self.check_owned(o.obj(), &format!("`del .{name}`"))?;
                o.obj().delattr(name)?;
            }
            Opc::KwNames => {
                f.kw_names = Some(
                    code.consts
                        .get_item(arg)?
                        .downcast_into::<PyTuple>()
                        .map_err(PyErr::from)?,
                )
            }
            Opc::Call | Opc::CallKw => {
                let kw = if ins.op == Opc::CallKw {
                    Some(
                        Self::pop(f)?
                            .obj()
                            .clone()
                            .downcast_into::<PyTuple>()
                            .map_err(PyErr::from)?,
                    )
                } else {
                    f.kw_names.take()
                };
                let mut args = Self::popn(f, arg)?;
                let b = Self::pop(f)?;
                let a = Self::pop(f)?;
                let (callee, slf) = if v13 {
                    (a, b)
                } else if a.obj.is_none() {
                    (b, Val::null())
                } else {
                    (a, b)
                };
                if slf.obj.is_some() {
                    args.insert(0, slf);
                }
                let mut kwargs = vec![];
                if let Some(names) = kw {
                    let vals = args.split_off(args.len() - names.len());
                    for (n, v) in names.iter().zip(vals) {
                        kwargs.push((n.extract::<String>()?, v));
                    }
                }
                let no_args = args.is_empty() && kwargs.is_empty();
                let builtin = |n: &str| {
                    self.r
                        .builtins
                        .getattr(n)
                        .is_ok_and(|b| callee.obj().is(&b))
                };
                let out = if no_args && builtin("super") {
                    self.zero_arg_super(f, code)?
                } else if no_args && builtin("globals") {
                    // The traced frame's globals (natively, it would be the engine caller's).
                    self.obj(f.globals.clone().into_any())
                } else if no_args && (builtin("locals") || builtin("vars")) {
                    return unsupported(
                        "locals() / vars() without arguments inside a traced function: the \
                         engine's frames are not Python frames. Name the variables directly",
                    );
                } else {
                    self.call(callee, args, kwargs)?
                };
                f.stack.push(out);
            }
            Opc::CallFunctionEx => {
                let kwargs = if arg & 1 == 1 {
                    Some(Self::pop(f)?)
                } else {
                    None
                };
                let cargs = Self::pop(f)?;
                let (callee, extra) = if v13 {
                    let e = Self::pop(f)?;
                    (Self::pop(f)?, e)
                } else {
                    let c = Self::pop(f)?;
                    (c, Self::pop(f)?)
                };
                let cargs = self.materialize(cargs)?;
                let mut args: Vec<Val> = vec![];
                if extra.obj.is_some() {
                    args.push(extra);
                }
                // `f(*x)` with a traced array: its rows, traced.
                args.extend(self.unpack(cargs)?);
                let mut kw = vec![];
                if let Some(k) = kwargs {
                    let d = k.obj().downcast::<PyDict>().map_err(PyErr::from)?;
                    for (kk, vv) in d.iter() {
                        kw.push((kk.extract::<String>()?, self.obj(vv)));
                    }
                }
                let out = self.call(callee, args, kw)?;
                f.stack.push(out);
            }
            Opc::CallIntrinsic1 => {
                let v = Self::pop(f)?;
                let out = match arg {
                    5 => self.unary(super::table::Unary::Pos, &v)?,
                    6 => self.obj(
                        PyTuple::new(py, v.obj().try_iter()?.collect::<PyResult<Vec<_>>>()?)?
                            .into_any(),
                    ),
                    // INTRINSIC_STOPITERATION_ERROR: a StopIteration leaving a generator
                    // becomes a RuntimeError (PEP 479); any other exception passes unchanged
                    // (it was made a RuntimeError too: a generator raising ValueError on
                    // 3.12+ raised "generator raised StopIteration")
                    3 if v
                        .obj()
                        .is_instance_of::<pyo3::exceptions::PyStopIteration>() =>
                    {
                        return Err(PyRuntimeError::new_err("generator raised StopIteration").into())
                    }
                    3 => v,
                    1 => v,
                    _ => return unsupported(format!("intrinsic function {arg} is not supported")),
                };
                f.stack.push(out);
            }
            Opc::BinaryOp => {
                let b = Self::pop(f)?;
                let a = Self::pop(f)?;
                let out = self.binary_op(arg, &a, &b)?;
                f.stack.push(out);
            }
            Opc::UnaryNegative | Opc::UnaryPositive | Opc::UnaryInvert => {
                let v = Self::pop(f)?;
                let u = match ins.op {
                    Opc::UnaryNegative => super::table::Unary::Neg,
                    Opc::UnaryPositive => super::table::Unary::Pos,
                    _ => super::table::Unary::Invert,
                };
                let out = self.unary(u, &v)?;
                f.stack.push(out);
            }
            Opc::UnaryNot => {
                let v = Self::pop(f)?;
                let b = self.truth(&v)?;
                f.stack
                    .push(self.obj(PyBool::new(py, !b).to_owned().into_any()));
            }
            Opc::ToBool => {
                let v = Self::pop(f)?;
                let out = self.bool_of(&v)?;
                f.stack.push(out);
            }
            Opc::CompareOp => {
                let b = Self::pop(f)?;
                let a = Self::pop(f)?;
                let op: String = ins.argval.extract()?;
                let mut out = self.compare(&op, &a, &b)?;
                if v13 && arg & 16 != 0 {
                    out = self.bool_of(&out)?;
                }
                f.stack.push(out);
            }
            Opc::IsOp => {
                let b = Self::pop(f)?;
                let a = Self::pop(f)?;
                let r = a.obj().is(b.obj()) != (arg == 1);
                f.stack
                    .push(self.obj(PyBool::new(py, r).to_owned().into_any()));
            }
            Opc::ContainsOp => {
                let b = Self::pop(f)?;
                let a = Self::pop(f)?;
                let r = self.contains(&a, &b)? != (arg == 1);
                f.stack
                    .push(self.obj(PyBool::new(py, r).to_owned().into_any()));
            }
            Opc::BinarySubscr => {
                let k = Self::pop(f)?;
                let c = Self::pop(f)?;
                let out = self.getitem(&c, &k)?;
                f.stack.push(out);
            }
            Opc::StoreSubscr => {
                let k = Self::pop(f)?;
                let c = Self::pop(f)?;
                let v = Self::pop(f)?;
                self.setitem(&c, &k, &v)?;
            }
            Opc::DeleteSubscr => {
                let k = Self::pop(f)?;
                let c = Self::pop(f)?;
                if self.sym(&c).is_some() {
                    return unsupported("del on a traced array");
                }
                self.check_owned(c.obj(), "`del x[...]`")?;
                c.obj().del_item(k.obj())?;
            }
            Opc::BinarySlice | Opc::StoreSlice => {
                let end = Self::pop(f)?;
                let start = Self::pop(f)?;
                let c = Self::pop(f)?;
                // (3.12+: `x[a:b]` without BUILD_SLICE; its bounds decide as BUILD_SLICE's do)
                for v in [&start, &end] {
                    self.concretize(v, "a slice bound")?;
                }
                let slice = self
                    .r
                    .builtins
                    .getattr("slice")?
                    .call1((start.obj(), end.obj()))?;
                let k = self.obj(slice);
                if ins.op == Opc::BinarySlice {
                    let out = self.getitem(&c, &k)?;
                    f.stack.push(out);
                } else {
                    let v = Self::pop(f)?;
                    self.setitem(&c, &k, &v)?;
                }
            }
            Opc::BuildTuple | Opc::BuildList | Opc::BuildSet => {
                let items = Self::popn(f, arg)?;
                let objs = self.escape_all(&items)?.into_iter();
                let o = match ins.op {
                    Opc::BuildTuple => PyTuple::new(py, objs)?.into_any(),
                    Opc::BuildList => PyList::new(py, objs)?.into_any(),
                    _ => PySet::new(py, objs.collect::<Vec<_>>())?.into_any(),
                };
                f.stack.push(self.obj(o));
            }
            Opc::BuildMap => {
                let items = Self::popn(f, 2 * arg)?;
                let d = PyDict::new(py);
                for kv in items.chunks(2) {
                    // (a key is hashed: a traced one decides where its value goes)
                    self.concretize_deep(&kv[0], "a dict key")?;
                    d.set_item(kv[0].obj(), self.escape(&kv[1])?)?;
                }
                f.stack.push(self.obj(d.into_any()));
            }
            Opc::BuildConstKeyMap => {
                let keys = Self::pop(f)?;
                let vals = Self::popn(f, arg)?;
                let d = PyDict::new(py);
                for (k, v) in keys.obj().try_iter()?.zip(vals) {
                    d.set_item(k?, self.escape(&v)?)?;
                }
                f.stack.push(self.obj(d.into_any()));
            }
            Opc::BuildSlice => {
                let items = Self::popn(f, arg)?;
                let args = PyTuple::new(py, items.iter().map(|v| v.obj().clone()))?;
                for v in &items {
                    self.concretize(v, "a slice bound")?;
                }
                f.stack
                    .push(self.obj(self.r.builtins.getattr("slice")?.call1(args)?));
            }
            Opc::BuildString => {
                let items = Self::popn(f, arg)?;
                let mut s = String::new();
                let tainted = items.iter().any(|v| self.is_tainted(v.obj()));
                for v in items {
                    s.push_str(&v.obj().extract::<String>()?);
                }
                let out = PyString::new(py, &s).into_any();
                if tainted {
                    self.taint(&out);
                }
                f.stack.push(self.obj(out));
            }
            Opc::FormatValue => {
                let spec = if arg & 4 != 0 {
                    Some(Self::pop(f)?)
                } else {
                    None
                };
                let v = Self::pop(f)?;
                let t = self.deep_sym(&v) || self.is_tainted(v.obj());
                let v = self.convert_value(v.obj(), arg & 3)?;
                let fmt = self.r.builtins.getattr("format")?;
                let s = match spec {
                    Some(sp) => fmt.call1((v, sp.obj()))?,
                    None => fmt.call1((v,))?,
                };
                if t {
                    self.taint(&s);
                }
                f.stack.push(self.obj(s));
            }
            Opc::FormatSimple => {
                let v = Self::pop(f)?;
                let s = self.r.builtins.getattr("format")?.call1((v.obj(),))?;
                if self.deep_sym(&v) || self.is_tainted(v.obj()) {
                    self.taint(&s);
                }
                f.stack.push(self.obj(s));
            }
            Opc::FormatWithSpec => {
                let sp = Self::pop(f)?;
                let v = Self::pop(f)?;
                let s = self
                    .r
                    .builtins
                    .getattr("format")?
                    .call1((v.obj(), sp.obj()))?;
                if self.deep_sym(&v) || self.is_tainted(v.obj()) {
                    self.taint(&s);
                }
                f.stack.push(self.obj(s));
            }
            Opc::ConvertValue => {
                let v = Self::pop(f)?;
                let out = self.convert_value(v.obj(), arg)?;
                if self.deep_sym(&v) || self.is_tainted(v.obj()) {
                    self.taint(&out);
                }
                f.stack.push(self.obj(out));
            }
            Opc::ListAppend | Opc::SetAdd => {
                let v = Self::pop(f)?;
                let target = f.stack[f.stack.len() - arg].obj().clone();
                let m = if ins.op == Opc::ListAppend {
                    "append"
                } else {
                    "add"
                };
                target.call_method1(m, (self.escape(&v)?,))?;
            }
            Opc::ListExtend | Opc::SetUpdate | Opc::DictUpdate | Opc::DictMerge => {
                let v = Self::pop(f)?;
                let v = if self.sym(&v).is_some()
                    && ins.op != Opc::DictUpdate
                    && ins.op != Opc::DictMerge
                {
                    // `[*x]` / `{*x}` with a traced array: its rows, traced.
                    let rows = self.unpack(v)?;
                    Val::new(PyList::new(py, rows.iter().map(|r| r.obj().clone()))?.into_any())
                } else {
                    self.materialize(v)?
                };
                let target = f.stack[f.stack.len() - arg].obj().clone();
                let m = match ins.op {
                    Opc::ListExtend => "extend",
                    _ => "update",
                };
                target.call_method1(m, (v.obj(),))?;
            }
            Opc::ListToTuple => {
                let v = Self::pop(f)?;
                let t = PyTuple::new(py, v.obj().try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
                f.stack.push(self.obj(t.into_any()));
            }
            Opc::MapAdd => {
                let v = Self::pop(f)?;
                let k = Self::pop(f)?;
                self.concretize_deep(&k, "a dict key")?;
                f.stack[f.stack.len() - arg]
                    .obj()
                    .set_item(k.obj(), self.escape(&v)?)?;
            }
            Opc::UnpackSequence => {
                let seq = Self::pop(f)?;
                let items = self.unpack(seq)?;
                if items.len() != arg {
                    return Err(PyValueError::new_err(format!(
                        "expected {arg} values to unpack, got {}",
                        items.len()
                    ))
                    .into());
                }
                f.stack.extend(items.into_iter().rev());
            }
            Opc::UnpackEx => {
                let (before, after) = (arg & 0xff, arg >> 8);
                let seq = Self::pop(f)?;
                let mut items = self.unpack(seq)?;
                if items.len() < before + after {
                    return Err(PyValueError::new_err("not enough values to unpack").into());
                }
                let tail = items.split_off(items.len() - after);
                let mid = items.split_off(before);
                f.stack.extend(tail.into_iter().rev());
                let l = PyList::new(py, mid.iter().map(|v| v.obj().clone()))?;
                f.stack.push(self.obj(l.into_any()));
                f.stack.extend(items.into_iter().rev());
            }
            Opc::ReturnValue => return Ok(Some(Outcome::Return(Self::pop(f)?))),
            Opc::PopJumpIfFalse | Opc::PopJumpIfTrue => {
                let v = Self::pop(f)?;
                let b = self.truth(&v)?;
                if b == (ins.op == Opc::PopJumpIfTrue) {
                    f.pc = ins.target;
                }
            }
            Opc::PopJumpIfNone | Opc::PopJumpIfNotNone => {
                let v = Self::pop(f)?;
                if v.obj().is_none() == (ins.op == Opc::PopJumpIfNone) {
                    f.pc = ins.target;
                }
            }
            Opc::JumpIfFalseOrPop | Opc::JumpIfTrueOrPop => {
                let v = f
                    .stack
                    .last()
                    .cloned()
                    .ok_or(Err::Unsupported("stack underflow".into()))?;
                let b = self.truth(&v)?;
                if b == (ins.op == Opc::JumpIfTrueOrPop) {
                    f.pc = ins.target;
                } else {
                    Self::pop(f)?;
                }
            }
            Opc::Jump => f.pc = ins.target,
            Opc::GetIter => {
                let v = Self::pop(f)?;
                let it = if v.obj().downcast::<TracedGen>().is_ok() {
                    v
                } else if self.sym(&v).is_some() || self.rows_are_views(v.obj())? {
                    // rows through `getitem`: each a (noted) view, so `for r in y: r[:] = v`
                    // writes into `y`, and a row read later sees later writes
                    let n: usize = v.obj().len()?;
                    let mut rows = vec![];
                    for k in 0..n {
                        let key = self.obj(k.into_pyobject(py)?.into_any());
                        rows.push(self.getitem(&v, &key)?);
                    }
                    let l = PyList::new(py, rows.iter().map(|r| r.obj().clone()))?;
                    self.obj(l.try_iter()?.into_any())
                } else {
                    self.check_not_stale(v.obj())?;
                    let it = v.obj().try_iter()?.into_any();
                    if self.is_foreign(v.obj()) {
                        self.mark_foreign(&it);
                    }
                    self.obj(it)
                };
                f.stack.push(it);
            }
            Opc::ForIter => {
                let it = f.stack.last().unwrap().obj().clone();
                let next = if let Ok(g) = it.downcast::<TracedGen>() {
                    let idx = g.get().idx;
                    self.resume(idx)?
                } else {
                    let pynext = self.r.builtins.getattr("next")?;
                    let sentinel = self.r.markers.get_item("_sentinel")?.unwrap();
                    let n = pynext.call1((&it, &sentinel))?;
                    if !n.is(&sentinel) && self.is_foreign(&it) {
                        self.mark_foreign(&n);
                    }
                    (!n.is(&sentinel)).then(|| self.obj(n))
                };
                match next {
                    Some(v) => f.stack.push(v),
                    None => {
                        Self::pop(f)?;
                        f.pc = ins.target;
                        if code.instrs.get(f.pc).is_some_and(|x| x.op == Opc::EndFor) {
                            f.pc += 1;
                            if v13 && code.instrs.get(f.pc).is_some_and(|x| x.op == Opc::PopTop) {
                                f.pc += 1;
                            }
                        }
                    }
                }
            }
            Opc::MakeFunction => {
                let c = Self::pop(f)?;
                let mut closure = py.None().into_bound(py);
                let mut kwdefaults = py.None().into_bound(py);
                let mut defaults = py.None().into_bound(py);
                if v13 {
                    // 3.13 sets the closure afterwards (SET_FUNCTION_ATTRIBUTE 8), but a
                    // function of a code with free variables needs one now: empty cells.
                    let nfree = c.obj().getattr("co_freevars")?.len()?;
                    if nfree > 0 {
                        let cells = (0..nfree)
                            .map(|_| self.r.cell_type.call0())
                            .collect::<PyResult<Vec<_>>>()?;
                        closure = PyTuple::new(py, cells)?.into_any();
                    }
                } else {
                    if arg & 8 != 0 {
                        closure = Self::pop(f)?.obj().clone();
                    }
                    if arg & 4 != 0 {
                        Self::pop(f)?;
                    }
                    if arg & 2 != 0 {
                        kwdefaults = Self::pop(f)?.obj().clone();
                    }
                    if arg & 1 != 0 {
                        defaults = Self::pop(f)?.obj().clone();
                    }
                }
                let func = self.make_function(f, c.obj(), &defaults, &closure, &kwdefaults)?;
                self.note_owned(&func);
                f.stack.push(self.obj(func));
            }
            Opc::SetFunctionAttribute => {
                let func = Self::pop(f)?.obj().clone();
                let attr = Self::pop(f)?.obj().clone();
                let none = py.None().into_bound(py);
                let get = |n: &str| func.getattr(n);
                let out = match arg {
                    8 => self.make_function(
                        f,
                        &get("__code__")?,
                        &get("__defaults__")?,
                        &attr,
                        &get("__kwdefaults__")?,
                    )?,
                    1 => self.make_function(
                        f,
                        &get("__code__")?,
                        &attr,
                        &get("__closure__")?,
                        &get("__kwdefaults__")?,
                    )?,
                    2 => {
                        func.setattr("__kwdefaults__", &attr)?;
                        func
                    }
                    _ => {
                        let _ = none;
                        func
                    }
                };
                self.note_owned(&out);
                f.stack.push(self.obj(out));
            }
            Opc::ReturnGenerator => f.stack.push(self.obj(py.None().into_bound(py))),
            Opc::YieldValue => return Ok(Some(Outcome::Yield(Self::pop(f)?))),
            Opc::GetYieldFromIter | Opc::Send => {
                return unsupported(format!(
                    "`yield from` ({}) is not supported in traced code",
                    ins.opname
                ))
            }
            Opc::ImportName => {
                let name: String = ins.argval.extract()?;
                let fromlist = Self::pop(f)?;
                let level = Self::pop(f)?;
                let imp = self.r.builtins.getattr("__import__")?;
                let m = imp.call1((name, &f.globals, py.None(), fromlist.obj(), level.obj()))?;
                f.stack.push(self.obj(m));
            }
            Opc::ImportFrom => {
                let name: String = ins.argval.extract()?;
                let m = f.stack.last().unwrap().obj().getattr(name)?;
                f.stack.push(self.obj(m));
            }
            Opc::LoadBuildClass => {
                f.stack
                    .push(self.obj(self.r.builtins.getattr("__build_class__")?));
            }
            Opc::LoadAssertionError => {
                f.stack
                    .push(self.obj(self.r.builtins.getattr("AssertionError")?));
            }
            Opc::RaiseVarargs => {
                let e = match arg {
                    0 => match f.exc_info.last() {
                        Some(e) => PyErr::from_value(e.clone()),
                        None => PyRuntimeError::new_err("No active exception to reraise"),
                    },
                    1 => PyErr::from_value(Self::pop(f)?.obj().clone()),
                    _ => {
                        let cause = Self::pop(f)?;
                        let e = PyErr::from_value(Self::pop(f)?.obj().clone());
                        e.set_cause(py, PyErr::from_value(cause.obj().clone()).into());
                        e
                    }
                };
                return Err(e.into());
            }
            Opc::PushExcInfo => {
                let v = Self::pop(f)?;
                let prev = f
                    .exc_info
                    .last()
                    .cloned()
                    .unwrap_or_else(|| py.None().into_bound(py));
                f.stack.push(self.obj(prev));
                f.exc_info.push(v.obj().clone());
                f.stack.push(v);
            }
            Opc::PopExcept => {
                Self::pop(f)?;
                f.exc_info.pop();
            }
            Opc::CheckExcMatch => {
                let right = Self::pop(f)?;
                let left = f.stack.last().unwrap().obj().clone();
                let r = left.is_instance(right.obj())?;
                f.stack
                    .push(self.obj(PyBool::new(py, r).to_owned().into_any()));
            }
            Opc::Reraise => {
                let e = Self::pop(f)?;
                if arg != 0 {
                    Self::pop(f)?;
                }
                return Err(PyErr::from_value(e.obj().clone()).into());
            }
            Opc::BeforeWith => {
                let mgr = Self::pop(f)?;
                let exit = mgr.obj().getattr("__exit__")?;
                let enter = self.obj(mgr.obj().getattr("__enter__")?);
                let res = self.call(enter, vec![], vec![])?;
                self.open_withs.push(exit.clone());
                f.stack.push(self.obj(exit));
                f.stack.push(res);
            }
            Opc::WithExceptStart => {
                let n = f.stack.len();
                let exit = f.stack[n - 4].obj().clone();
                let val = f.stack[n - 1].obj().clone();
                let tb = val.getattr("__traceback__")?;
                self.note_exit_call(&exit);
                let r = exit.call1((val.get_type(), &val, tb))?;
                f.stack.push(self.obj(r));
            }
            Opc::Unknown => {
                return unsupported(format!(
                    "the bytecode instruction {} is not supported by the tracer",
                    ins.opname
                ))
            }
        }
        Ok(None)
    }

    /// `bool(v)` as 3.13's TO_BOOL (and COMPARE_OP's bool form) computes it, guarded when
    /// symbolic. The bool of a traced value keeps its node, so the jump that follows is the
    /// guarded branch it is, not a branch on a Python value (which loop rolling would have
    /// to verify with a plain run of the function).
    fn bool_of(&mut self, v: &Val<'py>) -> Res<Val<'py>> {
        let b = self.truth(v)?;
        let out = PyBool::new(self.py, b).to_owned().into_any();
        let node = match self.sym(v) {
            Some(n) => Some(self.bool_scalar(n)?),
            None => None,
        };
        Ok(Val {
            obj: Some(out),
            node,
        })
    }

    /// `a in b`: a decision on the values of both, guarded (continuous values refused).
    pub fn contains(&mut self, a: &Val<'py>, b: &Val<'py>) -> Res<bool> {
        // (a dict is searched by its keys, which are hashable: its values decide nothing)
        let by_items = self.sym(b).is_some() || b.obj().downcast::<PyDict>().is_err();
        if self.deep_sym(a) || (by_items && self.deep_sym(b)) {
            self.concretize_deep(a, "`in` on a traced value")?;
            if by_items {
                self.concretize_deep(b, "`in` on a traced value")?;
            }
        }
        Ok(b.obj().contains(a.obj())?)
    }

    fn convert_value(&self, v: &Bound<'py, PyAny>, conv: usize) -> Res<Bound<'py, PyAny>> {
        let name = match conv {
            1 => "str",
            2 => "repr",
            3 => "ascii",
            _ => return Ok(v.clone()),
        };
        Ok(self.r.builtins.getattr(name)?.call1((v,))?)
    }

    fn make_function(
        &self,
        f: &Frame<'py>,
        code: &Bound<'py, PyAny>,
        defaults: &Bound<'py, PyAny>,
        closure: &Bound<'py, PyAny>,
        kwdefaults: &Bound<'py, PyAny>,
    ) -> Res<Bound<'py, PyAny>> {
        let name = code.getattr("co_name")?;
        let func = self
            .r
            .function_type
            .call1((code, &f.globals, name, defaults, closure))?;
        if !kwdefaults.is_none() {
            func.setattr("__kwdefaults__", kwdefaults)?;
        }
        if let Ok(q) = code.getattr("co_qualname") {
            func.setattr("__qualname__", q)?;
        }
        Ok(func)
    }

    /// `super()` with no arguments: the frame's `__class__` cell and first argument.
    fn zero_arg_super(&mut self, f: &Frame<'py>, code: &Code<'py>) -> Res<Val<'py>> {
        let cls_slot = code.slots.iter().position(|s| s == "__class__");
        let (Some(cs), Some(Some(first))) = (cls_slot, f.locals.first()) else {
            return Err(PyRuntimeError::new_err("super(): no arguments").into());
        };
        let cell = Self::local(f, code, cs)?;
        let cls = cell.obj().getattr("cell_contents")?;
        let first = if first.obj().is_instance(&self.r.cell_type)? {
            first.obj().getattr("cell_contents")?
        } else {
            first.obj().clone()
        };
        Ok(self.obj(self.r.builtins.getattr("super")?.call1((cls, first))?))
    }

    /// The items of a sequence for unpacking or iteration; rows of a traced array are traced.
    pub fn unpack(&mut self, seq: Val<'py>) -> Res<Vec<Val<'py>>> {
        if self.sym(&seq).is_some() || self.rows_are_views(seq.obj())? {
            let n: usize = seq.obj().len()?;
            let mut rows = vec![];
            for k in 0..n {
                let key = self.obj(k.into_pyobject(self.py)?.into_any());
                rows.push(self.getitem(&seq, &key)?);
            }
            return Ok(rows);
        }
        let seq = self.materialize(seq)?;
        let items: Vec<Bound<'py, PyAny>> = seq.obj().try_iter()?.collect::<PyResult<_>>()?;
        if self.is_foreign(seq.obj()) {
            for it in &items {
                self.mark_foreign(it);
            }
        }
        Ok(items.into_iter().map(Val::new).collect())
    }
}
