//! security_policy end to end (being written).
