//! Helm action runner (in progress).
