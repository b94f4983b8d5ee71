//! Errors on their way to Python. A [`Fail`] carries a code of the kernel's one error table
//! ([`ErrorCode`]) and a message; `valori.errors.error_class(name)` turns the code's name into
//! the exception class (so this crate holds no copy of the table), and [`guarded`] runs
//! library code without the GIL, turning a panic into `valori.InternalError`.

use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use valori_engine::Hint;
use valori_kernel::ErrorCode;

/// An error on its way to Python: a code of the table and the message.
pub(crate) struct Fail {
    code: ErrorCode,
    message: String,
}

impl Fail {
    /// An error of class `code`.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }

    /// A bug in valori (`valori.InternalError`).
    pub(crate) fn internal(message: impl Into<String>) -> Fail {
        Fail::new(ErrorCode::Internal, message)
    }

    /// Invalid input (`valori.InvalidInputError`).
    pub(crate) fn invalid(message: impl Into<String>) -> Fail {
        Fail::new(ErrorCode::InvalidInput, message)
    }

    /// The exception: `valori.errors.error_class(code name)(message)`.
    fn into_py(self, py: Python<'_>) -> PyErr {
        let made = py
            .import("valori.errors")
            .and_then(|m| m.getattr("error_class"))
            .and_then(|lookup| lookup.call1((self.code.name(),)))
            .and_then(|class| class.call1((self.message.as_str(),)));
        match made {
            Ok(exception) => PyErr::from_value(exception),
            // KeyboardInterrupt and the like pass through.
            Err(e) if !e.is_instance_of::<PyException>(py) => e,
            // Unreachable while the import-time check of valori.errors holds; keep the message.
            Err(e) => PyRuntimeError::new_err(format!(
                "{} ({}); valori.errors could not raise it: {e}",
                self.message,
                self.code.name()
            )),
        }
    }
}

impl From<valori_kernel::Error> for Fail {
    fn from(e: valori_kernel::Error) -> Self {
        Fail::new(e.code(), e.to_string())
    }
}

impl From<valori_engine::Error> for Fail {
    fn from(e: valori_engine::Error) -> Self {
        Fail::new(e.code(), message(&e))
    }
}

/// An engine error as Python callers read it: the detail, then the remedy in terms of this
/// API (the engine's `Display` names the Rust API's).
fn message(e: &valori_engine::Error) -> String {
    let detail = e.detail();
    match e.hint() {
        Some(Hint::Salvage) => {
            format!("{detail}; open with salvage=True to read the intact prefix")
        }
        Some(Hint::Create) => format!("{detail}; open with dim=... to create one"),
        _ => detail,
    }
}

/// Runs library code with the GIL released; a panic (a bug) becomes `valori.InternalError`,
/// never pyo3's `PanicException`.
pub(crate) fn guarded<R>(py: Python<'_>, f: impl FnOnce() -> Result<R, Fail> + Send) -> PyResult<R>
where
    R: Send,
{
    let r = py.allow_threads(|| {
        catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(Fail::internal("valori panicked (a bug)")))
    });
    r.map_err(|f| f.into_py(py))
}

/// The error table, `[(value, name, description)]` in numeric order: `valori.errors` checks
/// at import that it has a class for every name.
#[pyfunction]
pub(crate) fn error_codes() -> Vec<(u32, &'static str, &'static str)> {
    ErrorCode::ALL
        .iter()
        .map(|c| (c.value(), c.name(), c.description()))
        .collect()
}
