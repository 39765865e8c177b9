//! The one place where errors become what a person reads and what a shell sees.
//!
//! Modules return their own typed errors (thiserror enums whose messages name the file and the problem). At the
//! command boundary they become a [`Failure`]: the chain of messages (`error:` then `caused by:` lines), an optional
//! `hint:`, and whose fault it was, which decides the exit code (PRODUCT.md: 1 = the user's input or the model,
//! 2 = internal error or environment).

use std::error::Error as StdError;
use std::fmt;

/// Whose fault a failure is; decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The user's input or the model (exit 1).
    Input,
    /// precisiond itself or its environment: missing tools, GPU, disk (exit 2).
    Environment,
}

impl Fault {
    pub fn exit_code(self) -> u8 {
        match self {
            Fault::Input => 1,
            Fault::Environment => 2,
        }
    }
}

/// Implemented by every module error: whose fault it is, and what to do about it.
pub trait Diagnose: StdError {
    fn fault(&self) -> Fault {
        Fault::Input
    }
    fn hint(&self) -> Option<String> {
        None
    }
}

/// A failure on its way to the user.
#[derive(Debug)]
pub struct Failure {
    /// Outermost first: the context added last, then the error, then its sources.
    messages: Vec<String>,
    hint: Option<String>,
    fault: Fault,
}

impl Failure {
    pub fn new(message: impl Into<String>, fault: Fault) -> Failure {
        Failure { messages: vec![message.into()], hint: None, fault }
    }

    pub fn from_error<E: Diagnose + ?Sized>(error: &E) -> Failure {
        let mut messages = vec![error.to_string()];
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Wrapped errors often repeat their source's text in their own; say each thing once.
            if !messages.last().is_some_and(|m| m.ends_with(&text)) {
                messages.push(text);
            }
            source = cause.source();
        }
        Failure { messages, hint: error.hint(), fault: error.fault() }
    }

    /// Says what was being done when this failed (becomes the new `error:` line).
    pub fn context(mut self, what: impl Into<String>) -> Failure {
        self.messages.insert(0, what.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    pub fn fault(&self) -> Fault {
        self.fault
    }

    pub fn exit_code(&self) -> u8 {
        self.fault.exit_code()
    }

    pub fn messages(&self) -> &[String] {
        &self.messages
    }
}

impl<E: Diagnose> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::from_error(&error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = self.messages.iter();
        if let Some(first) = lines.next() {
            writeln!(f, "error: {first}")?;
        }
        for cause in lines {
            writeln!(f, "caused by: {cause}")?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "hint: {hint}")?;
        }
        Ok(())
    }
}

/// Adds `.context(..)` to results on their way to the command boundary.
pub trait ResultExt<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T, E: Into<Failure>> ResultExt<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| e.into().context(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read model.onnx")]
    struct Outer(#[source] std::io::Error);
    impl Diagnose for Outer {
        fn hint(&self) -> Option<String> {
            Some("check the path".into())
        }
    }

    #[test]
    fn renders_chain_and_hint() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let failure = Failure::from(Outer(io)).context("cannot inspect the model");
        assert_eq!(
            failure.to_string(),
            "error: cannot inspect the model\ncaused by: cannot read model.onnx\ncaused by: no such file\nhint: check the path\n"
        );
        assert_eq!(failure.exit_code(), 1);
    }
}
