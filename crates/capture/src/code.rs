//! Decoding of CPython code objects into version-independent instructions.
//!
//! Decoding uses the running interpreter's own `dis` module (`dis.get_instructions`), so
//! opcode numbers, inline caches, `EXTENDED_ARG` and jump targets are always those of the
//! running CPython (3.11, 3.12 or 3.13). Each code object is decoded once per trace.
//! Guarantee: every instruction of a decoded code object maps to an [`Opc`]; names this
//! engine does not know map to `Opc::Unknown` and raise a clear error only if executed.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Opcodes this engine executes (the union of 3.11, 3.12 and 3.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opc {
    Nop,
    Resume,
    Cache,
    ExtendedArg,
    PopTop,
    PushNull,
    EndFor,
    EndSend,
    Copy,
    Swap,
    LoadConst,
    ReturnConst,
    LoadFast,
    LoadFastCheck,
    LoadFastAndClear,
    LoadFastLoadFast,
    StoreFast,
    StoreFastLoadFast,
    StoreFastStoreFast,
    DeleteFast,
    LoadGlobal,
    StoreGlobal,
    LoadName,
    LoadDeref,
    StoreDeref,
    LoadClosure,
    MakeCell,
    CopyFreeVars,
    LoadAttr,
    LoadMethod,
    StoreAttr,
    DeleteAttr,
    LoadSuperAttr,
    Precall,
    Call,
    CallKw,
    KwNames,
    CallFunctionEx,
    CallIntrinsic1,
    BinaryOp,
    UnaryNegative,
    UnaryNot,
    UnaryInvert,
    UnaryPositive,
    ToBool,
    CompareOp,
    IsOp,
    ContainsOp,
    BinarySubscr,
    StoreSubscr,
    DeleteSubscr,
    BinarySlice,
    StoreSlice,
    BuildTuple,
    BuildList,
    BuildSet,
    BuildMap,
    BuildConstKeyMap,
    BuildSlice,
    BuildString,
    FormatValue,
    FormatSimple,
    FormatWithSpec,
    ConvertValue,
    ListAppend,
    ListExtend,
    ListToTuple,
    SetAdd,
    SetUpdate,
    MapAdd,
    DictUpdate,
    DictMerge,
    UnpackSequence,
    UnpackEx,
    ReturnValue,
    PopJumpIfFalse,
    PopJumpIfTrue,
    PopJumpIfNone,
    PopJumpIfNotNone,
    JumpIfFalseOrPop,
    JumpIfTrueOrPop,
    Jump,
    GetIter,
    ForIter,
    MakeFunction,
    SetFunctionAttribute,
    ReturnGenerator,
    YieldValue,
    GetYieldFromIter,
    Send,
    ImportName,
    ImportFrom,
    LoadAssertionError,
    LoadBuildClass,
    RaiseVarargs,
    PushExcInfo,
    PopExcept,
    CheckExcMatch,
    Reraise,
    BeforeWith,
    WithExceptStart,
    Unknown,
}

