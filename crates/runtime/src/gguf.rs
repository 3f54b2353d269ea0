//! Typed access to GGUF metadata with errors that name the file and the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};

use crate::model::RuntimeError;

pub(crate) struct Metadata<'a> {
    path: PathBuf,
    values: &'a HashMap<String, Value>,
}

impl<'a> Metadata<'a> {
    pub fn new(path: &Path, content: &'a Content) -> Self {
        Metadata {
            path: path.to_path_buf(),
            values: &content.metadata,
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.values.get(key)
    }

    /// An error about `key` of this file.
    pub fn bad(&self, key: &str, why: impl std::fmt::Display) -> RuntimeError {
        RuntimeError::Gguf {
            path: self.path.clone(),
            key: key.to_string(),
            message: why.to_string(),
        }
    }

    fn require(&self, key: &str) -> Result<&'a Value, RuntimeError> {
        self.get(key).ok_or_else(|| self.bad(key, "missing"))
    }

    pub fn string(&self, key: &str) -> Result<&'a str, RuntimeError> {
        self.require(key)?
            .to_string()
            .map(String::as_str)
            .map_err(|e| self.bad(key, e))
    }

    pub fn opt_string(&self, key: &str) -> Option<&'a str> {
        self.get(key)
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
    }

    pub fn usize(&self, key: &str) -> Result<usize, RuntimeError> {
        let v = self.require(key)?;
        v.to_u32()
            .map(|x| x as usize)
            .or_else(|_| v.to_u64().map(|x| x as usize))
            .map_err(|e| self.bad(key, e))
    }

    pub fn opt_u32(&self, key: &str) -> Option<u32> {
        self.get(key).and_then(|v| {
            v.to_u32()
                .ok()
                .or_else(|| v.to_i32().ok().map(|x| x as u32))
        })
    }

    pub fn opt_f32(&self, key: &str) -> Option<f32> {
        self.get(key).and_then(|v| v.to_f32().ok())
    }

    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| v.to_bool().ok())
    }

    pub fn string_array(&self, key: &str) -> Result<Vec<String>, RuntimeError> {
        let values = self.require(key)?.to_vec().map_err(|e| self.bad(key, e))?;
        values
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| self.bad(key, e)))
            .collect()
    }
}
