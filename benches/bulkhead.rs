//! Placeholder until the bulkhead benches land.

fn main() {}