impl Opc {
    fn from_name(name: &str) -> Opc {
        use Opc::*;
        match name {
            "NOP" | "NOT_TAKEN" => Nop,
            "RESUME" => Resume,
            "CACHE" => Cache,
            "EXTENDED_ARG" => ExtendedArg,
            "POP_TOP" => PopTop,
            "PUSH_NULL" => PushNull,
            "END_FOR" => EndFor,
            "END_SEND" => EndSend,
            "COPY" => Copy,
            "SWAP" => Swap,
            "LOAD_CONST" => LoadConst,
            "RETURN_CONST" => ReturnConst,
            "LOAD_FAST" => LoadFast,
            "LOAD_FAST_CHECK" => LoadFastCheck,
            "LOAD_FAST_AND_CLEAR" => LoadFastAndClear,
            "LOAD_FAST_LOAD_FAST" => LoadFastLoadFast,
            "STORE_FAST" => StoreFast,
            "STORE_FAST_LOAD_FAST" => StoreFastLoadFast,
            "STORE_FAST_STORE_FAST" => StoreFastStoreFast,
            "DELETE_FAST" => DeleteFast,
            "LOAD_GLOBAL" => LoadGlobal,
            "STORE_GLOBAL" => StoreGlobal,
            "LOAD_NAME" => LoadName,
            "LOAD_DEREF" => LoadDeref,
            "STORE_DEREF" => StoreDeref,
            "LOAD_CLOSURE" => LoadClosure,
            "MAKE_CELL" => MakeCell,
            "COPY_FREE_VARS" => CopyFreeVars,
            "LOAD_ATTR" => LoadAttr,
            "LOAD_METHOD" => LoadMethod,
            "STORE_ATTR" => StoreAttr,
            "DELETE_ATTR" => DeleteAttr,
            "LOAD_SUPER_ATTR" => LoadSuperAttr,
            "PRECALL" => Precall,
            "CALL" => Call,
            "CALL_KW" => CallKw,
            "KW_NAMES" => KwNames,
            "CALL_FUNCTION_EX" => CallFunctionEx,
            "CALL_INTRINSIC_1" => CallIntrinsic1,
            "BINARY_OP" => BinaryOp,
            "UNARY_NEGATIVE" => UnaryNegative,
            "UNARY_NOT" => UnaryNot,
            "UNARY_INVERT" => UnaryInvert,
            "UNARY_POSITIVE" => UnaryPositive,
            "TO_BOOL" => ToBool,
            "COMPARE_OP" => CompareOp,
            "IS_OP" => IsOp,
            "CONTAINS_OP" => ContainsOp,
            "BINARY_SUBSCR" => BinarySubscr,
            "STORE_SUBSCR" => StoreSubscr,
            "DELETE_SUBSCR" => DeleteSubscr,
            "BINARY_SLICE" => BinarySlice,
            "STORE_SLICE" => StoreSlice,
            "BUILD_TUPLE" => BuildTuple,
            "BUILD_LIST" => BuildList,
            "BUILD_SET" => BuildSet,
            "BUILD_MAP" => BuildMap,
            "BUILD_CONST_KEY_MAP" => BuildConstKeyMap,
            "BUILD_SLICE" => BuildSlice,
            "BUILD_STRING" => BuildString,
            "FORMAT_VALUE" => FormatValue,
            "FORMAT_SIMPLE" => FormatSimple,
            "FORMAT_WITH_SPEC" => FormatWithSpec,
            "CONVERT_VALUE" => ConvertValue,
            "LIST_APPEND" => ListAppend,
            "LIST_EXTEND" => ListExtend,
            "LIST_TO_TUPLE" => ListToTuple,
            "SET_ADD" => SetAdd,
            "SET_UPDATE" => SetUpdate,
            "MAP_ADD" => MapAdd,
            "DICT_UPDATE" => DictUpdate,
            "DICT_MERGE" => DictMerge,
            "UNPACK_SEQUENCE" => UnpackSequence,
            "UNPACK_EX" => UnpackEx,
            "RETURN_VALUE" => ReturnValue,
            "POP_JUMP_IF_FALSE" | "POP_JUMP_FORWARD_IF_FALSE" | "POP_JUMP_BACKWARD_IF_FALSE" => {
                PopJumpIfFalse
            }
            "POP_JUMP_IF_TRUE" | "POP_JUMP_FORWARD_IF_TRUE" | "POP_JUMP_BACKWARD_IF_TRUE" => {
                PopJumpIfTrue
            }
            "POP_JUMP_IF_NONE" | "POP_JUMP_FORWARD_IF_NONE" | "POP_JUMP_BACKWARD_IF_NONE" => {
                PopJumpIfNone
            }
            "POP_JUMP_IF_NOT_NONE"
            | "POP_JUMP_FORWARD_IF_NOT_NONE"
            | "POP_JUMP_BACKWARD_IF_NOT_NONE" => PopJumpIfNotNone,
            "JUMP_IF_FALSE_OR_POP" => JumpIfFalseOrPop,
            "JUMP_IF_TRUE_OR_POP" => JumpIfTrueOrPop,
            "JUMP_FORWARD"
            | "JUMP_BACKWARD"
            | "JUMP_BACKWARD_NO_INTERRUPT"
            | "JUMP"
            | "JUMP_NO_INTERRUPT" => Jump,
            "GET_ITER" => GetIter,
            "FOR_ITER" => ForIter,
            "MAKE_FUNCTION" => MakeFunction,
            "SET_FUNCTION_ATTRIBUTE" => SetFunctionAttribute,
            "RETURN_GENERATOR" => ReturnGenerator,
            "YIELD_VALUE" => YieldValue,
            "GET_YIELD_FROM_ITER" => GetYieldFromIter,
            "SEND" => Send,
            "IMPORT_NAME" => ImportName,
            "IMPORT_FROM" => ImportFrom,
            "LOAD_ASSERTION_ERROR" => LoadAssertionError,
            "LOAD_BUILD_CLASS" => LoadBuildClass,
            "RAISE_VARARGS" => RaiseVarargs,
            "PUSH_EXC_INFO" => PushExcInfo,
            "POP_EXCEPT" => PopExcept,
            "CHECK_EXC_MATCH" => CheckExcMatch,
            "RERAISE" => Reraise,
            "BEFORE_WITH" => BeforeWith,
            "WITH_EXCEPT_START" => WithExceptStart,
            _ => Unknown,
        }
    }
}

