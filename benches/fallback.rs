//! Placeholder until the fallback benches land.

fn main() {}
