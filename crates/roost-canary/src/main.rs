//! `roost-canary`: the binary.
#![forbid(unsafe_code)]

fn main() {}
