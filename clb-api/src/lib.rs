//! Tencent Cloud API 3.0 wire model for CLB (version 2018-03-17).
