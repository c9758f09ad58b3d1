//! The in-memory projection of the graph and the algorithms over it (strength, influence paths, risk).
//!
//! Fed by the change log; analytics read an immutable snapshot swapped atomically after each applied batch.
//! It arrives with the engine work; until then resolvers read entities from the store only.
