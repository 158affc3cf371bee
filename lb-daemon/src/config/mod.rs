//! Placeholder: the config module (being written).
