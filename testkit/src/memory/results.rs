//! `MemoryResults`: a fake [`ResultStore`] in a map, for unit tests; its
//! links are `memory://<key>`.

use crate::memory::store::lock;
use async_trait::async_trait;
use jobline_core::results::{ResultError, ResultStore};
use std::collections::HashMap;
use std::sync::Mutex;

/// Results in a map, by key.
#[derive(Debug, Default)]
pub struct MemoryResults {
    objects: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryResults {
    pub fn new() -> Self {
        Self::default()
    }

    /// The object at `key`, if there is one.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.objects).get(key).cloned()
    }
}

#[async_trait]
impl ResultStore for MemoryResults {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ResultError> {
        lock(&self.objects).insert(key.to_owned(), body);
        Ok(())
    }

    async fn link(&self, key: &str) -> Result<String, ResultError> {
        Ok(format!("memory://{key}"))
    }

    async fn delete(&self, key: &str) -> Result<(), ResultError> {
        lock(&self.objects).remove(key);
        Ok(())
    }
}
