//! Pod annotation grammar.
