//! The `networkextension.bkbcs.tencent.com/v1` API types.
