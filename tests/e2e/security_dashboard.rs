//! security_dashboard end to end (being written).
