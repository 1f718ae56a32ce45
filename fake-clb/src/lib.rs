//! fake-clb library: state, API handlers and the control API.
