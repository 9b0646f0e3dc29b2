//! Placeholder until the retry benches land.

fn main() {}