/// One decoded instruction.
pub struct Instr<'py> {
    pub op: Opc,
    pub opname: String,
    pub arg: u32,
    pub argval: Bound<'py, PyAny>,
    /// Instruction index of the jump target (jumps and FOR_ITER/SEND only).
    pub target: usize,
    pub line: u32,
    pub offset: u32,
}

/// An exception-table entry, in instruction indices.
pub struct ExcEntry {
    pub start: usize,
    pub end: usize,
    pub target: usize,
    pub depth: usize,
    pub lasti: bool,
}

/// A decoded code object with its local-variable layout.
pub struct Code<'py> {
    pub name: String,
    pub filename: String,
    pub instrs: Vec<Instr<'py>>,
    pub exc: Vec<ExcEntry>,
    /// Names of the "fast locals" slots: varnames, then cells, then free variables.
    pub slots: Vec<String>,
    pub argcount: usize,
    pub posonly: usize,
    pub kwonly: usize,
    pub flags: u32,
    pub consts: Bound<'py, PyTuple>,
}

pub const CO_VARARGS: u32 = 0x04;
pub const CO_VARKEYWORDS: u32 = 0x08;
pub const CO_GENERATOR: u32 = 0x20;
pub const CO_COROUTINE: u32 = 0x80;
pub const CO_ASYNC_GENERATOR: u32 = 0x200;

