//! Rules about videos, free of I/O and of protobuf.

pub mod pagination;
