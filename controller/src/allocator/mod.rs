//! Port allocation for pool items.
