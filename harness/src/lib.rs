//! clb-harness library.
