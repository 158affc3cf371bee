//! Placeholder: rtnetlink access (being written).
