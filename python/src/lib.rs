//! `valori._native`: the Rust side of the Python package. The pure-Python layer (`valori/`)
//! turns lists and numpy arrays into contiguous native-order buffers and results into numpy;
//! this crate decodes the buffers, calls the engine and kernel with the GIL released, and
//! raises the exception classes of `valori.errors` (never pyo3's `PanicException`).
//!
//! - `errors`: `Fail`, the code -> exception path, `guarded`, the error table for Python.
//! - `buffers`: decoding the buffers (floats are converted by the kernel).
//! - `store`: the `Store` trait and the Python methods both classes share.
//! - `kernel`: the in-memory `Kernel` class; `database`: the durable `Database` class.

mod buffers;
mod database;
mod errors;
mod kernel;
mod store;

use pyo3::prelude::*;

/// The library version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<kernel::Kernel>()?;
    m.add_class::<database::Database>()?;
    m.add_function(wrap_pyfunction!(database::replay, m)?)?;
    m.add_function(wrap_pyfunction!(database::decode_export, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
