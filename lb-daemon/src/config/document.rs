//! The operator's file open for `lbctl` edits, keeping its comments and
//! layout (`toml_edit`): the document, its errors and the primitives the
//! edits share. The edits themselves belong to the section they change
//! (`service::edit`). They do not validate the result: parse
//! [`ConfigDocument::to_text`] before using or saving it.

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

use std::net::SocketAddr;

use crate::balancer::model::ServiceAddr;

/// Why an edit could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("service {0} already exists")]
    ServiceExists(ServiceAddr),
    #[error("service {0} not found")]
    ServiceNotFound(ServiceAddr),
    #[error("real {real} already exists in service {service}")]
    RealExists {
        service: ServiceAddr,
        real: SocketAddr,
    },
    #[error("real {real} not found in service {service}")]
    RealNotFound {
        service: ServiceAddr,
        real: SocketAddr,
    },
    /// The file is written in a shape these edits do not handle.
    #[error("cannot edit the config file: {0}")]
    Unsupported(String),
}

/// A config file open for editing.
#[derive(Clone, Debug)]
pub struct ConfigDocument {
    pub(super) doc: DocumentMut,
}

impl ConfigDocument {
    /// Reads a file's text; the error is `toml_edit`'s message (with line and
    /// column).
    pub fn parse(text: &str) -> Result<Self, String> {
        text.parse::<DocumentMut>()
            .map(|doc| Self { doc })
            .map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The edited file.
    #[must_use]
    pub fn to_text(&self) -> String {
        self.doc.to_string()
    }
}

/// An array of tables as written: `[[x]]` tables or an inline array of
/// inline tables.
pub(super) enum Tables<'a> {
    Headers(&'a mut ArrayOfTables),
    Inline(&'a mut Array),
}

pub(super) fn tables<'a>(item: &'a mut Item, key: &str) -> Result<Tables<'a>, EditError> {
    match item {
        Item::ArrayOfTables(tables) => Ok(Tables::Headers(tables)),
        Item::Value(Value::Array(array)) if array.iter().all(Value::is_inline_table) => {
            Ok(Tables::Inline(array))
        }
        _ => Err(EditError::Unsupported(format!(
            "`{key}` is neither [[{key}]] tables nor an array of inline tables"
        ))),
    }
}

impl Tables<'_> {
    pub(super) fn is_inline(&self) -> bool {
        matches!(self, Tables::Inline(_))
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Tables::Headers(t) => t.len(),
            Tables::Inline(a) => a.len(),
        }
    }

    pub(super) fn get(&self, index: usize) -> Option<&dyn TableLike> {
        match self {
            Tables::Headers(t) => t.get(index).map(|t| t as &dyn TableLike),
            Tables::Inline(a) => a
                .get(index)
                .and_then(Value::as_inline_table)
                .map(|t| t as &dyn TableLike),
        }
    }

    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut dyn TableLike> {
        match self {
            Tables::Headers(t) => t.get_mut(index).map(|t| t as &mut dyn TableLike),
            Tables::Inline(a) => a
                .get_mut(index)
                .and_then(Value::as_inline_table_mut)
                .map(|t| t as &mut dyn TableLike),
        }
    }

    pub(super) fn push(&mut self, table: Table) {
        match self {
            Tables::Headers(t) => t.push(table),
            Tables::Inline(a) => a.push(Value::InlineTable(table.into_inline_table())),
        }
    }

    pub(super) fn remove(&mut self, index: usize) {
        match self {
            Tables::Headers(t) => {
                t.remove(index);
            }
            Tables::Inline(a) => {
                a.remove(index);
            }
        }
    }
}
