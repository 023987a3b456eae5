//! The crate's own tests embed CPython: they find its shared library at run time through
//! an rpath to the interpreter pyo3 was configured with (no effect on dependents).
fn main() {
    let cfg = pyo3_build_config::get();
    if let Some(dir) = &cfg.lib_dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
