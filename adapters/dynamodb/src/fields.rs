//! Reading an item's attributes by name, each failure saying which
//! attribute and why (`"<attribute>: <why>"`): what the codecs of the job
//! items ([`crate::item`]) and of the schedule items
//! ([`crate::schedules`]) both read with, each wrapping the text in its own
//! `Malformed` error.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// `"<name>: <why>"`: a malformed attribute, as both codecs' errors say it.
pub(crate) fn malformed(name: &str, why: &str) -> String {
    format!("{name}: {why}")
}

/// The attributes of one item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a>(pub(crate) &'a HashMap<String, AttributeValue>);

impl<'a> Fields<'a> {
    /// A string attribute, if present.
    pub(crate) fn string(self, name: &str) -> Result<Option<&'a String>, String> {
        self.0
            .get(name)
            .map(|v| v.as_s().map_err(|_| malformed(name, "not a string")))
            .transpose()
    }

    /// A string attribute that must be present.
    pub(crate) fn required(self, name: &str) -> Result<&'a String, String> {
        self.string(name)?.ok_or_else(|| malformed(name, "missing"))
    }

    /// A whole-number attribute, if present.
    pub(crate) fn number(self, name: &str) -> Result<Option<i64>, String> {
        self.0
            .get(name)
            .map(|v| {
                v.as_n()
                    .ok()
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| malformed(name, "not an integer"))
            })
            .transpose()
    }

    /// A count: a whole number in `T`'s range, 0 when absent.
    pub(crate) fn count<T: TryFrom<i64>>(self, name: &str) -> Result<T, String> {
        T::try_from(self.number(name)?.unwrap_or(0)).map_err(|_| malformed(name, "out of range"))
    }
}
