//! honeypots end to end (being written).
