//! Placeholder until the timeout benches land.

fn main() {}