impl<'py> Code<'py> {
    /// Decodes `code` with the running interpreter's `dis`.
    pub fn decode(py: Python<'py>, code: &Bound<'py, PyAny>) -> PyResult<Code<'py>> {
        let dis = py.import("dis")?;
        let raw: Vec<Bound<PyAny>> = dis
            .call_method1("get_instructions", (code,))?
            .try_iter()?
            .collect::<PyResult<_>>()?;
        let mut by_offset = HashMap::new();
        let mut instrs = Vec::with_capacity(raw.len());
        let mut line = code.getattr("co_firstlineno")?.extract::<u32>()?;
        for (i, ins) in raw.iter().enumerate() {
            let opname: String = ins.getattr("opname")?.extract()?;
            let offset: u32 = ins.getattr("offset")?.extract()?;
            by_offset.insert(offset, i);
            let arg: u32 = ins.getattr("arg")?.extract::<Option<u32>>()?.unwrap_or(0);
            if let Ok(pos) = ins.getattr("positions") {
                if let Ok(Some(l)) = pos
                    .getattr("lineno")
                    .and_then(|l| l.extract::<Option<u32>>())
                {
                    line = l;
                }
            }
            instrs.push(Instr {
                op: Opc::from_name(&opname),
                opname,
                arg,
                argval: ins.getattr("argval")?,
                target: 0,
                line,
                offset,
            });
        }
        // Resolve jump targets (dis gives them as byte offsets in argval).
        for ins in instrs.iter_mut() {
            let jumps = matches!(
                ins.op,
                Opc::PopJumpIfFalse
                    | Opc::PopJumpIfTrue
                    | Opc::PopJumpIfNone
                    | Opc::PopJumpIfNotNone
                    | Opc::JumpIfFalseOrPop
                    | Opc::JumpIfTrueOrPop
                    | Opc::Jump
                    | Opc::ForIter
                    | Opc::Send
            );
            if jumps {
                let off: u32 = ins.argval.extract()?;
                ins.target = *by_offset.get(&off).ok_or_else(|| {
                    pyo3::exceptions::PyRuntimeError::new_err(format!(
                        "cannot resolve jump target {off} of {}",
                        ins.opname
                    ))
                })?;
            }
        }
        let idx = |off: u32| -> usize {
            // An offset that falls on a removed CACHE maps to the next instruction.
            (off..off + 64)
                .find_map(|o| by_offset.get(&o).copied())
                .unwrap_or(instrs.len())
        };
        let mut exc = vec![];
        if let Ok(entries) = dis.call_method1("_parse_exception_table", (code,)) {
            for e in entries.try_iter()? {
                let e = e?;
                exc.push(ExcEntry {
                    start: idx(e.getattr("start")?.extract()?),
                    end: idx(e.getattr("end")?.extract()?),
                    target: idx(e.getattr("target")?.extract()?),
                    depth: e.getattr("depth")?.extract()?,
                    lasti: e.getattr("lasti")?.extract()?,
                });
            }
        }
        let names =
            |attr: &str| -> PyResult<Vec<String>> { code.getattr(attr)?.extract::<Vec<String>>() };
        let varnames = names("co_varnames")?;
        let cellvars = names("co_cellvars")?;
        let freevars = names("co_freevars")?;
        let mut slots = varnames.clone();
        for c in cellvars {
            if !varnames.contains(&c) {
                slots.push(c);
            }
        }
        slots.extend(freevars);
        Ok(Code {
            name: code.getattr("co_name")?.extract()?,
            filename: code.getattr("co_filename")?.extract()?,
            instrs,
            exc,
            slots,
            argcount: code.getattr("co_argcount")?.extract()?,
            posonly: code.getattr("co_posonlyargcount")?.extract()?,
            kwonly: code.getattr("co_kwonlyargcount")?.extract()?,
            flags: code.getattr("co_flags")?.extract()?,
            consts: code.getattr("co_consts")?.downcast_into::<PyTuple>()?,
        })
    }

    /// Number of local slots.
    pub fn nslots(&self) -> usize {
        self.slots.len()
    }

    /// The exception handler covering instruction `i`, if any (innermost first).
    pub fn handler(&self, i: usize) -> Option<&ExcEntry> {
        self.exc.iter().find(|e| e.start <= i && i < e.end)
    }

    /// Checks the slot layout against the names `dis` reports, so a layout change in a
    /// future CPython fails loudly instead of reading the wrong variable.
    pub fn check_layout(&self) -> PyResult<()> {
        for ins in &self.instrs {
            let single = matches!(
                ins.op,
                Opc::LoadFast
                    | Opc::LoadFastCheck
                    | Opc::LoadFastAndClear
                    | Opc::StoreFast
                    | Opc::DeleteFast
                    | Opc::LoadDeref
                    | Opc::StoreDeref
                    | Opc::LoadClosure
                    | Opc::MakeCell
            );
            if single {
                let name: String = ins.argval.extract()?;
                if self.slots.get(ins.arg as usize) != Some(&name) {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                        "unsupported local-variable layout in {} ({} {name})",
                        self.name, ins.opname
                    )));
                }
            }
        }
        Ok(())
    }
}
