//! The in-memory projection of the graph and the algorithms over it (strength, influence paths, risk).
//!
//! Algorithms are pure functions over an immutable graph. The projection (fed by the change log, swapped
//! atomically) arrives with the rest of the engine work; `paths` is its first algorithm, exact and tested
//! against brute force.

pub mod paths;
