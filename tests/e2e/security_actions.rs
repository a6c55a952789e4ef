//! security_actions end to end (being written).
